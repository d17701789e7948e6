//! InfluxDB HTTP writes (v1 `/write`, v2 through the `influxdb2` crate) and the classification of
//! what went wrong. One request per call: retries and bad-line isolation are the caller's
//! ([`crate::pipeline`]), which knows the ack state.
//!
//! Owns: the HTTP clients. Never alters line protocol it is given.

use std::io::Write as _;
use std::time::Duration;

use crate::config::{InfluxApi, InfluxSettings};

/// Why a write request failed, classified by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteFailure {
    /// Try again later (connection refused, time-out, 5xx, 429, and also 401/403/404: a
    /// credentials or database problem must be fixed by an operator, not paid for with data).
    #[error("{kind}: {detail}")]
    Retry { kind: &'static str, detail: String },
    /// The server rejected some lines (HTTP 400/422): isolate them, write the rest.
    #[error("rejected lines (HTTP {status}): {detail}")]
    BadData { status: u16, detail: String },
    /// The request body is too large (HTTP 413): split it.
    #[error("request too large (HTTP 413)")]
    TooLarge,
}

impl WriteFailure {
    /// Label for `envmon_write_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteFailure::Retry { kind, .. } => kind,
            WriteFailure::BadData { .. } => "rejected",
            WriteFailure::TooLarge => "too_large",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("influxdb: cannot build HTTP client: {0}")]
    Client(String),
}

enum Backend {
    /// Line-protocol files `<dir>/envmon-<UTC date>.lp` (second precision), one per day.
    Files { dir: std::path::PathBuf },
    V1 {
        http: reqwest::Client,
        write_url: String,
        ping_url: String,
        auth: Option<(String, String)>,
    },
    V2 {
        client: influxdb2::Client,
        http: reqwest::Client,
        org: String,
        bucket: String,
        health_url: String,
    },
}

/// A configured InfluxDB endpoint.
pub struct Writer {
    backend: Backend,
    gzip: bool,
}

fn classify_status(status: u16, text: String) -> WriteFailure {
    let mut detail = crate::text::truncate(text.trim(), crate::text::LOG_FIELD_CHARS).into_owned();
    // InfluxDB 1.x ends a refusal with `dropped=N`; keep it when the text is cut, since it
    // tells whether any line of the request was good (store::deliver).
    if detail.len() < text.trim().len() {
        if let Some(i) = text.rfind("dropped=") {
            let n: String = text[i + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            detail.push_str(&format!(" dropped={n}"));
        }
    }
    match status {
        // An HTML page is a proxy's or gateway's answer, not InfluxDB refusing lines (InfluxDB
        // answers JSON or plain text): retried like a server error, never dead-lettered line
        // by line.
        400 | 422 if text.trim_start().starts_with('<') => WriteFailure::Retry {
            kind: "proxy",
            detail: format!("HTTP {status} with an HTML body (a proxy?): {detail}"),
        },
        400 | 422 => WriteFailure::BadData { status, detail },
        413 => WriteFailure::TooLarge,
        401 | 403 => WriteFailure::Retry {
            kind: "auth",
            detail: format!("HTTP {status}: {detail}"),
        },
        404 => WriteFailure::Retry {
            kind: "not_found",
            detail: format!("HTTP {status} (database or bucket missing?): {detail}"),
        },
        429 => WriteFailure::Retry {
            kind: "throttled",
            detail: format!("HTTP 429: {detail}"),
        },
        _ => WriteFailure::Retry {
            kind: "server",
            detail: format!("HTTP {status}: {detail}"),
        },
    }
}

fn classify_reqwest(e: &reqwest::Error) -> WriteFailure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection"
    } else {
        "request"
    };
    WriteFailure::Retry {
        kind,
        detail: e.to_string(),
    }
}

fn gzip(body: &str) -> Vec<u8> {
    // Level 1: most of the size gain for a fraction of the CPU of the best level.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body.as_bytes());
    enc.finish().unwrap_or_default()
}

impl Writer {
    pub fn new(s: &InfluxSettings) -> Result<Writer, WriterError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_s))
            .connect_timeout(Duration::from_secs(s.timeout_s.min(5)))
            .build()
            .map_err(|e| WriterError::Client(e.to_string()))?;
        let base = s.url.trim_end_matches('/').to_string();
        let backend = match s.api {
            InfluxApi::V1 => {
                let mut q = vec![
                    ("db", s.database.clone().unwrap_or_default()),
                    ("precision", "s".to_string()),
                ];
                if let Some(rp) = &s.retention_policy {
                    q.push(("rp", rp.clone()));
                }
                let query = q
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                Backend::V1 {
                    http,
                    write_url: format!("{base}/write?{query}"),
                    ping_url: format!("{base}/ping"),
                    auth: s.username.clone().map(|u| {
                        (
                            u,
                            s.password
                                .as_ref()
                                .map(|p| p.expose().to_string())
                                .unwrap_or_default(),
                        )
                    }),
                }
            }
            InfluxApi::Files => return Writer::files(&s.files_dir),
            InfluxApi::V2 => {
                let builder = reqwest::Client::builder()
                    .timeout(Duration::from_secs(s.timeout_s))
                    .connect_timeout(Duration::from_secs(s.timeout_s.min(5)));
                let org = s.org.clone().unwrap_or_default();
                let token = s
                    .token
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default();
                let client = influxdb2::ClientBuilder::with_builder(builder, &base, &org, token)
                    .gzip(s.gzip)
                    .build()
                    .map_err(|e| WriterError::Client(e.to_string()))?;
                Backend::V2 {
                    client,
                    http,
                    org,
                    bucket: s.bucket.clone().unwrap_or_default(),
                    health_url: format!("{base}/health"),
                }
            }
        };
        Ok(Writer {
            backend,
            gzip: s.gzip,
        })
    }

    /// A writer that appends to daily line-protocol files under `dir` instead of InfluxDB
    /// (used by `envmon demo` when no InfluxDB is configured). Import a file with
    /// `influx write --precision s --file envmon-<date>.lp` (v2) or
    /// `influx -import -precision s` after adding the DML header (v1).
    pub fn files(dir: impl Into<std::path::PathBuf>) -> Result<Writer, WriterError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| WriterError::Client(format!("data dir {}: {e}", dir.display())))?;
        Ok(Writer {
            backend: Backend::Files { dir },
            gzip: false,
        })
    }

    /// One write request with `body` (newline-terminated line protocol, second precision).
    pub async fn write(&self, body: &str) -> Result<(), WriteFailure> {
        match &self.backend {
            Backend::Files { dir } => {
                let path = dir.join(format!(
                    "envmon-{}.lp",
                    chrono::Utc::now().format("%Y-%m-%d")
                ));
                let body = body.to_string();
                // Written and synced before the batch counts as stored (acks follow it).
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?;
                    f.write_all(body.as_bytes())?;
                    f.sync_data()
                })
                .await
                .map_err(|e| WriteFailure::Retry {
                    kind: "io",
                    detail: e.to_string(),
                })?
                .map_err(|e| WriteFailure::Retry {
                    kind: "io",
                    detail: e.to_string(),
                })
            }
            Backend::V1 {
                http,
                write_url,
                auth,
                ..
            } => {
                let mut req = http.post(write_url);
                if let Some((u, p)) = auth {
                    req = req.basic_auth(u, Some(p));
                }
                req = if self.gzip {
                    req.header("Content-Encoding", "gzip").body(gzip(body))
                } else {
                    req.body(body.to_string())
                };
                let resp = req.send().await.map_err(|e| classify_reqwest(&e))?;
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let text = resp.text().await.unwrap_or_default();
                Err(classify_status(status, text))
            }
            Backend::V2 {
                client,
                org,
                bucket,
                ..
            } => {
                use influxdb2::api::write::TimestampPrecision;
                let result = if self.gzip {
                    // The crate compresses only its streaming API; feed it the ready lines.
                    let chunk = RawLines(body.to_string());
                    client
                        .write_with_precision(
                            bucket,
                            futures::stream::iter([chunk]),
                            TimestampPrecision::Seconds,
                        )
                        .await
                } else {
                    client
                        .write_line_protocol_with_precision(
                            org,
                            bucket,
                            body.to_string(),
                            TimestampPrecision::Seconds,
                        )
                        .await
                };
                result.map_err(|e| match e {
                    influxdb2::RequestError::Http { status, text } => {
                        classify_status(status.as_u16(), text)
                    }
                    influxdb2::RequestError::ReqwestProcessing { source } => {
                        classify_reqwest(&source)
                    }
                    other => WriteFailure::Retry {
                        kind: "request",
                        detail: other.to_string(),
                    },
                })
            }
        }
    }

    /// Is the server reachable and healthy? (v1 `GET /ping`, v2 `GET /health`.)
    pub async fn ping(&self) -> bool {
        let (http, url) = match &self.backend {
            Backend::Files { dir } => return dir.is_dir(),
            Backend::V1 { http, ping_url, .. } => (http, ping_url),
            Backend::V2 {
                http, health_url, ..
            } => (http, health_url),
        };
        matches!(http.get(url).send().await, Ok(r) if r.status().is_success())
    }
}

/// Ready-made line protocol handed to the `influxdb2` streaming writer.
struct RawLines(String);

impl influxdb2::models::WriteDataPoint for RawLines {
    fn write_data_point_to<W: std::io::Write>(&self, mut w: W) -> std::io::Result<()> {
        w.write_all(self.0.as_bytes())
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_html_400_is_a_proxy_error_retried_not_bad_lines() {
        let f = classify_status(400, "<html><body>400 Bad Request</body></html>".into());
        assert_eq!(f.kind(), "proxy");
        assert!(matches!(f, WriteFailure::Retry { .. }));
        let f = classify_status(
            400,
            r#"{"error":"partial write: field type conflict dropped=1"}"#.into(),
        );
        assert!(matches!(f, WriteFailure::BadData { status: 400, .. }));
    }

    use super::*;

    #[test]
    fn status_classes() {
        assert!(matches!(
            classify_status(400, "partial write".into()),
            WriteFailure::BadData { status: 400, .. }
        ));
        assert_eq!(classify_status(413, String::new()), WriteFailure::TooLarge);
        assert_eq!(classify_status(401, String::new()).kind(), "auth");
        assert_eq!(classify_status(404, String::new()).kind(), "not_found");
        assert_eq!(classify_status(503, String::new()).kind(), "server");
        assert_eq!(classify_status(429, String::new()).kind(), "throttled");
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = "air,station=a pm25=1 1\n".repeat(100);
        let z = gzip(&body);
        assert!(z.len() < body.len());
        let mut d = flate2::read::GzDecoder::new(&z[..]);
        let mut back = String::new();
        d.read_to_string(&mut back).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn url_encoding() {
        assert_eq!(urlencode("env mon/1"), "env%20mon%2F1");
    }
}
