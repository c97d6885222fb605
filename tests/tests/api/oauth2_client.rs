//! A real OAuth 2 client library (the `oauth2` crate) against Tessera: password grant, then
//! refresh grant, then the resource call; tokens checked by the independent verifier.

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{ClientId, RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, TokenResponse, TokenUrl};

use crate::helpers::spawn_app;

async fn a_standard_oauth2_client_logs_in_refreshes_and_calls_the_api() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    let client = BasicClient::new(ClientId::new("tessera".into())).set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let tokens = client
        .exchange_password(
            &ResourceOwnerUsername::new("ann@example.com".into()),
            &ResourceOwnerPassword::new("correct horse battery".into()),
        )
        .request_async(&http)
        .await
        .expect("the password grant succeeds");
    assert_eq!(tokens.expires_in(), Some(std::time::Duration::from_secs(300)));
    let claims = app.verify_independently(tokens.access_token().secret()).await;
    assert_eq!(claims["token_type"], "access");
    let refresh = tokens.refresh_token().expect("a refresh token").clone();

    let refreshed = client.exchange_refresh_token(&refresh).request_async(&http).await.expect("the refresh grant succeeds");
    let new_refresh = refreshed.refresh_token().expect("rotation returns a new refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret());
    let res = app.me(refreshed.access_token().secret()).await;
    assert_eq!(res.status(), 200);

    let bad = client
        .exchange_password(&ResourceOwnerUsername::new("ann@example.com".into()), &ResourceOwnerPassword::new("wrong".into()))
        .request_async(&http)
        .await
        .unwrap_err();
    match bad {
        RequestTokenError::ServerResponse(r) => assert_eq!(r.error(), &BasicErrorResponseType::InvalidGrant),
        other => panic!("expected an RFC 6749 error, got {other:?}"),
    }
}

crate::both_backends!(a_standard_oauth2_client_logs_in_refreshes_and_calls_the_api,);
