//! RFC 6749 token endpoint (password, refresh_token and client_credentials grants), RFC 7009
//! revocation and RFC 7662 introspection.
//! Errors are RFC 6749 §5.2 bodies; every response carries `Cache-Control: no-store`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, post, web};
use serde::{Deserialize, Serialize};
use tessera_domain::{AuthError, DomainError, LoginOrigin, OAuthClient, OffsetDateTime, RefreshInput};
use utoipa::ToSchema;

use crate::state::NativeState;
use tessera_http::body::{BodyError, param, parse_params, read_limited};

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}))]
pub struct OAuthErrorBody {
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OAuthError {
    status: StatusCode,
    body: OAuthErrorBody,
    /// A 401 to a client that authenticated with HTTP Basic carries the Basic challenge.
    basic_challenge: bool,
    /// `use_dpop_nonce`: the nonce the client's next proof must carry (`DPoP-Nonce`).
    dpop_nonce: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            body: OAuthErrorBody { error, error_description: Some(description.into()) },
            basic_challenge: false,
            dpop_nonce: None,
        }
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// RFC 6749 §5.2: 401, and the `WWW-Authenticate` challenge of the scheme the client used
    /// only when it used HTTP Basic. A client that sent its id in the body gets no challenge, so
    /// a browser (Swagger UI's "Try it out") does not open its own sign-in dialog.
    fn invalid_client(basic: bool) -> Self {
        Self { basic_challenge: basic, ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.") }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.body.error)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        res.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if self.basic_challenge {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\"")));
        }
        if let Some(n) = self.dpop_nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            res.insert_header(("DPoP-Nonce", n));
        }
        res.json(&self.body)
    }
}

fn body_error(e: BodyError) -> OAuthError {
    match e {
        BodyError::TooLarge(limit) => {
            OAuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", format!("The body is larger than {limit} bytes."))
        }
        BodyError::UnsupportedMediaType(ct) => OAuthError::invalid_request(format!(
            "Unsupported content type {ct:?}: use application/x-www-form-urlencoded or application/json."
        )),
        BodyError::Malformed(m) => OAuthError::invalid_request(m),
        BodyError::Duplicate(p) => OAuthError::invalid_request(format!("Duplicate {p} parameter.")),
        BodyError::Unreadable => OAuthError::invalid_request("The body could not be read."),
    }
}

fn domain_error(e: DomainError) -> OAuthError {
    match e {
        DomainError::Auth(a) => match a {
            AuthError::InvalidCredentials => OAuthError::invalid_grant("Invalid credentials given."),
            AuthError::UserBlocked => OAuthError::invalid_grant("The account is blocked."),
            AuthError::TokenExpired => OAuthError::invalid_grant("The refresh token has expired."),
            AuthError::TokenReused => OAuthError::invalid_grant("The refresh token was already used; its session has been revoked."),
            AuthError::TokenRevoked => OAuthError::invalid_grant("The refresh token has been revoked."),
            AuthError::WrongClient => OAuthError::invalid_grant("The refresh token was issued to another client."),
            AuthError::RiskRefused { revoked: true, .. } => {
                OAuthError::invalid_grant("The refresh was refused by a risk rule and the session has been revoked.")
            }
            AuthError::RiskRefused { .. } => OAuthError::invalid_grant("The refresh was refused by a risk rule."),
            // a proof for another key than the refresh token's (or for an unbound one)
            AuthError::DpopKeyMismatch => OAuthError::invalid_grant("The refresh token is bound to another key than the DPoP proof's."),
            AuthError::InvalidDpopProof(why) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", format!("Invalid DPoP proof: {why}."))
            }
            AuthError::UseDpopNonce => {
                OAuthError::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", "Authorization server requires nonce in DPoP proof.")
            }
            AuthError::UnauthorizedClient => OAuthError::unauthorized_client(
                "This client may not use the client_credentials grant: it must be confidential and name an audience.",
            ),
            AuthError::ScopeNotAllowed => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", "A requested scope is not allowed to this client.")
            }
            // RFC 8707 §2's code for a resource (here: an audience) the client may not ask for
            AuthError::AudienceNotAllowed => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "The audience is not one this client may ask for (a client that may ask for several must name one).",
            ),
            _ => OAuthError::invalid_grant("The refresh token is invalid."),
        },
        DomainError::Invalid { field, message, .. } => OAuthError::invalid_request(format!("{field} {message}")),
        other if let Some((status, secs)) = tessera_http::request::retry_later(&other) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            if status == StatusCode::TOO_MANY_REQUESTS {
                OAuthError::new(status, "too_many_requests", format!("Too many attempts; retry after {secs} seconds."))
            } else {
                OAuthError::new(status, "temporarily_unavailable", format!("The service is busy; retry after {secs} seconds."))
            }
        }
        other => {
            let p = crate::problem::unexpected(&other);
            let (error, desc) = if p.status == StatusCode::SERVICE_UNAVAILABLE {
                ("temporarily_unavailable", "Try again later.")
            } else {
                ("server_error", "An unexpected error occurred.")
            };
            OAuthError::new(p.status, error, desc)
        }
    }
}

/// Parameters of the token endpoint (form-encoded or JSON).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"grant_type": "password", "username": "ann@example.com", "password": "correct horse battery", "client_id": "tessera"}))]
pub struct TokenRequest {
    /// `password`, `refresh_token` or `client_credentials`.
    #[schema(example = "password")]
    pub grant_type: String,
    /// The user's e-mail (password grant).
    #[schema(example = "ann@example.com")]
    pub username: Option<String>,
    /// password grant.
    #[schema(example = "correct horse battery")]
    pub password: Option<String>,
    /// refresh_token grant. Empty, like every parameter, counts as absent.
    #[schema(example = "")]
    pub refresh_token: Option<String>,
    /// Optional for the default public client; HTTP Basic works too.
    #[schema(example = "tessera")]
    pub client_id: Option<String>,
    /// Confidential clients only; HTTP Basic works too.
    #[schema(example = "")]
    pub client_secret: Option<String>,
    /// client_credentials grant: space-separated scopes, each one the client may ask for
    /// (none: all of them). Accepted and ignored by the other grants.
    #[schema(example = "")]
    pub scope: Option<String>,
    /// client_credentials grant: the audience (`aud`) of the token, one the client may ask for;
    /// required when it may ask for several.
    #[schema(example = "")]
    pub audience: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjRmM2M...", "token_type": "Bearer", "expires_in": 300, "refresh_token": "q9n2Qm0c7mX8vK4Jt1yZbA2rW5eH6uL3sP0dF8gC1xE"}))]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Absent when the API keeps the refresh token (`refresh_policy = "reuse"`), and for the
    /// client_credentials grant, which has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// client_credentials grant: the scopes granted, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// RFC 8693 §2.2.1's answer to a token exchange.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeResponse {
    pub access_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token`.
    pub issued_token_type: &'static str,
    /// `Bearer`, or `DPoP` when the request proved a key.
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The parameters the token endpoint knows; one of them given twice is an error.
const TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "username",
    "password",
    "refresh_token",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
];
/// RFC 8693's grant type.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The parameters the introspection endpoint knows.
const INTROSPECT_PARAMS: &[&str] = &["token", "token_type_hint", "client_id", "client_secret"];

/// The parameters the revocation endpoint knows.
const REVOKE_PARAMS: &[&str] = &["token", "token_type_hint", "client_id", "client_secret"];

/// Parameters of the revocation endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "q9n2Qm0c7mX8vK4Jt1yZbA2rW5eH6uL3sP0dF8gC1xE", "token_type_hint": "refresh_token", "client_id": "tessera"}))]
pub struct RevokeRequest {
    /// A refresh token (its session ends) or an access token (its session ends too).
    #[schema(min_length = 1)]
    pub token: String,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `client_id:client_secret` of an HTTP Basic header. Another scheme is no client
/// authentication this endpoint knows: `invalid_client`.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    match tessera_http::request::basic_credentials(req) {
        Ok(None) if req.headers().contains_key(header::AUTHORIZATION) => Err(OAuthError::invalid_client(true)),
        Ok(c) => Ok(c),
        Err(_) => Err(OAuthError::invalid_client(true)),
    }
}

/// Authenticates the client: HTTP Basic or body parameters (never both); no client_id at all
/// means the default public client, when it is enabled.
async fn authenticate_client(state: &NativeState, req: &HttpRequest, params: &[(String, String)]) -> Result<OAuthClient, OAuthError> {
    let basic = basic_credentials(req)?;
    let used_basic = basic.is_some();
    let body_id = param(params, "client_id");
    let body_secret = param(params, "client_secret");
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() || body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request("Use one client authentication method, not several."));
            }
            (id, Some(secret).filter(|s| !s.is_empty()))
        }
        None => match body_id {
            Some(id) => (id.to_owned(), body_secret.map(str::to_owned)),
            None if state.settings.default_client_enabled => (state.settings.default_client_id.clone(), None),
            None => return Err(OAuthError::invalid_request("Missing client_id parameter.")),
        },
    };
    match state.service.authenticate_client(&id, secret.as_deref()).await {
        Ok(c) => Ok(c),
        Err(DomainError::Auth(_)) => Err(OAuthError::invalid_client(used_basic)),
        Err(e) => Err(domain_error(e)),
    }
}

/// The token profile of `client`'s tokens: its own, or the default one's when its own is gone.
fn client_profile<'s>(state: &'s NativeState, client: &OAuthClient) -> Result<&'s tessera_domain::TokenProfile, OAuthError> {
    state.profile(&client.profile).or_else(|| state.profile(&state.settings.default_profile)).ok_or_else(|| {
        domain_error(DomainError::Internal(format!("client {} has unknown profile {}", client.client_id.as_str(), client.profile)))
    })
}

fn no_store(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    res.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    res
}

/// Issue tokens: the `password` grant (username is the e-mail), the `refresh_token` grant
/// (every refresh rotates the refresh token), or the `client_credentials` grant (a confidential
/// client's own access token, RFC 9068's profile, for one audience it may ask for; no refresh
/// token).
#[utoipa::path(
    tag = "oauth2",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded",
        description = "Form-encoded as RFC 6749 says; a JSON object with the same keys is accepted too."),
    responses(
        (status = 200, description = "A token pair", body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, unsupported_grant_type; for client_credentials unauthorized_client, invalid_scope or invalid_target", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 413, description = "Body too large", body = OAuthErrorBody),
        (status = 429, description = "too_many_requests: too many password attempts from this address, or the account is locked out here for a while", body = OAuthErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "temporarily_unavailable: too many password hashes wait", body = OAuthErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
#[post("/oauth/token")]
pub async fn create_token(req: HttpRequest, state: web::Data<NativeState>, payload: web::Payload) -> Result<HttpResponse, OAuthError> {
    let body = read_limited(payload, state.settings.max_body_bytes).await.map_err(body_error)?;
    let params = parse_params(&req, &body, TOKEN_PARAMS).map_err(body_error)?;
    let grant = param(&params, "grant_type").ok_or_else(|| OAuthError::invalid_request("Missing grant_type parameter."))?;
    if !matches!(grant, "password" | "refresh_token" | "client_credentials" | TOKEN_EXCHANGE) {
        return Err(OAuthError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("Grant type {grant:?} is not supported.")));
    }
    let client = authenticate_client(&state, &req, &params).await?;
    let now = OffsetDateTime::now_utc();
    let with_nonce =
        |e: OAuthError| if state.settings.dpop_nonce { OAuthError { dpop_nonce: Some(state.service.dpop_nonce(now)), ..e } } else { e };
    // DPoP (RFC 9449 §5): a proof binds what is issued to its key
    let jkt = match crate::binding::proof(&req).map_err(|why| domain_error(AuthError::InvalidDpopProof(why).into()))? {
        Some(proof) => {
            let url = format!("{}{}", crate::discovery::base_url(&req, &state).0, req.path());
            let nonces = crate::binding::nonces(&state, now);
            let expected = tessera_domain::dpop::Expected { method: "POST", url: &url, access_token: None, nonces: &nonces, now };
            Some(state.service.accept_dpop_proof(proof, expected).await.map_err(|e| with_nonce(domain_error(e)))?.jkt)
        }
        None if state.settings.require_dpop || client.require_dpop => {
            return Err(with_nonce(domain_error(AuthError::InvalidDpopProof("a DPoP proof is required").into())));
        }
        None => None,
    };
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let pair = if grant == TOKEN_EXCHANGE {
        let profile = client_profile(&state, &client)?;
        let required =
            |name: &'static str| param(&params, name).ok_or_else(|| OAuthError::invalid_request(format!("Missing {name} parameter.")));
        if param(&params, "requested_token_type").is_some_and(|t| t != tessera_domain::ACCESS_TOKEN_TYPE) {
            return Err(OAuthError::invalid_request("Only access tokens are issued (requested_token_type)."));
        }
        let ask = tessera_domain::ExchangeRequest {
            subject_token: required("subject_token")?,
            subject_token_type: required("subject_token_type")?,
            actor_token: param(&params, "actor_token"),
            actor_token_type: param(&params, "actor_token_type"),
            audience: param(&params, "audience"),
            scope: param(&params, "scope"),
            dpop_jkt: jkt.clone(),
        };
        let done = state.service.exchange(&state.native, &client, profile.access_ttl(), ask, now).await.map_err(|e| match e {
            // RFC 8693 §2.2.2: a subject token that is not (or no longer) good
            DomainError::Auth(AuthError::TokenInvalid) => OAuthError::invalid_grant("The subject token is not a live token of a user."),
            e => domain_error(e),
        })?;
        return Ok(no_store(HttpResponse::Ok()).json(ExchangeResponse {
            access_token: done.access_token,
            issued_token_type: tessera_domain::ACCESS_TOKEN_TYPE,
            token_type,
            expires_in: done.expires_in,
            scope: (!done.scope.is_empty()).then_some(done.scope),
        }));
    } else if grant == "client_credentials" {
        let profile = client_profile(&state, &client)?;
        let scope = param(&params, "scope");
        let audience = param(&params, "audience");
        let token = state
            .service
            .client_credentials(
                &state.native,
                &client,
                profile.access_ttl(),
                tessera_domain::ClientTokenRequest { scope, audience, dpop_jkt: jkt.clone() },
                now,
            )
            .map_err(domain_error)?;
        TokenResponse {
            access_token: token.access_token,
            token_type,
            expires_in: token.expires_in,
            refresh_token: None,
            scope: (!token.scope.is_empty()).then_some(token.scope),
        }
    } else if grant == "password" {
        let username = param(&params, "username").ok_or_else(|| OAuthError::invalid_request("Missing username parameter."))?;
        let password = param(&params, "password").ok_or_else(|| OAuthError::invalid_request("Missing password parameter."))?;
        let profile = client_profile(&state, &client)?;
        let origin = LoginOrigin {
            client_id: Some(client.client_id.as_str()),
            profile: Some(profile),
            request: tessera_http::request::request_meta(&req),
            subject: None,
            dpop_jkt: jkt.clone(),
        };
        let pair = state.service.login_password(&state.native, username, password.to_owned(), origin, now).await.map_err(|e| match e {
            // deleted since it authenticated
            DomainError::Auth(AuthError::UnknownClient) => {
                OAuthError::invalid_client(tessera_http::request::basic_credentials(&req).ok().flatten().is_some())
            }
            e => domain_error(e),
        })?;
        TokenResponse {
            access_token: pair.access_token,
            token_type,
            expires_in: pair.expires_in,
            refresh_token: Some(pair.refresh_token),
            scope: None,
        }
    } else {
        let raw = param(&params, "refresh_token").ok_or_else(|| OAuthError::invalid_request("Missing refresh_token parameter."))?;
        let input = RefreshInput {
            client: Some(client.client_id.as_str()),
            request: tessera_http::request::request_meta(&req),
            dpop_jkt: jkt.as_deref(),
            ..RefreshInput::default()
        };
        let done = state.service.refresh(&state.native, raw, input, now).await.map_err(|e| match e {
            DomainError::Auth(AuthError::DpopKeyMismatch) if jkt.is_none() => domain_error(
                AuthError::InvalidDpopProof("the refresh token is bound to a key: a DPoP proof signed by it is required").into(),
            ),
            e => domain_error(e),
        })?;
        TokenResponse {
            access_token: done.access_token().to_owned(),
            token_type,
            expires_in: done.expires_in(),
            // `reuse`: the client keeps the refresh token it has (RFC 6749 §6 lets the server omit it)
            refresh_token: done.refresh_token().map(str::to_owned),
            scope: None,
        }
    };
    let mut res = no_store(HttpResponse::Ok());
    if state.settings.dpop_nonce {
        res.insert_header(("DPoP-Nonce", state.service.dpop_nonce(now)));
    }
    Ok(res.json(pair))
}

/// Revoke a token (RFC 7009). A refresh token ends its session, and with it every access token
/// of the session; an access token of ours ends its session too. Unknown tokens, and tokens of
/// other clients, get the same 200 and change nothing.
#[utoipa::path(
    tag = "oauth2",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or there was nothing to revoke"),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
    )
)]
#[post("/oauth/revoke")]
pub async fn revoke_token(req: HttpRequest, state: web::Data<NativeState>, payload: web::Payload) -> Result<HttpResponse, OAuthError> {
    let body = read_limited(payload, state.settings.max_body_bytes).await.map_err(body_error)?;
    let params = parse_params(&req, &body, REVOKE_PARAMS).map_err(body_error)?;
    let token = param(&params, "token").ok_or_else(|| OAuthError::invalid_request("Missing token parameter."))?;
    let client = authenticate_client(&state, &req, &params).await?;
    let now = OffsetDateTime::now_utc();
    state.service.revoke_token(&state.native, token, client.client_id.as_str(), now).await.map_err(domain_error)?;
    Ok(no_store(HttpResponse::Ok()).finish())
}

/// Parameters of the introspection endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "eyJ0eXAiOiJhdCtqd3Qi...", "token_type_hint": "access_token"}))]
pub struct IntrospectRequest {
    /// An access or refresh token of any API (native or a dialect).
    #[schema(min_length = 1)]
    pub token: String,
    /// Accepted and not needed: every kind is tried.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 7662 introspection answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"active": true, "token_type": "access_token", "sub": "1", "client_id": "tessera", "exp": 1795457692, "iat": 1795457392,
    "iss": "tessera", "aud": "native", "sid": "01a20999-9dca-7742-b5cc-ee8fc1217e05", "jti": "94f03935-508d-4995-b088-47f130eae6ef", "api": "native"}))]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The session (token family) the token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The API that issued the token: `native` or a dialect (`simplejwt`, `djoser`, `drf_social`,
    /// `flask`, `medods`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// A legacy token, minted by the original library of the deployment named here (`django`,
    /// `flask`) before the migration: it has no Tessera issuer and, until its first use here, no
    /// session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<&'static str>,
    /// A client's own token (client_credentials): the scopes it carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The key the token is bound to (DPoP, RFC 9449 §6.2): `{"jkt": <thumbprint>}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    /// An exchanged token's actor (RFC 8693 §4.1): `{"sub": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

/// Introspect a token (RFC 7662): an access or refresh token of any API (native or a dialect). Revoked, expired,
/// unknown and malformed tokens all give `{"active": false}`. Only confidential clients may ask.
#[utoipa::path(
    tag = "oauth2",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "What the token is, or `{\"active\": false}`", body = IntrospectResponse),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: unknown, wrong secret, or a public client", body = OAuthErrorBody),
        (status = 413, description = "Body too large", body = OAuthErrorBody),
    )
)]
#[post("/oauth/introspect")]
pub async fn introspect_token(req: HttpRequest, state: web::Data<NativeState>, payload: web::Payload) -> Result<HttpResponse, OAuthError> {
    let body = read_limited(payload, state.settings.max_body_bytes).await.map_err(body_error)?;
    let params = parse_params(&req, &body, INTROSPECT_PARAMS).map_err(body_error)?;
    let client = authenticate_client(&state, &req, &params).await?;
    if client.secret_hash.is_none() {
        // a public client proves nothing: anyone could introspect anything
        return Err(OAuthError::invalid_client(tessera_http::request::basic_credentials(&req).ok().flatten().is_some()));
    }
    let token = param(&params, "token").ok_or_else(|| OAuthError::invalid_request("Missing token parameter."))?;
    let now = OffsetDateTime::now_utc();
    let found = state.service.introspect(token, now).await.map_err(domain_error)?;
    let machine = match found {
        Some(_) => None,
        None => state.service.introspect_client_token(&state.native, token, now).await.map_err(domain_error)?,
    };
    let exchanged = match (&found, &machine) {
        (None, None) => state.service.introspect_exchanged(&state.native, token, now).await.map_err(domain_error)?,
        _ => None,
    };
    let answer = match found {
        None if let Some(x) = exchanged => IntrospectResponse {
            active: true,
            token_type: Some("access_token"),
            sub: Some(x.user_id.0.to_string()),
            client_id: Some(x.client_id),
            exp: Some(x.expires_at),
            iat: Some(x.issued_at),
            iss: Some(state.settings.issuer.clone()),
            aud: Some(x.audience),
            sid: Some(x.session_id.to_string()),
            jti: Some(x.jti.to_string()),
            api: Some(state.native.name.clone()),
            legacy: None,
            scope: x.scope,
            cnf: x.dpop_jkt.map(|jkt| serde_json::json!({ "jkt": jkt })),
            act: x.actor.map(|sub| serde_json::json!({ "sub": sub })),
        },
        None if let Some(m) = machine => IntrospectResponse {
            active: true,
            token_type: Some("access_token"),
            sub: Some(m.client_id.clone()),
            client_id: Some(m.client_id),
            exp: Some(m.expires_at),
            iat: Some(m.issued_at),
            iss: Some(state.settings.issuer.clone()),
            aud: Some(m.audience),
            sid: None,
            jti: Some(m.jti.to_string()),
            api: Some(state.native.name.clone()),
            legacy: None,
            scope: m.scope,
            cnf: m.dpop_jkt.map(|jkt| serde_json::json!({ "jkt": jkt })),
            act: None,
        },
        None => IntrospectResponse {
            active: false,
            token_type: None,
            sub: None,
            client_id: None,
            exp: None,
            iat: None,
            iss: None,
            aud: None,
            sid: None,
            jti: None,
            api: None,
            legacy: None,
            scope: None,
            cnf: None,
            act: None,
        },
        Some(i) => IntrospectResponse {
            active: true,
            token_type: Some(i.token_type),
            sub: Some(i.user_id.0.to_string()),
            client_id: i.client_id,
            exp: Some(i.expires_at),
            iat: i.issued_at,
            iss: i.legacy.is_none().then(|| state.settings.issuer.clone()),
            aud: Some(i.audience),
            sid: i.session_id.map(|s| s.to_string()),
            jti: i.jti.map(|j| j.to_string()),
            api: Some(i.face),
            legacy: i.legacy,
            scope: None,
            cnf: i.dpop_jkt.map(|jkt| serde_json::json!({ "jkt": jkt })),
            act: None,
        },
    };
    Ok(no_store(HttpResponse::Ok()).json(answer))
}
