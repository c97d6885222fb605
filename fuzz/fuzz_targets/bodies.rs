//! The form and JSON body readers: `body::parse_params` (the native OAuth endpoints and
//! drf-social-oauth2: form-urlencoded or JSON, duplicates of known parameters refused) and DRF's
//! `parse_json` with its `char_field`s (simplejwt, djoser). Input: a first byte choosing the
//! Content-Type (one of the usual ones, or the bytes up to the first newline), then the body.
//! Nothing may panic; a parameter the reader accepts appears once when it is a known one.

#![no_main]

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::test::TestRequest;
use libfuzzer_sys::fuzz_target;
use serde_json::Map;
use tessera_http::body::{param, parse_params};
use tessera_dialects::drf::{char_field, parse_json};

const TYPES: [&str; 5] =
    ["application/x-www-form-urlencoded", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON ;x=y", "text/plain"];
/// The parameters of the native token endpoint, drf-social-oauth2's and simplejwt's.
const KNOWN: [&str; 8] = ["grant_type", "username", "password", "refresh_token", "client_id", "client_secret", "scope", "token"];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let (content_type, body): (Option<Vec<u8>>, &[u8]) = match usize::from(choice) {
        i if i < TYPES.len() => (Some(TYPES[i].as_bytes().to_vec()), rest),
        i if i == TYPES.len() => (None, rest),
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(n) => (Some(rest[..n].to_vec()), &rest[n + 1..]),
            None => (None, rest),
        },
    };
    let header = content_type.as_deref().and_then(|ct| HeaderValue::from_bytes(ct).ok());
    let mut req = TestRequest::default();
    if let Some(h) = &header {
        req = req.insert_header((CONTENT_TYPE, h.clone()));
    }
    let req = req.to_http_request();
    if let Ok(params) = parse_params(&req, body, &KNOWN) {
        for k in KNOWN {
            assert!(params.iter().filter(|(p, _)| p == k).count() <= 1, "{k} accepted twice");
            let _ = param(&params, k);
        }
    }
    let shown = header.as_ref().and_then(|h| h.to_str().ok());
    let data = match parse_json(shown, Ok(body)) {
        Ok(data) => data,
        Err((status, _)) => {
            assert!(matches!(status, 400 | 415), "status {status}");
            return;
        }
    };
    let mut errors = Map::new();
    for k in KNOWN {
        let _ = char_field(&data, k, &mut errors);
    }
});
