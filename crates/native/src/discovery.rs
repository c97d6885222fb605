//! What a resource server or an OAuth client needs to work with Tessera without asking it per
//! token: the public keys (JWKS) and the authorization server's metadata (RFC 8414).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::NativeState;

/// A JWKS document (RFC 7517): the public keys only.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "2f0c9d7a1b3e5c4d6e8f0a1b", "alg": "ES256", "use": "sig",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))]
pub struct JwksDoc {
    pub keys: Vec<serde_json::Value>,
}

/// The public keys that may have signed a live access token, or soon will: what a resource
/// server verifies Tessera's tokens with. Never an HMAC secret, never private material. Cached
/// for `tokens.jwks_max_age_seconds`.
#[utoipa::path(tag = "discovery", responses((status = 200, description = "The public keys", body = JwksDoc)))]
#[get("/.well-known/jwks.json")]
pub async fn get_jwks(state: web::Data<NativeState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={}", state.settings.jwks_max_age_seconds)))
        .json(state.service.keyring().jwks())
}

/// RFC 8414 authorization server metadata.
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<&'static str>,
    /// The algorithms a DPoP proof may be signed with (RFC 9449 §5.1).
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    /// Tessera has no authorization endpoint.
    pub response_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub service_documentation: String,
}

/// The base URL clients reach this server at, and whether it is the configured one:
/// `server.public_url`; else the request's own, from the forwarding headers (`Forwarded`,
/// `X-Forwarded-Host`, `X-Forwarded-Proto`) only when the peer is a trusted proxy, otherwise
/// from the `Host` header the connection came with.
pub fn base_url(req: &HttpRequest, state: &NativeState) -> (String, bool) {
    let configured = state.settings.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return (configured.to_owned(), true);
    }
    if tessera_http::request::from_trusted_proxy(req) {
        let info = req.connection_info();
        return (format!("{}://{}", info.scheme(), info.host()), false);
    }
    let scheme = if req.app_config().secure() { "https" } else { "http" };
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| valid_host(h));
    (format!("{scheme}://{}", host.unwrap_or_else(|| req.app_config().host())), false)
}

/// A `Host` value that can stand in a URL: a name or address and an optional port, nothing else.
fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Where everything is: the endpoints, the JWKS, the grants and client authentication methods.
/// The URLs are those of `server.public_url`; without it, of the request (a trusted proxy's
/// forwarding headers believed, no one else's), and the answer is then not for shared caches.
#[utoipa::path(tag = "discovery", responses((status = 200, description = "RFC 8414 metadata", body = ServerMetadata)))]
#[get("/.well-known/oauth-authorization-server")]
pub async fn get_metadata(req: HttpRequest, state: web::Data<NativeState>) -> HttpResponse {
    let (base, configured) = base_url(&req, &state);
    let client_auth = vec!["none", "client_secret_basic", "client_secret_post"];
    // only a document built from configuration is the same for everyone, and may be shared by
    // caches; one built from the request's headers is not
    let cache = if configured { "public, max-age=3600" } else { "no-cache" };
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, cache));
    if !configured {
        res.insert_header((header::VARY, "Host, Forwarded, X-Forwarded-Host, X-Forwarded-Proto"));
    }
    res.json(ServerMetadata {
        issuer: state.settings.issuer.clone(),
        token_endpoint: format!("{base}/oauth/token"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        grant_types_supported: vec!["password", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        dpop_signing_alg_values_supported: tessera_domain::dpop::ALGORITHMS.to_vec(),
        response_types_supported: vec![],
        token_endpoint_auth_methods_supported: client_auth.clone(),
        revocation_endpoint_auth_methods_supported: client_auth,
        introspection_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
        service_documentation: format!("{base}/docs/"),
    })
}
