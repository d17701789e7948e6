//! A real VictoriaMetrics (Debian's `victoria-metrics` 1.79, binary
//! `/usr/bin/victoria-metrics`) on a free 127.0.0.1 port: the stand-in for an
//! InfluxDB 2.x server, since it accepts the v2 write API `/api/v2/write`.
//!
//! # How InfluxDB line protocol lands in VictoriaMetrics
//!
//! Measured on 1.79.5 (see tests/servers.rs):
//!
//! * each field becomes its own series named `<measurement>_<field>`:
//!   `air,station=WJ-A01,kind=air_micro pm25=35,no2=20.5 <ts>` gives
//!   `air_pm25{station="WJ-A01",kind="air_micro"} 35` and `air_no2{…} 20.5`;
//! * tags become labels; `/api/v2/write?org=…&bucket=…` adds **no** label for the
//!   org or bucket (the v1 `/write?db=x` adds `db="x"`);
//! * timestamps are stored in **milliseconds** (finer precision is truncated);
//! * integers (`1i`) and floats become floats, booleans 1/0, and **string fields
//!   are stored as 0** — the text of a `pm25_flag="F"` field cannot be read back
//!   (only that the series `air_pm25_flag` exists). Check flags on InfluxDB 1.6.
//! * VM **skips unparsable lines and still answers 204** (it only logs them): the
//!   "400 names the bad lines" path of a real InfluxDB can't be exercised here;
//! * points older than `-retentionPeriod` are dropped: the helper sets 100 years;
//! * the `Authorization: Token …` header is ignored (no auth configured);
//! * there is no `/api/v2/health` or `/api/v2/ready`; `/health` answers `OK` as
//!   text (not InfluxDB's JSON) and `/ping` answers 204.
//!
//! # Visibility
//!
//! Writes are acknowledged before they are searchable. Data for an *existing*
//! series shows up after `/internal/force_flush` almost at once, but a *new* series
//! can take from ~0.2 s up to ~10 s to appear in `/api/v1/export` (its index entry
//! is cached/flushed asynchronously). So read back with
//! [`VictoriaMetrics::wait_samples`] (bounded poll that force-flushes each round),
//! not with a single [`VictoriaMetrics::export`].
//!
//! # Duplicates
//!
//! InfluxDB keeps one point per series+timestamp (a rewrite overwrites). VM keeps
//! every sample unless deduplication is on; the helper turns it on
//! (`-dedup.minScrapeInterval=1ms`, applied at query time too) so that "the same
//! reading written twice is one point" holds here as well. Turn it off with
//! [`VmOpts::dedup`] = false to *see* double writes.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::http::{self, encode_pairs};
use super::process::{
    blocking, find_binary, free_port, server_tempdir, start_again_with_retries, wait_until,
    ServerProcess,
};

/// Options for [`VictoriaMetrics::start_with`].
#[derive(Debug, Clone)]
pub struct VmOpts {
    /// `-dedup.minScrapeInterval=1ms`: one sample per series and millisecond, like
    /// InfluxDB's overwrite semantics. Default true.
    pub dedup: bool,
    /// Extra command-line flags.
    pub extra_args: Vec<String>,
}

impl Default for VmOpts {
    fn default() -> Self {
        VmOpts {
            dedup: true,
            extra_args: Vec::new(),
        }
    }
}

/// A running VictoriaMetrics single-node server.
///
/// ```ignore
/// let vm = VictoriaMetrics::start();
/// let url = vm.url();                     // give this to envmon as influxdb.url (api = v2)
/// // … envmon writes `air,station=A pm25=3 …` …
/// assert_eq!(vm.wait_samples("air_pm25", 1, Duration::from_secs(20)), 1);
/// let series = vm.export(r#"air_pm25{station="A"}"#);
/// assert_eq!(series[0]["values"][0], 3.0);
/// ```
pub struct VictoriaMetrics {
    proc: ServerProcess,
    port: u16,
    opts: VmOpts,
    startup: Duration,
    // Declared last: dropped after `proc` has killed the server.
    dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Starts with [`VmOpts::default`]; ready when `GET /health` is 200.
    pub fn start() -> VictoriaMetrics {
        Self::start_with(VmOpts::default())
    }

    /// Starts with the given options.
    pub fn start_with(opts: VmOpts) -> VictoriaMetrics {
        let bin = find_binary(
            "ENVMON_TEST_VICTORIA_METRICS",
            "victoria-metrics",
            &[
                "/usr/bin/victoria-metrics",
                "/usr/local/bin/victoria-metrics",
                "/usr/local/bin/victoria-metrics-prod",
            ],
            "victoria-metrics",
        );
        let dir = server_tempdir("victoria-metrics");
        let proc = ServerProcess::new("victoria-metrics", bin, Vec::new(), dir.path(), Vec::new());
        let mut vm = VictoriaMetrics {
            proc,
            port: 0,
            opts,
            startup: Duration::ZERO,
            dir,
        };
        let mut last_err = String::new();
        for _attempt in 0..3 {
            vm.port = free_port();
            let args = vm.args();
            vm.proc.set_args(args);
            match vm.spawn_and_wait() {
                Ok(()) => return vm,
                Err(e) => last_err = e,
            }
        }
        panic!("victoria-metrics failed to start 3 times; last error:\n{last_err}");
    }

    fn args(&self) -> Vec<OsString> {
        let mut a: Vec<String> = vec![
            format!("-httpListenAddr=127.0.0.1:{}", self.port),
            format!(
                "-storageDataPath={}",
                self.dir.path().join("data").display()
            ),
            // Keep test data with old timestamps (default retention is 1 month).
            "-retentionPeriod=100y".into(),
            // Make the newest points visible to queries at once (default 30s);
            // export does not use it, the query API does.
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
            "-loggerLevel=ERROR".into(),
            // Several servers share a 2-core CI box: keep VM's caches small.
            "-memory.allowedPercent=20".into(),
        ];
        if self.opts.dedup {
            a.push("-dedup.minScrapeInterval=1ms".into());
        }
        a.extend(self.opts.extra_args.iter().cloned());
        a.into_iter().map(OsString::from).collect()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port;
        let t = self
            .proc
            .start_and_wait(|| matches!(http::get(port, "/health"), Ok(r) if r.status == 200))?;
        self.startup = t;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`: the InfluxDB v2 base URL (`/api/v2/write`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long the last (re)start took until `/health` answered 200.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The server's pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// True while the server is alive.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Tails of its stdout/stderr (errors only: `-loggerLevel=ERROR`, which includes
    /// every line it skipped as unparsable).
    pub fn log_tail(&self) -> String {
        self.proc.log_tails()
    }

    /// POSTs line protocol to `/api/v2/write?org=&bucket=&precision=ns` like an
    /// InfluxDB 2.x client would. Returns status and body (204 even when some lines
    /// were skipped as unparsable, see the module docs).
    pub fn write_v2(&self, org: &str, bucket: &str, lines: &str) -> http::Response {
        let path = format!(
            "/api/v2/write?{}",
            encode_pairs(&[("org", org), ("bucket", bucket), ("precision", "ns")])
        );
        blocking(|| {
            http::request(
                self.port,
                "POST",
                &path,
                &[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Authorization", "Token test-token"),
                ],
                lines.as_bytes(),
            )
        })
        .unwrap_or_else(|e| panic!("victoria-metrics /api/v2/write: {e}\n{}", self.log_tail()))
    }

    /// `GET /internal/force_flush`: makes already-received samples searchable.
    /// (It does not make a brand-new series visible at once; see the module docs.)
    pub fn force_flush(&self) {
        let r = blocking(|| http::get(self.port, "/internal/force_flush"))
            .unwrap_or_else(|e| panic!("victoria-metrics force_flush: {e}\n{}", self.log_tail()));
        assert!(r.is_success(), "force_flush: {} {}", r.status, r.text());
    }

    /// Force-flushes, then `GET /api/v1/export?match[]=<selector>`; one JSON object
    /// per series: `{"metric":{"__name__":"air_pm25","station":"A"},"values":[3],
    /// "timestamps":[1700000000000]}` (timestamps in ms). `selector` is a series
    /// selector: `air_pm25`, `air_pm25{station="A"}`, `{__name__=~"air_.*"}`.
    pub fn export(&self, selector: &str) -> Vec<Value> {
        self.force_flush();
        let path = format!("/api/v1/export?{}", encode_pairs(&[("match[]", selector)]));
        let r = blocking(|| http::get(self.port, &path))
            .unwrap_or_else(|e| panic!("victoria-metrics export: {e}\n{}", self.log_tail()));
        assert!(
            r.is_success(),
            "victoria-metrics export {selector:?}: {} {}",
            r.status,
            r.text()
        );
        r.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("export line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Total number of samples over all series matching `selector`.
    pub fn sample_count(&self, selector: &str) -> usize {
        self.export(selector)
            .iter()
            .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
            .sum()
    }

    /// Polls [`sample_count`](Self::sample_count) until it is ≥ `expected` or
    /// `timeout` passes; returns the last count (the caller asserts). Use ≥ 15 s:
    /// a new series may take ~10 s to become visible.
    pub fn wait_samples(&self, selector: &str, expected: usize, timeout: Duration) -> usize {
        let mut last = 0;
        wait_until(timeout, || {
            if !matches!(http::get(self.port, "/health"), Ok(r) if r.status == 200) {
                return None;
            }
            last = self.sample_count(selector);
            (last >= expected).then_some(last)
        })
        .unwrap_or(last)
    }

    /// Graceful stop (SIGTERM; VM flushes to disk). Bounded: SIGKILL after 15 s.
    pub fn stop(&mut self) -> Duration {
        self.proc.terminate()
    }

    /// Hard kill (SIGKILL).
    pub fn kill(&mut self) {
        self.proc.kill()
    }

    /// Starts again after [`stop`](Self::stop)/[`kill`](Self::kill): same port and
    /// data directory. Retries for a few seconds if the port is briefly taken.
    pub fn start_again(&mut self) {
        assert!(!self.proc.is_running(), "victoria-metrics is still running");
        let port = self.port;
        start_again_with_retries("victoria-metrics", port, || self.spawn_and_wait());
    }

    /// Simulates an outage: [`stop`](Self::stop).
    pub fn pause(&mut self) -> Duration {
        self.stop()
    }

    /// Ends an outage: [`start_again`](Self::start_again).
    pub fn resume(&mut self) {
        self.start_again()
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}
