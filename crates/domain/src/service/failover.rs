//! Rotations whose answer may have been lost in a database failover.
//!
//! A rotation that fails because the store became unreachable may still have committed: a primary
//! can die after its synchronous standby flushed the commit and before it told Tessera. The client
//! got a 503 and, as it should, presents its old refresh token again once the database is back,
//! which is usually later than the grace window. Read strictly, that is reuse, and the session
//! would be revoked by a failover (Keycloak's issue #49213). So after a rotation has failed on an
//! unreachable store, the grace window is widened, for a while, to cover every rotation made
//! since just before that failure. What is widened is only the grace window, with all its own
//! conditions: the parent's child must be unused, its sealed secret kept, and it is the same
//! child that is returned. Faces with no grace window (strict single use) are not widened.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// How long after the last failed rotation the window stays widened.
pub(crate) const LOST_ANSWER_HORIZON: Duration = Duration::minutes(2);
/// The widest the window gets, however long the database was away.
pub(crate) const LOST_ANSWER_MAX_GRACE: Duration = Duration::minutes(5);

/// The first and last failed rotations of the latest outage.
#[derive(Debug, Default)]
pub(crate) struct LostAnswers(Mutex<Option<(OffsetDateTime, OffsetDateTime)>>);

impl LostAnswers {
    /// A rotation failed at `now` on an unreachable store.
    pub(crate) fn note(&self, now: OffsetDateTime) {
        if let Ok(mut w) = self.0.lock() {
            *w = match *w {
                // the same outage: it began at its first failure
                Some((first, last)) if now - last <= LOST_ANSWER_HORIZON => Some((first, now.max(last))),
                _ => Some((now, now)),
            };
        }
    }

    /// The grace window for a rotation at `now` of a face whose own window is `grace`.
    pub(crate) fn grace(&self, grace: Duration, now: OffsetDateTime) -> Duration {
        if grace <= Duration::ZERO {
            return grace;
        }
        let window = self.0.lock().ok().and_then(|w| *w);
        match window {
            Some((first, last)) if now - last <= LOST_ANSWER_HORIZON => {
                (now - first + grace).clamp(grace, LOST_ANSWER_MAX_GRACE.max(grace))
            }
            _ => grace,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);

    #[test]
    fn no_failure_keeps_the_faces_window() {
        let l = LostAnswers::default();
        assert_eq!(l.grace(Duration::seconds(5), T), Duration::seconds(5));
    }

    #[test]
    fn after_a_failure_the_window_reaches_back_to_it_for_a_while() {
        let l = LostAnswers::default();
        l.note(T);
        l.note(T + Duration::seconds(8));
        // 20 s after the first failure: rotations since 5 s before it are still retries
        assert_eq!(l.grace(Duration::seconds(5), T + Duration::seconds(20)), Duration::seconds(25));
        // strict single use stays strict
        assert_eq!(l.grace(Duration::ZERO, T + Duration::seconds(20)), Duration::ZERO);
        // capped, and back to the face's own once the horizon has passed since the last failure
        assert_eq!(l.grace(Duration::seconds(5), T + Duration::seconds(8) + LOST_ANSWER_HORIZON), Duration::seconds(133));
        assert_eq!(l.grace(Duration::seconds(5), T + Duration::seconds(9) + LOST_ANSWER_HORIZON), Duration::seconds(5));
    }

    #[test]
    fn a_later_outage_starts_a_window_of_its_own() {
        let l = LostAnswers::default();
        l.note(T);
        l.note(T + Duration::hours(1));
        assert_eq!(l.grace(Duration::seconds(5), T + Duration::hours(1) + Duration::seconds(10)), Duration::seconds(15));
        assert_eq!(l.grace(Duration::seconds(5), T + Duration::hours(1) + LOST_ANSWER_MAX_GRACE), Duration::seconds(5));
    }
}
