//! Reading request bodies ourselves where a face needs its own error shape for every failure:
//! bounded size, content type checked, form or JSON parameters with duplicates detected.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    TooLarge(usize),
    Unreadable,
    UnsupportedMediaType(String),
    Malformed(String),
    /// The parameter that appeared more than once.
    Duplicate(String),
}

/// Reads at most `limit` bytes; more is an error, not a truncation.
pub async fn read_limited(mut payload: Payload, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// String parameters of a form-encoded or JSON-object body, in order. An empty body is no
/// parameters. JSON values must be strings (`null` counts as absent): every parameter of these
/// endpoints is a string, and a number where a string belongs is a malformed request.
///
/// A parameter of `known` given twice is an error (RFC 6749 §3.2); unknown parameters are ignored
/// however often they come, as the RFC requires of unrecognised ones.
pub fn parse_params(req: &HttpRequest, body: &[u8], known: &[&str]) -> Result<Vec<(String, String)>, BodyError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim().to_owned();
    if body.is_empty() && mime.is_empty() {
        return Ok(vec![]);
    }
    let params: Vec<(String, String)> = match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            if std::str::from_utf8(body).is_err() {
                return Err(BodyError::Malformed("the body is not UTF-8".into()));
            }
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        }
        "application/json" => {
            if body.is_empty() {
                return Ok(vec![]);
            }
            let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| BodyError::Malformed(format!("invalid JSON: {e}")))?;
            let serde_json::Value::Object(map) = value else {
                return Err(BodyError::Malformed("the JSON body must be an object".into()));
            };
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => continue,
                    _ if known.contains(&k.as_str()) => return Err(BodyError::Malformed(format!("parameter {k} must be a string"))),
                    _ => continue,
                };
                out.push((k, s));
            }
            out
        }
        other => return Err(BodyError::UnsupportedMediaType(other.to_owned())),
    };
    let mut seen = std::collections::HashSet::new();
    for (k, _) in params.iter().filter(|(k, _)| known.contains(&k.as_str())) {
        if !seen.insert(k.as_str()) {
            return Err(BodyError::Duplicate(k.clone()));
        }
    }
    Ok(params)
}

/// A parameter by name; empty values count as absent (RFC 6749 §3.1).
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}
