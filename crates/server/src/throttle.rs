//! The per-address rate of password attempts, in memory (each instance counts its own; the
//! account lockout, which must hold across instances, is in the database). GCRA through
//! `governor`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_domain::AttemptLimiter;

/// Adds `Retry-After` to the response of a request whose handling asked for it (a 429 or 503 of
/// any face: [`tessera_http::request::retry_later`]).
pub async fn retry_after_header(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let (res, retry) = tessera_http::request::with_retry_after(next.call(req)).await;
    let mut res = res?;
    if let Some(secs) = retry {
        res.headers_mut().insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from(secs));
    }
    Ok(res)
}

/// Addresses remembered before the idle ones are dropped.
const FORGET_ABOVE: usize = 100_000;

pub struct AddressLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl AddressLimiter {
    /// `None` for 0: unlimited.
    pub fn per_minute(n: u32) -> Option<Self> {
        let n = NonZeroU32::new(n)?;
        Some(Self { limiter: RateLimiter::keyed(Quota::per_minute(n)), clock: DefaultClock::default() })
    }
}

impl AttemptLimiter for AddressLimiter {
    fn check(&self, address: &str) -> Result<(), std::time::Duration> {
        if self.limiter.len() > FORGET_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address.to_owned()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_quota_then_waits_and_others_are_not_affected() {
        let l = AddressLimiter::per_minute(3).unwrap();
        for _ in 0..3 {
            assert!(l.check("192.0.2.1").is_ok());
        }
        let wait = l.check("192.0.2.1").unwrap_err();
        assert!(wait > std::time::Duration::from_secs(1) && wait <= std::time::Duration::from_secs(20), "{wait:?}");
        assert!(l.check("192.0.2.2").is_ok());
        assert!(AddressLimiter::per_minute(0).is_none());
    }
}
