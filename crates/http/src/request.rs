//! The HTTP pieces every face shares, the native API's included: where a request comes from,
//! the Bearer and Basic headers, mounting a face's routes with its own answer to other methods,
//! and logging an unexpected failure before a face writes its generic body.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_domain::{DomainError, RequestMeta};

/// The proxies whose `X-Forwarded-For` / `Forwarded` headers are believed
/// (`server.trusted_proxies`), as application data.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// address in its forwarding chain that is not a trusted proxy (read right to left, so a
    /// client cannot pass itself off by writing the header first). An entry that is not an
    /// address ends the walk at the last trusted hop.
    pub fn client(&self, peer: std::net::IpAddr, forwarded: &[String]) -> std::net::IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            match hop.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// The addresses of `X-Forwarded-For`, or of `Forwarded`'s `for=` (RFC 7239), in order.
fn forwarding_chain(req: &HttpRequest) -> Vec<String> {
    let headers = req.headers();
    let xff: Vec<String> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all(header::FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                if !k.trim().eq_ignore_ascii_case("for") {
                    return None;
                }
                // `for="[2001:db8::1]:4711"`, `for=192.0.2.60:80`, `for=192.0.2.60`
                let v = v.trim().trim_matches('"');
                let host = match v.strip_prefix('[') {
                    Some(rest) => rest.split(']').next().unwrap_or(""),
                    None => v.split(':').next().unwrap_or(""),
                };
                Some(host.to_owned())
            })
        })
        .collect()
}

/// Whether the request's peer is a trusted proxy, whose forwarding headers (`X-Forwarded-*`,
/// `Forwarded`) are believed.
pub fn from_trusted_proxy(req: &HttpRequest) -> bool {
    let Some(peer) = req.peer_addr() else { return false };
    req.app_data::<actix_web::web::Data<TrustedProxies>>().is_some_and(|t| t.trusts(peer.ip()))
}

/// The client's address, for sessions, risk rules and the audit: see [`TrustedProxies`].
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let Some(trusted) = req.app_data::<actix_web::web::Data<TrustedProxies>>() else { return Some(peer.to_string()) };
    Some(trusted.client(peer, &forwarding_chain(req)).to_string())
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

tokio::task_local! {
    /// The `Retry-After` a request's handling asked for (see [`retry_later`]).
    static RETRY_AFTER: std::cell::Cell<Option<u64>>;
}

/// A refusal the client should retry later: too many attempts (429) or too many hashes waiting
/// (503), with the seconds to wait. Asks for `Retry-After` on the response being made, which
/// [`with_retry_after`] adds, whatever the face's body.
pub fn retry_later(e: &DomainError) -> Option<(u16, u64)> {
    let (status, secs) = match e {
        DomainError::Throttled { retry_after } => (429, *retry_after),
        DomainError::Overloaded { retry_after } => (503, *retry_after),
        _ => return None,
    };
    let _ = RETRY_AFTER.try_with(|c| c.set(Some(secs)));
    Some((status, secs))
}

/// Runs a request's handling; returns its output and the `Retry-After` it asked for.
pub async fn with_retry_after<F: std::future::Future>(f: F) -> (F::Output, Option<u64>) {
    RETRY_AFTER
        .scope(std::cell::Cell::new(None), async {
            let out = f.await;
            (out, RETRY_AFTER.with(std::cell::Cell::get))
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(cidrs: &[&str]) -> TrustedProxies {
        TrustedProxies(cidrs.iter().map(|c| c.parse().unwrap()).collect())
    }

    fn chain(hops: &[&str]) -> Vec<String> {
        hops.iter().map(|h| (*h).to_owned()).collect()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_chain_is_read_from_the_right() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1/32"]);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // an untrusted peer's header is ignored
        assert_eq!(p.client(ip("203.0.113.5"), &chain(&["1.2.3.4"])), ip("203.0.113.5"));
        // the nearest untrusted hop is the client; what the client wrote first does not count
        assert_eq!(p.client(ip("10.0.0.2"), &chain(&["6.6.6.6", "198.51.100.7", "192.168.1.1"])), ip("198.51.100.7"));
        // only trusted hops: the farthest of them
        assert_eq!(p.client(ip("10.0.0.2"), &chain(&["10.1.1.1"])), ip("10.1.1.1"));
        // garbage ends the walk at the last trusted hop
        assert_eq!(p.client(ip("10.0.0.2"), &chain(&["1.2.3.4", "unknown"])), ip("10.0.0.2"));
        // nothing trusted: the peer
        assert_eq!(proxies(&[]).client(ip("10.0.0.2"), &chain(&["1.2.3.4"])), ip("10.0.0.2"));
    }
}
