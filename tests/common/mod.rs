//! Shared test harness: real servers for the pipeline tests.
//!
//! Use from any integration test with `mod common;` and e.g.
//! `use common::{Mosquitto, Influx1, VictoriaMetrics};`.
//!
//! * [`Mosquitto`]: Debian's `mosquitto` 2.0 (`/usr/sbin/mosquitto`).
//! * [`Influx1`]: Debian's `influxdb` 1.6 (`influxd run -config …`), v1 API.
//! * [`Prometheus`]: Debian's `prometheus` 2.42, scraping an envmon (dashboards' PromQL).
//! * [`Alertmanager`]: Debian's `prometheus-alertmanager` 0.25, routing to a test webhook.
//! * [`Receiver`]: a local HTTP receiver standing in for the robots / webhooks.
//! * [`load`]: air messages of known values, a paced publisher, Mosquitto's `$SYS` drop
//!   counter, a spool-depth sampler, and `tally` (published against stored, per point).
//! * [`VictoriaMetrics`]: Debian's `victoria-metrics` 1.79, which accepts the
//!   InfluxDB v2 write API (`/api/v2/write`); read back with `/api/v1/export`.
//!
//! Every server gets free 127.0.0.1 ports chosen by the OS, its own temp dir with
//! its own generated config, data and logs (stdout/stderr go to files there), so
//! tests run in parallel and never touch system services Debian may have started on
//! the default ports (1883, 8086/8088, 8428). Each start/wait is bounded (30 s for
//! readiness, 15 s for a graceful stop, then SIGKILL); a failure panics with the
//! server's log tail. Servers are SIGKILLed on drop, also when the test panics, and
//! (via `setpriv --pdeathsig KILL`) when the test binary dies without unwinding.
//!
//! All calls are blocking (std only, own tiny HTTP client), so they work in plain
//! `#[test]`s and in `#[tokio::test]`s. Inside a multi-thread runtime they use
//! `block_in_place`; on a current-thread runtime a long wait (`wait_count`,
//! `pause`, `restart`) stalls the other tasks, so tests that keep a publisher task
//! running meanwhile should use `#[tokio::test(flavor = "multi_thread")]`.
//!
//! Start servers on the test's own thread (see [`process::ServerProcess`] on
//! pdeathsig) and give each test its own servers: they start in well under a second.
//!
//! Environment knobs: `ENVMON_TEST_MOSQUITTO`, `ENVMON_TEST_INFLUXD`,
//! `ENVMON_TEST_VICTORIA_METRICS`, `ENVMON_TEST_ALERTMANAGER` (binary paths), `ENVMON_TEST_KEEP_DIRS=1` (keep
//! the temp dirs for a post-mortem), `ENVMON_TEST_NO_PDEATHSIG=1`.
// Each test binary uses a different subset of the helpers.
#![allow(dead_code, unused_imports)]

pub mod alertmanager;
pub mod envmon;
pub mod hj212;
pub mod http;
pub mod influx;
pub mod load;
pub mod mosquitto;
pub mod process;
pub mod prometheus;
pub mod receiver;
pub mod victoria;

pub use alertmanager::Alertmanager;
pub use influx::Influx1;
pub use mosquitto::{Mosquitto, MosquittoOpts};
pub use process::{free_port, is_root, wait_until};
pub use prometheus::Prometheus;
pub use receiver::{Receiver, Reply};
pub use victoria::{VictoriaMetrics, VmOpts};
