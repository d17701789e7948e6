//! `envmon stations [--url http://127.0.0.1:9090] [--status silent] [--kind air_micro] [--json]`:
//! the stations view of a running envmon, as a table (bilingual headers) or as the JSON of
//! `GET /api/v1/stations`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use unicode_width::UnicodeWidthStr as _;

/// Arguments of `envmon stations`.
#[derive(Debug, Clone, clap::Args)]
pub struct StationsArgs {
    /// Base URL of envmon's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    pub url: String,
    /// Only stations with this status: online, silent or never.
    #[arg(long)]
    pub status: Option<String>,
    /// Only stations of this kind: air_national, air_provincial, air_micro, water_auto.
    #[arg(long)]
    pub kind: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StationsCliError {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: not the stations JSON: {detail}")]
    BadAnswer { url: String, detail: String },
}

/// Upper bound for the one HTTP request.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetch and render; the text to print on success.
pub async fn run(args: &StationsArgs) -> Result<String, StationsCliError> {
    let url = format!("{}/api/v1/stations", args.url.trim_end_matches('/'));
    // reqwest encodes the query (a kind or status with `&`, spaces or Chinese stays intact).
    let query: Vec<(&str, &str)> = [("status", &args.status), ("kind", &args.kind)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
        .collect();
    let unreachable = |e: reqwest::Error| StationsCliError::Unreachable {
        url: url.clone(),
        detail: e.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let resp = client
        .get(&url)
        .query(&query)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(unreachable)?;
    let v: Value = serde_json::from_str(&body).map_err(|e| StationsCliError::BadAnswer {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if status != 200 {
        let message = match (v.pointer("/error/zh"), v.pointer("/error/en")) {
            (Some(zh), Some(en)) => format!(
                "{} / {}",
                zh.as_str().unwrap_or(""),
                en.as_str().unwrap_or("")
            ),
            _ => body,
        };
        return Err(StationsCliError::Refused {
            url,
            status,
            message,
        });
    }
    if args.json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or(body)
        ));
    }
    render_table(&v).ok_or(StationsCliError::BadAnswer {
        url,
        detail: "missing stations or summary".into(),
    })
}

/// "3h05m", "42s".
fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn pad(s: &str, width: usize) -> String {
    let w = s.width();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// The table of a `GET /api/v1/stations` answer; `None` when it is not that JSON.
pub fn render_table(v: &Value) -> Option<String> {
    let stations = v.get("stations")?.as_array()?;
    let summary = v.get("summary")?;
    let head = [
        "站点 Station",
        "类型 Kind",
        "区 District",
        "状态 Status",
        "最后到达 Last seen (UTC)",
        "距今 Age",
        "死信 Dead-letters",
        "名称 Name",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for s in stations {
        let str_of = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let last_seen = s
            .get("last_seen")
            .and_then(Value::as_str)
            .map(|t| t.get(..19).unwrap_or(t).replace('T', " "))
            .unwrap_or_else(|| "—".into());
        let age = s
            .get("age_s")
            .and_then(Value::as_i64)
            .map(human)
            .unwrap_or_else(|| "—".into());
        let status = format!(
            "{} {}",
            s.pointer("/status_label/zh")
                .and_then(Value::as_str)
                .unwrap_or(""),
            str_of("status")
        );
        rows.push([
            str_of("id"),
            str_of("kind"),
            str_of("district"),
            status,
            last_seen,
            age,
            s.get("deadletters")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .to_string(),
            format!("{} {}", str_of("name"), str_of("name_en")),
        ]);
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.width()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.width());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                out.push_str(c);
            } else {
                out.push_str(&pad(c, widths[i]));
                out.push_str("  ");
            }
        }
        out.push('\n');
    };
    line(head.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    let _ = writeln!(
        out,
        "\n{} 站 stations listed. 全部 All: 应有 expected / 在线 online / 离线 silent / 从未上报 never",
        rows.len()
    );
    let counts = |c: &Value| {
        let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
        format!(
            "{:>4} / {:>4} / {:>4} / {:>4}",
            n("expected"),
            n("online"),
            n("silent"),
            n("never")
        )
    };
    if let Some(by_kind) = summary.get("by_kind").and_then(Value::as_object) {
        for (k, c) in by_kind {
            let _ = writeln!(out, "  {k:<15} {}", counts(c));
        }
    }
    if let Some(t) = summary.get("total") {
        let _ = writeln!(out, "  {:<15} {}", "total", counts(t));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_chinese_and_counts() {
        let v: Value = serde_json::from_str(
            r#"{"stations":[{"id":"WJ-A01","name":"吴江开发区","name_en":"Wujiang DZ",
            "kind":"air_national","district":"Wujiang","status":"silent",
            "status_label":{"zh":"离线","en":"silent"},"last_seen":"2026-12-01T10:00:00.123Z",
            "age_s":3725,"deadletters":2}],
            "summary":{"by_kind":{"air_national":{"expected":1,"online":0,"silent":1,"never":0}},
            "total":{"expected":1,"online":0,"silent":1,"never":0}}}"#,
        )
        .unwrap();
        let t = render_table(&v).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("站点 Station"), "{t}");
        assert!(lines[1].contains("离线 silent"), "{t}");
        assert!(lines[1].contains("2026-12-01 10:00:00"), "{t}");
        assert!(lines[1].contains("1h02m"), "{t}");
        // Columns line up in display width (Chinese characters count two).
        let col = |l: &str, needle: &str| l[..l.find(needle).unwrap()].width();
        assert_eq!(col(lines[0], "类型"), col(lines[1], "air_national"));
        assert!(
            t.contains("air_national       1 /    0 /    1 /    0"),
            "{t}"
        );
        assert!(render_table(&serde_json::json!({"x":1})).is_none());
    }
}
