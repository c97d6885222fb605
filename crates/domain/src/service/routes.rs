//! Finding a refresh token by its route (see [`crate::Route`]): on the route its secret names,
//! and everywhere only while tokens issued before routing keys may still be live.

use super::*;

/// How long an answer of [`SessionRepository::unrouted_tokens_live`] that some may live is
/// trusted; once none may, it stays so (every token issued since names its route).
const UNROUTED_RECHECK: Duration = Duration::minutes(1);

/// What the store last said of tokens issued before routing keys.
#[derive(Debug, Default)]
pub(super) struct Unrouted {
    /// When it was asked, and whether one may be live.
    answer: Option<(OffsetDateTime, bool)>,
}

impl TokenService {
    /// A refresh token and its session: on the route the secret names, then, while tokens issued
    /// before routing keys may be live, anywhere (such a token's bytes name an arbitrary route).
    pub(super) async fn find_refresh(
        &self,
        secret: &RefreshSecret,
        hash: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(RefreshRecord, Session)>, DomainError> {
        if let Some(found) = self.store.refresh_by_hash(hash, Some(secret.route())).await? {
            return Ok(Some(found));
        }
        if self.unrouted_may_live(now).await? {
            return Ok(self.store.refresh_by_hash(hash, None).await?);
        }
        Ok(None)
    }

    /// Whether a token issued before routing keys may still be live: asked of the store at most
    /// once a minute while one may, never again once none may.
    pub(super) async fn unrouted_may_live(&self, now: OffsetDateTime) -> Result<bool, DomainError> {
        let known = self.unrouted.lock().ok().and_then(|u| u.answer);
        match known {
            Some((_, false)) => return Ok(false),
            Some((at, true)) if now >= at && now - at < UNROUTED_RECHECK => return Ok(true),
            _ => {}
        }
        let live = self.store.unrouted_tokens_live(now).await?;
        if let Ok(mut u) = self.unrouted.lock() {
            u.answer = Some((now, live));
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{auth, logged_in, rotate, world};
    use super::*;
    use crate::ports::SessionRepository;
    use crate::secret::SecretEncoding;

    /// A token as issued before routing keys: a session like `like` whose refresh secret's first
    /// bytes name another route than its user's.
    async fn unrouted_token(w: &super::super::tests::World, like: SessionId, now: OffsetDateTime) -> RefreshSecret {
        let session = w.store.session(like, None).await.unwrap().unwrap();
        let mut bytes = crate::secret::random_bytes::<32>().unwrap();
        bytes[..2].copy_from_slice(&(session.user_id.route().0 ^ 0x5a5a).to_be_bytes());
        let secret = RefreshSecret::from_bytes(bytes.to_vec()).unwrap();
        let session = Session { id: SessionId(Uuid::now_v7()), ..session };
        let record = RefreshRecord {
            hash: w.svc.secret_hash(secret.as_bytes()),
            session_id: session.id,
            parent: None,
            access_jti: Uuid::new_v4(),
            issued_at: now,
            expires_at: now + Duration::days(1),
            rotated_at: None,
            sealed_secret: None,
            sealed_pair: None,
        };
        w.store.open_session(&session, &record).await.unwrap();
        secret
    }

    #[tokio::test]
    async fn a_token_issued_before_routing_keys_refreshes_and_its_child_names_its_route() {
        let w = world();
        let p0 = logged_in(&w).await;
        // tokens issued now name their user's route in their first two bytes
        let named = RefreshSecret::parse(&p0.refresh_token, SecretEncoding::UrlSafe).unwrap().route();
        assert_eq!(named, p0.user_id.route());

        let t = time::macros::datetime!(2026-05-01 09:01 UTC);
        let old = unrouted_token(&w, p0.session_id, t).await;
        assert_ne!(old.route(), p0.user_id.route());
        w.store.issued_before_routes(w.svc.secret_hash(old.as_bytes()));
        let p1 = rotate(&w, &old.encode(SecretEncoding::UrlSafe), Some("app"), None, t).await.unwrap();
        assert_eq!(RefreshSecret::parse(&p1.refresh_token, SecretEncoding::UrlSafe).unwrap().route(), p0.user_id.route());
        // the child refreshes on its route, and the old token is reuse as anywhere
        rotate(&w, &p1.refresh_token, Some("app"), None, t + Duration::seconds(1)).await.unwrap();
        let err = rotate(&w, &old.encode(SecretEncoding::UrlSafe), Some("app"), None, t + Duration::seconds(30)).await.unwrap_err();
        assert_eq!(auth(err), AuthError::TokenReused);
    }

    #[tokio::test]
    async fn once_no_token_issued_before_routing_keys_can_live_none_is_looked_for_elsewhere() {
        let w = world();
        let p0 = logged_in(&w).await;
        let t = time::macros::datetime!(2026-05-01 09:01 UTC);
        // the same kind of token, but the store knows of no token issued before routing keys:
        // a token is looked for on the route it names, and only there
        let old = unrouted_token(&w, p0.session_id, t).await;
        let err = rotate(&w, &old.encode(SecretEncoding::UrlSafe), Some("app"), None, t).await.unwrap_err();
        assert_eq!(auth(err), AuthError::TokenInvalid);
    }
}
