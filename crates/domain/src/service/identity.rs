//! External identities: the local user of a trusted provider's subject.

use super::*;
use crate::ports::IdentityVerifier;

impl TokenService {
    /// The local user an external identity is linked to, created on first sight.
    pub async fn user_for_identity(&self, provider: &str, subject: &str, now: OffsetDateTime) -> Result<User, DomainError> {
        if let Some(u) = self.store.user_by_identity(provider, subject).await? {
            return Ok(u);
        }
        // A reserved-domain placeholder: the user has no e-mail of its own (RFC 2606 .invalid).
        let tag = self.secret_hash(format!("{provider}\0{subject}").as_bytes());
        let local: String = tag.0[..10].iter().map(|b| format!("{b:02x}")).collect();
        let email = Email::parse(&format!("{provider}-{local}@identities.invalid"))?;
        Ok(self.store.create_user_with_identity(provider, subject, &email, now).await?)
    }

    /// The local user of an ID token of `provider`, checked by its `verifier`: created on first
    /// sight, as [`Self::user_for_external_identity`] says. A token the provider does not vouch
    /// for is `TokenInvalid`.
    pub async fn user_for_external_token(
        &self,
        provider: &str,
        verifier: &dyn IdentityVerifier,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<User, DomainError> {
        let identity = verifier.verify(token).await.ok_or(AuthError::TokenInvalid)?;
        self.user_for_external_identity(provider, &identity.subject, identity.verified_email.as_deref(), now).await
    }

    /// The local user of an external identity provider's subject, created on first sight with
    /// the provider's e-mail when that e-mail is free. An existing account with the same
    /// e-mail is not linked automatically: whoever controls the provider would take it over.
    pub async fn user_for_external_identity(
        &self,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<User, DomainError> {
        if let Some(u) = self.store.user_by_identity(provider, subject).await? {
            return Ok(u);
        }
        if let Some(e) = email.and_then(|e| Email::parse(e).ok()).filter(|e| !e.is_reserved()) {
            match self.store.create_user_with_identity(provider, subject, &e, now).await {
                Ok(u) => return Ok(u),
                Err(crate::RepoError::Conflict("users_email_key")) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.user_for_identity(provider, subject, now).await
    }
}
