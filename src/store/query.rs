//! InfluxQL reads over `/query`: InfluxDB 1.x natively, 2.x and 3.x through their v1
//! compatibility API (database = bucket, `Authorization: Token …`). Used by offline tools
//! (`envmon alerts backtest`) that evaluate what is already stored.
//!
//! Owns: one HTTP request per query and the decoding of InfluxQL's JSON result. Knows nothing
//! of measurements.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{InfluxApi, InfluxSettings};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("influxdb query: the files sink cannot be queried (influxdb.api = \"files\")")]
    NotQueryable,
    #[error("influxdb query to {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("influxdb query: {0}")]
    Influx(String),
}

/// One series of a result: `name` (measurement), its group-by tags, columns and rows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Series {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct Body {
    #[serde(default)]
    results: Vec<StatementResult>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    #[serde(default)]
    error: Option<String>,
}

/// Run one InfluxQL statement; times come back as epoch seconds.
pub async fn influxql(s: &InfluxSettings, q: &str) -> Result<Vec<Series>, QueryError> {
    let base = s.url.trim_end_matches('/');
    let url = format!("{base}/query");
    let db = match s.api {
        InfluxApi::Files => return Err(QueryError::NotQueryable),
        InfluxApi::V1 => s.database.clone().unwrap_or_default(),
        InfluxApi::V2 => s.bucket.clone().unwrap_or_default(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(s.timeout_s.max(30)))
        .build()
        .map_err(|e| QueryError::Http {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let mut req = http
        .post(&url)
        .query(&[("db", db.as_str()), ("epoch", "s")])
        .form(&[("q", q)]);
    if let Some(rp) = &s.retention_policy {
        req = req.query(&[("rp", rp.as_str())]);
    }
    match s.api {
        InfluxApi::V1 => {
            if let Some(u) = &s.username {
                req = req.basic_auth(u, s.password.as_ref().map(|p| p.expose().to_string()));
            }
        }
        InfluxApi::V2 => {
            if let Some(t) = &s.token {
                req = req.header("Authorization", format!("Token {}", t.expose()));
            }
        }
        InfluxApi::Files => {}
    }
    let resp = req.send().await.map_err(|e| QueryError::Http {
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| QueryError::Http {
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    if !status.is_success() {
        return Err(QueryError::Http {
            url,
            reason: format!(
                "HTTP {}: {}",
                status.as_u16(),
                crate::text::truncate(&text, crate::text::LOG_FIELD_CHARS)
            ),
        });
    }
    let body: Body = serde_json::from_str(&text).map_err(|e| QueryError::Influx(e.to_string()))?;
    if let Some(e) = body.error {
        return Err(QueryError::Influx(e));
    }
    let mut out = Vec::new();
    for r in body.results {
        if let Some(e) = r.error {
            return Err(QueryError::Influx(e));
        }
        out.extend(r.series);
    }
    Ok(out)
}

/// Quote an identifier for InfluxQL (`"name"`).
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Quote a string literal for InfluxQL (`'value'`).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
