//! The Authorization header: `http::bearer_token` (every face's protected routes) and
//! `http::basic_credentials` (OAuth client authentication, RFC 6749 §2.3.1). Input: the header's
//! bytes. Nothing may panic; a Bearer token holds no space.

#![no_main]

use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::test::TestRequest;
use libfuzzer_sys::fuzz_target;
use tessera_http::request::{basic_credentials, bearer_token};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let req = TestRequest::default().insert_header((AUTHORIZATION, value)).to_http_request();
    if let Ok(Some(token)) = bearer_token(&req) {
        assert!(!token.is_empty() && !token.contains(' '), "{token:?}");
    }
    let _ = basic_credentials(&req);
});
