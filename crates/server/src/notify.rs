//! Where the faces' `notify` risk signals go: a POST of one JSON event per signal to the face's
//! configured webhook, in the background, so a refresh never waits for it. Faces without a
//! webhook only log the signal (the core logs every one).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tessera_domain::ports::Notifier;
use tessera_domain::{OffsetDateTime, RiskCondition, RiskSignal, Session};

pub struct WebhookNotifier {
    http: reqwest::Client,
    /// Webhook URL by face name.
    urls: BTreeMap<String, String>,
}

impl WebhookNotifier {
    pub fn new(urls: BTreeMap<String, String>) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http, urls })
    }
}

/// One signal as the webhook receives it. The session's subject (Medods: `user_id` and `GUID`)
/// names the user in the face's own terms; otherwise the user id is Tessera's.
pub fn event(face: &str, session: &Session, signal: &RiskSignal, now: OffsetDateTime) -> Value {
    let (name, previous, current) = match signal.condition {
        RiskCondition::IpChanged => ("refresh_from_new_ip", "previous_ip", "ip"),
        RiskCondition::UserAgentChanged => ("refresh_with_new_user_agent", "previous_user_agent", "user_agent"),
    };
    let mut e = Map::new();
    e.insert("event".into(), json!(name));
    e.insert("api".into(), json!(face));
    e.insert("session_id".into(), json!(session.id.0));
    e.insert("user_id".into(), json!(session.user_id.0));
    if let Some(Value::Object(subject)) = session.subject.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        e.extend(subject);
    }
    e.insert(previous.into(), json!(signal.previous));
    e.insert(current.into(), json!(signal.current));
    e.insert("at".into(), json!(now.unix_timestamp()));
    Value::Object(e)
}

impl Notifier for WebhookNotifier {
    fn notify(&self, face: &str, session: &Session, signals: &[RiskSignal], now: OffsetDateTime) {
        let Some(url) = self.urls.get(face).cloned() else { return };
        for s in signals {
            let body = event(face, session, s, now);
            let (http, url) = (self.http.clone(), url.clone());
            tokio::spawn(async move {
                if let Err(e) = http.post(&url).json(&body).send().await.and_then(reqwest::Response::error_for_status) {
                    tracing::warn!(error = %e, "the risk webhook failed");
                }
            });
        }
    }
}

/// Every channel a notice goes out on: the face's webhook and, when configured, e-mail to the
/// user.
pub struct Channels {
    webhook: WebhookNotifier,
    mail: Option<std::sync::Arc<crate::mail::Mailer>>,
    store: std::sync::Arc<dyn tessera_domain::ports::Store>,
    risk_by_mail: bool,
    password_by_mail: bool,
}

impl Channels {
    pub fn new(
        webhook: WebhookNotifier,
        mail: Option<crate::mail::Mailer>,
        store: std::sync::Arc<dyn tessera_domain::ports::Store>,
        settings: &crate::config::EmailSettings,
    ) -> Self {
        Self {
            webhook,
            mail: mail.map(std::sync::Arc::new),
            store,
            risk_by_mail: settings.risk_signals,
            password_by_mail: settings.password_changed,
        }
    }
}

impl Notifier for Channels {
    fn notify(&self, face: &str, session: &Session, signals: &[RiskSignal], now: OffsetDateTime) {
        self.webhook.notify(face, session, signals, now);
        let Some(mail) = self.mail.clone().filter(|_| self.risk_by_mail) else { return };
        let (store, user_id, signals) = (self.store.clone(), session.user_id, signals.to_vec());
        tokio::spawn(async move {
            match store.user_by_id(user_id).await {
                Ok(Some(user)) => {
                    for s in &signals {
                        let (subject, body) = crate::mail::risk_signal(&user, s, now);
                        mail.send(&user, subject, body);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the user of a risk signal could not be read"),
            }
        });
    }

    fn password_changed(&self, user: &tessera_domain::User, by_operator: bool, now: OffsetDateTime) {
        if let Some(mail) = self.mail.as_ref().filter(|_| self.password_by_mail) {
            let (subject, body) = crate::mail::password_changed(user, by_operator, now);
            mail.send(user, subject, body);
        }
    }
}
