//! A real Prometheus (Debian's `prometheus` 2.42, `/usr/bin/prometheus`) on a free 127.0.0.1
//! port, scraping one target (an envmon's `/metrics`) every second, with its TSDB in a temp
//! dir. Used to run the PromQL of the Grafana dashboards (tests/dashboards.rs).

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

use super::http::{self, encode_pairs};
use super::process::{blocking, find_binary, free_port, server_tempdir, ServerProcess};

/// A running Prometheus server. Killed on drop.
pub struct Prometheus {
    proc: ServerProcess,
    port: u16,
    // Declared last: dropped after `proc` has killed the server.
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `http://127.0.0.1:<target_port>/metrics` every second (job `envmon`); ready
    /// when `GET /-/ready` is 200 (bounded by the harness' start timeout, 3 attempts).
    pub fn start(target_port: u16) -> Prometheus {
        let bin = find_binary(
            "ENVMON_TEST_PROMETHEUS",
            "prometheus",
            &["/usr/bin/prometheus", "/usr/local/bin/prometheus"],
            "prometheus",
        );
        let dir = server_tempdir("prometheus");
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: envmon\n    static_configs:\n\
                 \x20     - targets: [\"127.0.0.1:{target_port}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let proc = ServerProcess::new("prometheus", bin, Vec::new(), dir.path(), Vec::new());
        let mut p = Prometheus { proc, port: 0, dir };
        let mut last_err = String::new();
        for _ in 0..3 {
            p.port = free_port();
            let args: Vec<OsString> = vec![
                format!("--config.file={}", conf.display()).into(),
                format!(
                    "--storage.tsdb.path={}",
                    p.dir.path().join("data").display()
                )
                .into(),
                format!("--web.listen-address=127.0.0.1:{}", p.port).into(),
                "--log.level=warn".into(),
            ];
            p.proc.set_args(args);
            let port = p.port;
            match p
                .proc
                .start_and_wait(|| matches!(http::get(port, "/-/ready"), Ok(r) if r.status == 200))
            {
                Ok(_) => return p,
                Err(e) => last_err = e,
            }
        }
        panic!("prometheus failed to start 3 times; last error:\n{last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Instant query at the current time: the JSON answer (`status`, `data.result`, or
    /// `error`).
    pub fn query(&self, expr: &str) -> Value {
        self.query_with(expr, None)
    }

    /// Instant query evaluated at `time` (unix seconds) instead of now.
    pub fn query_at(&self, expr: &str, time: f64) -> Value {
        self.query_with(expr, Some(time))
    }

    fn query_with(&self, expr: &str, time: Option<f64>) -> Value {
        let t = time.map(|t| format!("{t:.3}"));
        let mut pairs = vec![("query", expr)];
        if let Some(t) = &t {
            pairs.push(("time", t.as_str()));
        }
        let body = encode_pairs(&pairs);
        let r = blocking(|| {
            http::post(
                self.port,
                "/api/v1/query",
                "application/x-www-form-urlencoded",
                body.as_bytes(),
            )
        })
        .unwrap_or_else(|e| panic!("prometheus /api/v1/query {expr:?}: {e}"));
        serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!(
                "prometheus {expr:?}: status {}, non-JSON ({e}): {}",
                r.status,
                r.text()
            )
        })
    }

    /// Waits (bounded) until `expr` has at least one series; returns whether it did.
    pub fn wait_series(&self, expr: &str, timeout: Duration) -> bool {
        super::process::wait_until(timeout, || {
            let v = self.query(expr);
            (v["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty()))
            .then_some(())
        })
        .is_some()
    }
}
