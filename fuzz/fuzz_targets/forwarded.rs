//! The client address behind trusted proxies: `http::client_ip`, which reads `X-Forwarded-For`
//! or `Forwarded` (RFC 7239) only when the peer is a trusted proxy. Input: a first byte picking
//! the peer among trusted and untrusted addresses, then header lines (`X-Forwarded-For: ...`
//! or `Forwarded: ...`, the name chosen by each line's first byte). Nothing may panic; an
//! untrusted peer's headers are never believed; the answer is an address.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{FORWARDED, HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use actix_web::web::Data;
use libfuzzer_sys::fuzz_target;
use tessera_http::request::{TrustedProxies, client_ip};

const PEERS: [&str; 6] = ["10.0.0.2", "192.168.1.1", "203.0.113.5", "::1", "2001:db8::7", "fd00::1"];
const TRUSTED: [&str; 4] = ["10.0.0.0/8", "192.168.1.1/32", "::1/128", "fd00::/8"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(peer) = PEERS[usize::from(pick) % PEERS.len()].parse::<IpAddr>() else { return };
    let Ok(trusted) = TRUSTED.iter().map(|c| c.parse()).collect::<Result<Vec<ipnet::IpNet>, _>>() else { return };
    let proxies = TrustedProxies(trusted);
    let mut req = TestRequest::default().peer_addr(SocketAddr::new(peer, 4711)).app_data(Data::new(proxies.clone()));
    for line in rest.split(|&b| b == b'\n') {
        let Some((&which, value)) = line.split_first() else { continue };
        let Ok(value) = HeaderValue::from_bytes(value) else { continue };
        let name = if which & 1 == 0 { HeaderName::from_static("x-forwarded-for") } else { FORWARDED };
        req = req.append_header((name, value));
    }
    let req = req.to_http_request();
    let Some(ip) = client_ip(&req) else { panic!("a request with a peer has a client address") };
    let Ok(ip) = ip.parse::<IpAddr>() else { panic!("{ip:?} is not an address") };
    let trusts = |a: IpAddr| proxies.0.iter().any(|n| n.contains(&a));
    if !trusts(peer) {
        assert_eq!(ip, peer, "an untrusted peer's headers were believed");
    }
});
