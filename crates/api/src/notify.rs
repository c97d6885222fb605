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
    e.insert("face".into(), json!(face));
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
