//! Slow clients cannot hold connections, and so file descriptors, for ever (issue 22): a deadline
//! on each request's body, the descriptor limit raised to its hard limit at start, and a cap on
//! connections with headroom below it. Headers alone are cut by actix at 5 s, idle keep-alive
//! connections at `server.keep_alive_seconds`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONNECTION, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, ResponseError, web};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use tessera_native::problem::Problem;

/// A request body that yields an error once its deadline has passed without it ending.
struct Deadline {
    inner: Payload,
    at: Instant,
    /// Made the first time the body has to be waited for: a body that is there at once costs
    /// no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Rc<Cell<bool>>,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => {
                let at = this.at;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        this.expired.set(true);
                        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body did not arrive in time");
                        Poll::Ready(Some(Err(PayloadError::Io(timed_out))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// `server.body_timeout_seconds`, as the app's data for [`body_deadline`].
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub u64);

/// Gives every request body `server.body_timeout_seconds` to arrive, from the end of its
/// headers. A body read past the deadline fails, whoever reads it (a JSON extractor or a face's
/// own reader), and the response is then a 408 that closes the connection, whatever the handler
/// made of the failure.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    let seconds = req.app_data::<web::Data<BodyTimeout>>().map_or(10, |t| t.0);
    let expired = Rc::new(Cell::new(false));
    match req.take_payload() {
        Payload::None => {}
        inner => {
            let at = Instant::now() + Duration::from_secs(seconds);
            let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Deadline { inner, at, sleep: None, expired: expired.clone(), done: false });
            req.set_payload(Payload::from(stream));
        }
    }
    let res = next.call(req).await;
    if !expired.get() {
        return res.map(ServiceResponse::map_into_left_body);
    }
    tracing::info!(timeout_seconds = seconds, "a request body did not arrive in time: 408, connection closed");
    let problem =
        Problem::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", format!("the request body did not arrive within {seconds} seconds"));
    // (the request cannot be kept aside before routing: routing needs it unshared)
    let (http_req, _) = res?.into_parts();
    let mut timeout = problem.error_response();
    timeout.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    timeout.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(ServiceResponse::new(http_req, timeout).map_into_right_body())
}

/// Descriptors kept for everything but client connections: the database pool, the metrics
/// listener, log and database files, outgoing HTTP and SMTP connections.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft limit on open files to the hard one; the limit in force after, if known.
pub fn raise_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit (RLIMIT_NOFILE)");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// The connections to accept, across workers: `configured` (0: as many as possible), never more
/// than the descriptor limit allows with headroom for the database pool and the rest.
pub fn connection_cap(configured: usize, descriptor_limit: Option<u64>, db_pool: u32) -> usize {
    let Some(limit) = descriptor_limit else {
        return if configured == 0 { 10_000 } else { configured };
    };
    let reserve = RESERVED_DESCRIPTORS + u64::from(db_pool);
    let available = limit.saturating_sub(reserve).max(limit / 2).max(1);
    let available = usize::try_from(available).unwrap_or(usize::MAX);
    match configured {
        0 => available,
        n if n > available => {
            tracing::warn!(
                configured = n,
                max_connections = available,
                open_files_limit = limit,
                "server.max_connections is above what the open-files limit allows: lowered"
            );
            available
        }
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_cap_leaves_headroom_below_the_descriptor_limit() {
        assert_eq!(connection_cap(0, Some(2048), 16), 2048 - 128 - 16);
        assert_eq!(connection_cap(100, Some(2048), 16), 100);
        assert_eq!(connection_cap(5000, Some(2048), 16), 2048 - 128 - 16, "lowered to what the limit allows");
        assert_eq!(connection_cap(0, Some(256), 16), 128, "a small limit: half of it");
        assert_eq!(connection_cap(0, None, 16), 10_000);
    }
}
