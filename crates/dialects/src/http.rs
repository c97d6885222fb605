//! The HTTP pieces every face shares, the native API's included: where a request comes from,
//! the Bearer and Basic headers, mounting a face's routes with its own answer to other methods,
//! and logging an unexpected failure before a face writes its generic body.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_domain::{DomainError, RequestMeta};

/// The peer address, for the session record.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// Where a request comes from, as the use-cases see it.
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta { ip: client_ip(req), user_agent: user_agent(req) }
}

/// An Authorization header that names a scheme but is not `<scheme> <credentials>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The token of a `Bearer` header: `None` when there is no header or another scheme.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, Malformed> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| Malformed)?;
    let mut parts = value.split(' ').filter(|p| !p.is_empty());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token)),
        (Some(scheme), _, _) if !scheme.eq_ignore_ascii_case("bearer") => Ok(None),
        _ => Err(Malformed),
    }
}

/// `client_id:client_secret` of an HTTP Basic header, each form-urlencoded (RFC 6749 §2.3.1):
/// `None` when there is no header or another scheme.
pub fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, Malformed> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| Malformed)?;
    let Some((scheme, rest)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or(Malformed)?;
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
    Ok(Some((unescape(id), unescape(secret))))
}

/// Logs an unexpected failure with its whole cause chain; returns the status a face answers
/// with (503 when the store is unreachable, else 500). The body is the face's own and says
/// nothing of the cause.
pub fn unexpected(e: &(dyn std::error::Error + 'static)) -> u16 {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    tracing::error!(error = %chain, "request failed");
    match e.downcast_ref::<DomainError>() {
        Some(DomainError::Repo(_)) => 503,
        _ => 500,
    }
}

/// Builds one route of a face (its method and handler).
pub type MakeRoute = fn() -> actix_web::Route;

/// A face's answer to a method a path does not serve: the request, and the `Allow` value (the
/// methods it does serve).
pub type OtherMethods = fn(&HttpRequest, &str) -> actix_web::HttpResponse;

/// One route of a face: its path under the face's prefix, its method, its handler, and the path
/// under which the handler documents itself (`#[utoipa::path]`), from which the served OpenAPI
/// document takes the operation.
#[derive(Clone, Copy)]
pub struct Route {
    pub path: &'static str,
    pub method: HttpMethod,
    pub make: MakeRoute,
    pub doc: &'static str,
}

/// The methods a face serves; each maps to actix's and to OpenAPI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// Where a face is mounted: its prefixes, and whether a path is served with and without its
/// trailing slash (Django's clients send the slash; the documented form has it).
#[derive(Debug, Clone)]
pub struct Mount {
    pub prefixes: Vec<String>,
    pub both_slashes: bool,
}

impl Mount {
    /// Every path a route answers at.
    pub fn paths(&self, path: &str) -> Vec<String> {
        let mut out = vec![];
        for prefix in &self.prefixes {
            let base = format!("{prefix}{}", path.trim_end_matches('/'));
            if self.both_slashes {
                out.push(format!("{base}/"));
            }
            out.push(base);
        }
        out.dedup();
        out
    }

    /// The documented path of a route under each prefix.
    pub fn documented(&self, path: &str) -> Vec<String> {
        let slash = if self.both_slashes { "/" } else { "" };
        self.prefixes.iter().map(|p| format!("{p}{}{slash}", path.trim_end_matches('/'))).collect()
    }
}

/// Mounts a face's routes: each path once with every method given for it, the face's data, and
/// the face's own answer to any other method, which names the methods served in `Allow`. Every
/// answer carries `Cache-Control: no-store`: they hold tokens, or say something of one.
pub fn mount<T: 'static>(
    cfg: &mut actix_web::web::ServiceConfig,
    face: &actix_web::web::Data<T>,
    at: &Mount,
    routes: &[Route],
    other: OtherMethods,
) {
    let mut by_path: Vec<(String, Vec<Route>)> = vec![];
    for route in routes {
        for p in at.paths(route.path) {
            match by_path.iter_mut().find(|(q, _)| *q == p) {
                Some((_, rs)) => rs.push(*route),
                None => by_path.push((p, vec![*route])),
            }
        }
    }
    for (path, routes) in by_path {
        let allow = routes.iter().map(|r| r.method.as_str()).collect::<Vec<_>>().join(", ");
        let mut resource = actix_web::web::resource(path).app_data(face.clone());
        for r in &routes {
            resource = resource.route((r.make)());
        }
        let answer = move |req: HttpRequest| std::future::ready(other(&req, &allow));
        let no_store =
            actix_web::middleware::DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")).add((header::PRAGMA, "no-cache"));
        cfg.service(resource.default_service(actix_web::web::to(answer)).wrap(no_store));
    }
}

/// A dialect's mount points: its prefix, then any more it is also mounted under.
pub fn prefixes(prefix: &str, more: &[String]) -> Vec<String> {
    let mut all = vec![prefix.to_owned()];
    for p in more {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
}
