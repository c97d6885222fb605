//! The e-mail channel: plain-text notices to users over SMTP (`lettre`). Every message is sent
//! in the background; a failure is logged (never with the message's content) and changes
//! nothing for the request that caused it. Users without a mailbox of their own (those created
//! for an external identity, `…@identities.invalid`) get none.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tessera_domain::{OffsetDateTime, RiskCondition, RiskSignal, User};

use crate::config::{ConfigError, EmailSettings};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `None` when no SMTP server is configured; an error names the setting at fault.
    pub fn from_settings(settings: &EmailSettings) -> Result<Option<Self>, ConfigError> {
        Ok(settings.smtp()?.map(|(from, transport)| Self { transport: transport.timeout(Some(Duration::from_secs(10))).build(), from }))
    }

    /// Sends in the background.
    pub fn send(self: &Arc<Self>, to: &User, subject: &'static str, body: String) {
        let address = to.email.to_string();
        if address.ends_with(".invalid") {
            return;
        }
        let Ok(to_box) = address.parse::<Mailbox>() else {
            tracing::warn!(user_id = %to.id, "the user's address cannot take mail");
            return;
        };
        let message = Message::builder().from(self.from.clone()).to(to_box).subject(subject).header(ContentType::TEXT_PLAIN).body(body);
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(user_id = %to.id, error = %e, "an e-mail could not be built");
                return;
            }
        };
        let (me, user_id) = (self.clone(), to.id);
        tokio::spawn(async move {
            match me.transport.send(message).await {
                Ok(_) => tracing::info!(user_id = %user_id, subject, "e-mail sent"),
                Err(e) => tracing::warn!(user_id = %user_id, subject, error = %e, "an e-mail could not be sent"),
            }
        });
    }
}

fn when(now: OffsetDateTime) -> String {
    now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default()
}

/// The notice of a password change.
pub fn password_changed(user: &User, by_operator: bool, now: OffsetDateTime) -> (&'static str, String) {
    let who = if by_operator { "An administrator set a new password" } else { "The password was changed" };
    let body = format!(
        "Hello,\n\n{who} for your account {email} on {at}. Every other session of the account has been signed out.\n\n\
         If this was not you, contact your administrator at once.\n",
        email = user.email,
        at = when(now),
    );
    ("Your password was changed", body)
}

/// The warning of a refresh-time risk signal (Medods: a refresh from a new IP address).
pub fn risk_signal(user: &User, signal: &RiskSignal, now: OffsetDateTime) -> (&'static str, String) {
    let (subject, what) = match signal.condition {
        RiskCondition::IpChanged => ("Your session was used from a new address", "IP address"),
        RiskCondition::UserAgentChanged => ("Your session was used from a new device", "device (User-Agent)"),
    };
    let body = format!(
        "Hello,\n\nA session of your account {email} was renewed on {at} from a new {what}: {current} \
         (before: {previous}).\n\nIf this was not you, change your password: that signs out every other session.\n",
        email = user.email,
        at = when(now),
        current = signal.current.as_deref().unwrap_or("unknown"),
        previous = signal.previous.as_deref().unwrap_or("unknown"),
    );
    (subject, body)
}
