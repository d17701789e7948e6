//! Alertmanager (API v2): `POST {url}/api/v2/alerts` with a JSON array of
//! `{labels, annotations, startsAt, endsAt, generatorURL}` (prometheus.io/docs/alerting/latest/
//! clients/). Alertmanager resolves an alert that is not re-sent within its `resolve_timeout`
//! (default 5 m, prometheus.io/docs/alerting/latest/configuration/), so the active (firing)
//! alerts are re-sent every `resend_interval` with `endsAt = now + 4 × resend_interval`, as
//! Prometheus does (prometheus/prometheus `rules/alerting.go`, `sendAlerts`: `ValidUntil =
//! ts + 4 × max(resend delay, evaluation interval)`). A resolved event is sent with its own
//! `ends_at` (in the past: Alertmanager resolves it) and leaves the active set.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::alerts::{AlertEvent, Notification, Status};

use super::format::num;
use super::queue::{classify_reqwest, classify_status, Deliver, Failure, Worker};
use crate::text::truncate_bytes;

/// How far ahead `endsAt` of a firing alert is set, in re-send intervals (Prometheus' factor).
const VALID_FOR_RESENDS: u32 = 4;

pub(crate) struct Alertmanager {
    pub client: reqwest::Client,
    /// `{url}/api/v2/alerts`.
    pub alerts_url: reqwest::Url,
    pub resend: Duration,
    pub generator_url: Option<String>,
    pub send_resolved: bool,
    pub worker: Worker,
    /// Firing alerts by `AlertEvent::key`.
    pub active: BTreeMap<String, AlertEvent>,
}

/// A valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters become `_`.
fn label_name(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The API v2 object of one event.
pub fn alert_json(e: &AlertEvent, ends_at: DateTime<Utc>, generator_url: Option<&str>) -> Value {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &e.labels {
        if !v.is_empty() {
            labels.insert(label_name(k), v.clone());
        }
    }
    labels
        .entry("alertname".into())
        .or_insert_with(|| e.rule.clone());
    labels
        .entry("rule".into())
        .or_insert_with(|| e.rule.clone());
    labels
        .entry("level".into())
        .or_insert_with(|| e.level.as_str().to_string());
    labels
        .entry("severity".into())
        .or_insert_with(|| e.level.as_str().to_string());
    if let Some(s) = &e.station {
        labels
            .entry("station".into())
            .or_insert_with(|| s.id.clone());
    }
    let mut ann = Map::new();
    ann.insert("summary_zh".into(), json!(e.message_zh));
    ann.insert("summary_en".into(), json!(e.message_en));
    ann.insert(
        "description".into(),
        json!(format!("{}\n{}", e.message_zh, e.message_en)),
    );
    if let Some(s) = &e.station {
        ann.insert(
            "station_name".into(),
            json!(format!("{} {}", s.name, s.name_en)),
        );
        ann.insert(
            "district_name".into(),
            json!(format!("{} {}", s.district_zh, s.district)),
        );
    }
    if let Some(v) = e.value.filter(|v| v.is_finite()) {
        ann.insert("value".into(), json!(num(v)));
    }
    if let Some(t) = e.threshold.filter(|v| v.is_finite()) {
        ann.insert("threshold".into(), json!(num(t)));
    }
    if let Some(u) = e.unit.as_deref().filter(|u| !u.is_empty()) {
        ann.insert("unit".into(), json!(u));
    }
    let mut a = json!({
        "labels": labels,
        "annotations": ann,
        "startsAt": ts(e.starts_at),
        "endsAt": ts(ends_at),
    });
    if let Some(g) = generator_url {
        a["generatorURL"] = json!(g);
    }
    a
}

impl Alertmanager {
    fn valid_until(&self) -> DateTime<Utc> {
        let ahead = self.resend.saturating_mul(VALID_FOR_RESENDS);
        Utc::now() + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::hours(1))
    }

    async fn post(&self, alerts: Vec<Value>) -> Result<(), Failure> {
        if alerts.is_empty() {
            return Ok(());
        }
        let resp = self
            .client
            .post(self.alerts_url.clone())
            .json(&Value::Array(alerts))
            .send()
            .await
            .map_err(classify_reqwest)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(classify_status(status, &truncate_bytes(text, 500)))
    }
}

impl Deliver for Alertmanager {
    fn accept(&mut self, n: &Notification) -> bool {
        match n.status {
            Status::Firing => {
                for e in &n.alerts {
                    self.active.insert(e.key.clone(), e.clone());
                }
                true
            }
            Status::Resolved => {
                for e in &n.alerts {
                    self.active.remove(&e.key);
                }
                self.send_resolved
            }
        }
    }

    async fn deliver(&mut self, n: &Notification) -> Result<(), Failure> {
        let gen = self.generator_url.as_deref();
        let alerts: Vec<Value> = match n.status {
            Status::Firing => {
                let until = self.valid_until();
                n.alerts
                    .iter()
                    // Resolved meanwhile (a retry after a later resolution): do not re-fire.
                    .filter(|e| self.active.contains_key(&e.key))
                    .map(|e| alert_json(e, until, gen))
                    .collect()
            }
            Status::Resolved => n
                .alerts
                .iter()
                .map(|e| alert_json(e, e.ends_at.unwrap_or_else(Utc::now), gen))
                .collect(),
        };
        self.post(alerts).await
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.resend)
    }

    async fn tick(&mut self) {
        if self.active.is_empty() {
            return;
        }
        let until = self.valid_until();
        let gen = self.generator_url.as_deref();
        let alerts: Vec<Value> = self
            .active
            .values()
            .map(|e| alert_json(e, until, gen))
            .collect();
        let count = alerts.len();
        let stop = self.worker.stop.clone();
        let res = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = self.post(alerts) => r,
        };
        match res {
            Ok(()) => {
                tracing::debug!(notifier = %self.worker.name, count, "re-sent active alerts")
            }
            Err(f) => {
                self.worker.error(&f);
                tracing::warn!(notifier = %self.worker.name, host = %self.worker.host, count, kind = f.kind(), detail = f.detail(), "re-sending active alerts failed; next try at the next interval");
            }
        }
    }
}
