//! The InfluxDB notifier: measurement `alerts`, one point per transition (docs/schema.md,
//! "alerts"). Time = `starts_at` for firing, `ends_at` for resolved, so a re-send (a repeat, or
//! the same transition after a restart) overwrites the same point instead of adding one.

use crate::alerts::{AlertEvent, Notification, Status};
use crate::store::line::{encode_point, FieldValue, Point};
use crate::store::writer::{WriteFailure, Writer};

use super::queue::{Deliver, Failure};

/// The measurement name (a contract with the Grafana dashboards).
pub const MEASUREMENT: &str = "alerts";

/// The `alerts` point of one event of a notification.
pub fn alert_point(e: &AlertEvent, n: &Notification) -> Point {
    let station = e.station.as_ref();
    let district = station
        .map(|s| s.district.clone())
        .or_else(|| e.labels.get("district").cloned())
        .unwrap_or_default();
    let tags = vec![
        ("rule", e.rule.clone()),
        ("level", e.level.as_str().to_string()),
        ("kind", e.kind.clone()),
        ("status", e.status.as_str().to_string()),
        ("station", station.map(|s| s.id.clone()).unwrap_or_default()),
        ("area", e.area.clone().unwrap_or_default()),
        ("district", district),
        ("param", e.param.clone().unwrap_or_default()),
    ];
    let mut fields: Vec<(String, FieldValue)> = Vec::new();
    if let Some(v) = e.value.filter(|v| v.is_finite()) {
        fields.push(("value".into(), FieldValue::F64(v)));
    }
    if let Some(t) = e.threshold.filter(|v| v.is_finite()) {
        fields.push(("threshold".into(), FieldValue::F64(t)));
    }
    fields.push(("message_zh".into(), FieldValue::Str(e.message_zh.clone())));
    fields.push(("message_en".into(), FieldValue::Str(e.message_en.clone())));
    fields.push(("title_zh".into(), FieldValue::Str(n.title_zh.clone())));
    let starts = e.starts_at.timestamp();
    fields.push(("starts_at".into(), FieldValue::I64(starts)));
    let mut time = starts;
    if e.status == Status::Resolved {
        let ends = e.ends_at.map(|t| t.timestamp()).unwrap_or(starts);
        fields.push(("ends_at".into(), FieldValue::I64(ends)));
        fields.push(("duration_s".into(), FieldValue::I64((ends - starts).max(0))));
        time = ends;
    }
    fields.push(("flapping".into(), FieldValue::Bool(e.flapping)));
    fields.push(("repeat".into(), FieldValue::Bool(n.repeat)));
    Point {
        measurement: MEASUREMENT,
        tags,
        fields,
        time,
    }
}

pub(crate) struct InfluxNotifier {
    pub writer: Writer,
}

impl Deliver for InfluxNotifier {
    async fn deliver(&mut self, n: &Notification) -> Result<(), Failure> {
        let mut body = String::new();
        for e in &n.alerts {
            encode_point(&alert_point(e, n), &mut body);
        }
        if body.is_empty() {
            return Ok(());
        }
        match self.writer.write(&body).await {
            Ok(()) => Ok(()),
            Err(f @ (WriteFailure::BadData { .. } | WriteFailure::TooLarge)) => {
                Err(Failure::Permanent {
                    kind: f.kind(),
                    detail: f.to_string(),
                })
            }
            Err(f) => Err(Failure::Retry {
                kind: f.kind(),
                detail: f.to_string(),
            }),
        }
    }
}
