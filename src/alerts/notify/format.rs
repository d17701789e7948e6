//! Operator-facing text of the notifiers: the robots' markdown (Chinese first, English beside
//! it) and the generic webhook's JSON body. Pure functions.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::alerts::{AlertEvent, Notification, Status};

/// Stations of the registry are in China; `AlertEvent` carries no time zone, so times in
/// messages are China Standard Time (UTC+8, IANA `Asia/Shanghai`).
const LOCAL_TZ: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// `2026-11-23 08:00 (UTC+8)`.
pub fn local_time(t: DateTime<Utc>) -> String {
    format!(
        "{} (UTC+8)",
        t.with_timezone(&LOCAL_TZ).format("%Y-%m-%d %H:%M")
    )
}

/// A duration in both languages: (`1 小时 20 分`, `1 h 20 min`). Seconds only under a minute.
pub fn duration_text(secs: i64) -> (String, String) {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if s < 60 {
        return (format!("{s} 秒"), format!("{s} s"));
    }
    let mut zh = Vec::new();
    let mut en = Vec::new();
    if d > 0 {
        zh.push(format!("{d} 天"));
        en.push(format!("{d} d"));
    }
    if h > 0 {
        zh.push(format!("{h} 小时"));
        en.push(format!("{h} h"));
    }
    if m > 0 && d == 0 {
        zh.push(format!("{m} 分"));
        en.push(format!("{m} min"));
    }
    (zh.join(" "), en.join(" "))
}

/// A number as an operator reads it: integers without decimals, else up to 3 decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    // GB/T 8170 rounding on the value's decimal digits (crate::num), then printed.
    let s = format!("{:.3}", crate::num::round_dp(v, 3));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The display spelling of a canonical (ASCII) unit of docs/schema.md: `ug/m3` → `µg/m³`.
pub fn display_unit(u: &str) -> &str {
    match u {
        "ug/m3" => "µg/m³",
        "mg/m3" => "mg/m³",
        "ug/L" => "µg/L",
        "uS/cm" => "µS/cm",
        "degC" => "°C",
        "deg" => "°",
        other => other,
    }
}

fn with_unit(v: f64, unit: Option<&str>) -> String {
    match unit {
        Some(u) if !u.is_empty() => format!("{} {}", num(v), display_unit(u)),
        _ => num(v),
    }
}

/// Markdown hard line break, understood by both robots' renderers.
const BR: &str = "  \n";

/// The lines of one alert: `message_zh`, `message_en`, then station, value/threshold and time.
pub fn alert_lines(e: &AlertEvent) -> String {
    let mut lines = vec![e.message_zh.clone(), e.message_en.clone()];
    if let Some(s) = &e.station {
        lines.push(format!(
            "站点 / Station: {} {} · {} / {} · {}",
            s.name, s.name_en, s.district_zh, s.district, s.id
        ));
    } else if let Some(a) = &e.area {
        lines.push(format!("区域 / Area: {a}"));
    }
    let param = e.param.as_deref().unwrap_or("");
    let unit = e.unit.as_deref();
    let mut vt = Vec::new();
    if let Some(v) = e.value {
        vt.push(format!("数值 / Value: {param} {}", with_unit(v, unit)));
    }
    if let Some(t) = e.threshold {
        vt.push(format!("阈值 / Threshold: {}", with_unit(t, unit)));
    }
    if !vt.is_empty() {
        lines.push(vt.join(" · "));
    }
    let mut time = format!("开始 / Since: {}", local_time(e.starts_at));
    if let (Status::Resolved, Some(end)) = (e.status, e.ends_at) {
        let (zh, en) = duration_text((end - e.starts_at).num_seconds());
        time.push_str(&format!(
            " · 结束 / Ended: {} · 持续 / Duration: {zh} / {en}",
            local_time(end)
        ));
    }
    if e.flapping {
        time.push_str(" · 频繁波动 / Flapping");
    }
    lines.push(time);
    lines.join(BR)
}

/// `**【预警】… / [Warning] …**` and the status line.
pub fn title_line(n: &Notification) -> String {
    let repeat = if n.repeat {
        " · 重复提醒 / Reminder"
    } else {
        ""
    };
    format!(
        "**{} / {}**{BR}{}: {} / {}{repeat}",
        n.title_zh,
        n.title_en,
        "状态 / Status",
        n.status.zh(),
        n.status.en()
    )
}

/// `…另有 N 条 / … and N more`.
pub fn more_line(n: usize) -> String {
    format!("…另有 {n} 条 / … and {n} more")
}

/// The markdown of one notification within `max_bytes`: the title, then as many whole alerts
/// as fit, then a "… and N more" line for the rest. Returns the text and how many alerts it
/// left out. A title alone longer than the limit is cut on a char boundary.
pub fn notification_markdown(n: &Notification, max_bytes: usize) -> (String, usize) {
    let mut out = title_line(n);
    let mut shown = 0;
    for e in &n.alerts {
        let block = alert_lines(e);
        let left_after = n.alerts.len() - shown - 1;
        let reserve = if left_after > 0 {
            2 + more_line(left_after).len()
        } else {
            0
        };
        if out.len() + 2 + block.len() + reserve > max_bytes {
            break;
        }
        out.push_str("\n\n");
        out.push_str(&block);
        shown += 1;
    }
    let left = n.alerts.len() - shown;
    if left > 0 {
        let more = more_line(left);
        if out.len() + 2 + more.len() <= max_bytes {
            out.push_str("\n\n");
            out.push_str(&more);
        }
    }
    (truncate_bytes(out, max_bytes), left)
}

/// Header of a message that merges several notifications (rate limit reached).
pub fn merged_header(count: usize) -> String {
    format!("**【合并】{count} 条通知 / [Merged] {count} notifications**{BR}发送频率已达上限，以下通知合并发送 / Rate limit reached: notifications merged")
}

/// Cut `s` to at most `max` bytes on a char boundary.
pub fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The generic webhook body (docs/alerts.md, "webhook"). For a group, `value`/`threshold` are
/// those of the alert furthest from its threshold, `starts_at` the earliest start, `ends_at`
/// the latest end; `message_*` are the alerts' lines joined by newlines.
pub fn webhook_body(n: &Notification) -> Value {
    let mut body = json!({
        "version": "1",
        "status": n.status.as_str(),
        "rule": n.rule,
        "level": n.level.as_str(),
        "repeat": n.repeat,
        "title_zh": n.title_zh,
        "title_en": n.title_en,
    });
    let single = n.alerts.len() == 1;
    let message_zh: Vec<&str> = n.alerts.iter().map(|e| e.message_zh.as_str()).collect();
    let message_en: Vec<&str> = n.alerts.iter().map(|e| e.message_en.as_str()).collect();
    let worst = n
        .alerts
        .iter()
        .filter(|e| e.value.is_some_and(f64::is_finite))
        .max_by(|a, b| {
            let d = |e: &AlertEvent| match (e.value, e.threshold) {
                (Some(v), Some(t)) => (v - t).abs(),
                _ => 0.0,
            };
            d(a).total_cmp(&d(b))
        })
        .or(n.alerts.first());
    let starts = n.alerts.iter().map(|e| e.starts_at).min();
    let ends = if n.status == Status::Resolved {
        n.alerts.iter().filter_map(|e| e.ends_at).max()
    } else {
        None
    };
    let obj = body.as_object_mut().expect("json! object");
    obj.insert("message_zh".into(), json!(message_zh.join("\n")));
    obj.insert("message_en".into(), json!(message_en.join("\n")));
    if single {
        let e = &n.alerts[0];
        obj.insert(
            "station".into(),
            json!(e.station.as_ref().map(|s| s.id.clone())),
        );
        obj.insert("area".into(), json!(e.area));
    } else {
        let ids: Vec<&str> = n
            .alerts
            .iter()
            .filter_map(|e| e.station.as_ref().map(|s| s.id.as_str()))
            .collect();
        obj.insert("stations".into(), json!(ids));
        let areas: Vec<&str> = n.alerts.iter().filter_map(|e| e.area.as_deref()).collect();
        obj.insert("areas".into(), json!(areas));
    }
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    obj.insert("param".into(), json!(worst.and_then(|e| e.param.clone())));
    obj.insert("unit".into(), json!(worst.and_then(|e| e.unit.clone())));
    obj.insert("value".into(), json!(worst.and_then(|e| finite(e.value))));
    obj.insert(
        "threshold".into(),
        json!(worst.and_then(|e| finite(e.threshold))),
    );
    obj.insert("starts_at".into(), json!(starts.map(rfc3339)));
    obj.insert("ends_at".into(), json!(ends.map(rfc3339)));
    obj.insert("alerts".into(), json!(n.alerts));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_numbers() {
        assert_eq!(duration_text(42), ("42 秒".into(), "42 s".into()));
        assert_eq!(
            duration_text(4800),
            ("1 小时 20 分".into(), "1 h 20 min".into())
        );
        assert_eq!(
            duration_text(90_000),
            ("1 天 1 小时".into(), "1 d 1 h".into())
        );
        assert_eq!(num(112.0), "112");
        assert_eq!(num(0.35), "0.35");
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(with_unit(35.0, Some("ug/m3")), "35 µg/m³");
        assert_eq!(with_unit(7.5, Some("mg/L")), "7.5 mg/L");
        assert_eq!(with_unit(80.0, Some("")), "80");
    }

    #[test]
    fn truncates_on_char_boundary() {
        let s = "预警预警".to_string(); // 12 bytes
        assert_eq!(truncate_bytes(s, 7), "预警");
    }

    #[test]
    fn local_time_is_china_standard_time() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        assert_eq!(local_time(t), "2026-11-23 08:00 (UTC+8)");
    }
}
