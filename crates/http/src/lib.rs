//! The HTTP pieces every Tessera API shares, the native one and the five compatible ones alike:
//!
//! - [`body`]: reading a request body ourselves, bounded, with its content type checked and its
//!   form or JSON parameters parsed (duplicates detected), so that each API can word every
//!   failure its own way;
//! - [`request`]: the client's address behind trusted proxies, the request's metadata, `Bearer`
//!   and HTTP Basic credentials, mounting routes under prefixes, and the retry-later and
//!   unexpected-failure answers;
//! - [`request_id`]: the `X-Request-Id` middleware;
//! - [`metrics`]: the request count and latency middleware, per method, route and status.
//!
//! It depends on the domain only for the types it hands over (`RequestMeta`, `DomainError`).

pub mod body;
pub mod metrics;
pub mod request;
pub mod request_id;
