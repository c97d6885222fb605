//! The e-mail channel's settings: the SMTP server and sender, checked, and what is sent.

use serde::Deserialize;

use super::{ConfigError, redact};

/// The e-mail channel: notices to users (a refresh from a new address, a password change).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// The SMTP server: `smtp://host:25` (plain), `smtp://host:587?tls=required` (STARTTLS),
    /// `smtps://user:password@host:465` (TLS). Empty: no e-mail is sent.
    pub smtp_url: String,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Send the notice of a password change to the user.
    pub password_changed: bool,
    /// Send the `notify` risk signals (Medods: a refresh from a new IP address) to the user.
    pub risk_signals: bool,
}

impl EmailSettings {
    /// The sender and the SMTP transport, checked; `None` when no SMTP server is configured. An
    /// error names the setting at fault.
    pub fn smtp(&self) -> Result<Option<(lettre::message::Mailbox, lettre::transport::smtp::AsyncSmtpTransportBuilder)>, ConfigError> {
        let url = self.smtp_url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let from = self.from.parse().map_err(|e| ConfigError::new("email.from", format!("is not an address: {e}")))?;
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| ConfigError::new("email.smtp_url", format!("is not an SMTP URL (smtp://host:25, smtps://…): {e}")))?;
        Ok(Some((from, transport)))
    }
}

/// `smtp_url` may hold the SMTP password: its `Debug` shows the URL without it.
impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &redact(&self.smtp_url))
            .field("from", &self.from)
            .field("password_changed", &self.password_changed)
            .field("risk_signals", &self.risk_signals)
            .finish()
    }
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self { smtp_url: String::new(), from: "Tessera <tessera@localhost>".into(), password_changed: true, risk_signals: true }
    }
}
