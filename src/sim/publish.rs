//! Publishing the simulated stream: pacing, MQTT QoS 1 through rumqttc with a bounded number
//! in flight, and the report of what was actually published.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::{SimMessage, Simulator};
use super::faults::StationFaults;
use super::{SimArgs, SimError};
use crate::registry::Registry;

/// Per-fault counts of what was published.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultCounts {
    /// Messages that offline stations did not publish.
    pub offline_suppressed: u64,
    pub flatline: u64,
    pub spike: u64,
    /// Second copies of duplicated messages.
    pub duplicate: u64,
    /// Messages sent late after a back-fill outage.
    pub backfill: u64,
    pub clock_skew: u64,
    /// Messages sent during a pollution episode (PM2.5/PM10 raised).
    pub episode: u64,
    /// Messages sent during a maintenance window (readings flagged `M`).
    pub maintenance: u64,
    /// Malformed payloads by kind.
    pub malformed: BTreeMap<String, u64>,
}

impl FaultCounts {
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}

/// Why publishing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    #[default]
    Duration,
    Count,
    Cancelled,
    /// The simulator had nothing more to publish.
    Exhausted,
}

/// What `envmon simulate` actually published.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimReport {
    /// Messages handed to the MQTT client (QoS 1 publishes).
    pub messages_sent: u64,
    /// Messages the broker acknowledged (PUBACK). Equal to `messages_sent` after a clean end.
    pub messages_acked: u64,
    /// Readings in the well-formed messages sent (duplicates included).
    pub readings: u64,
    pub by_format: BTreeMap<String, u64>,
    pub by_station_kind: BTreeMap<String, u64>,
    /// Distinct stations that published at least one message.
    pub stations: usize,
    pub faults: FaultCounts,
    /// Stations with faults and what they are (`GS-A01: offline`).
    pub faulty_stations: Vec<String>,
    pub first_sim_time: Option<DateTime<Utc>>,
    pub last_sim_time: Option<DateTime<Utc>>,
    pub elapsed_s: f64,
    /// Acknowledged messages per second of elapsed time.
    pub rate_msg_s: f64,
    pub reconnects: u64,
    pub stop: StopReason,
    /// True once the simulated time reached the wall clock (the back-fill is over): the next
    /// message was due in the future.
    pub caught_up: bool,
    /// Seconds the publisher waited for its consumer under [`Pacing`] (0 without pacing).
    pub paced_wait_s: f64,
    /// Times a [`Pacing`] wait gave up because nothing was consumed for `Pacing::stall`.
    pub pacing_stalls: u64,
    #[serde(skip)]
    seen: BTreeSet<String>,
}

impl SimReport {
    /// Count one message as sent.
    pub fn record(&mut self, m: &SimMessage) {
        self.messages_sent += 1;
        self.readings += m.readings as u64;
        *self
            .by_format
            .entry(m.format.as_str().to_string())
            .or_insert(0) += 1;
        *self
            .by_station_kind
            .entry(m.kind.as_str().to_string())
            .or_insert(0) += 1;
        if !self.seen.contains(&m.station) {
            self.seen.insert(m.station.clone());
            self.stations = self.seen.len();
        }
        let f = &mut self.faults;
        f.flatline += u64::from(m.tags.flatline);
        f.spike += u64::from(m.tags.spike);
        f.duplicate += u64::from(m.tags.duplicate);
        f.backfill += u64::from(m.tags.backfill);
        f.clock_skew += u64::from(m.tags.clock_skew);
        f.episode += u64::from(m.tags.episode);
        f.maintenance += u64::from(m.tags.maintenance);
        if let Some(k) = m.tags.malformed {
            *f.malformed.entry(k.as_str().to_string()).or_insert(0) += 1;
        }
        if self.first_sim_time.is_none() {
            self.first_sim_time = Some(m.publish_time);
        }
        self.last_sim_time = Some(m.publish_time);
    }

    /// One line for `--progress`.
    pub fn progress_line(&self) -> String {
        format!(
            "simulate: {} sent, {} acked, {} readings, {:.1} msg/s, sim time {}, malformed {}, dup {}, spike {}",
            self.messages_sent,
            self.messages_acked,
            self.readings,
            self.rate_msg_s,
            self.last_sim_time
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            self.faults.malformed_total(),
            self.faults.duplicate,
            self.faults.spike,
        )
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "published {} messages ({} acknowledged by the broker) with {} readings from {} stations in {:.1} s: {:.1} msg/s (stopped: {:?})",
            self.messages_sent,
            self.messages_acked,
            self.readings,
            self.stations,
            self.elapsed_s,
            self.rate_msg_s,
            self.stop
        )?;
        if let (Some(a), Some(b)) = (self.first_sim_time, self.last_sim_time) {
            writeln!(
                f,
                "  simulated time {} .. {}",
                a.to_rfc3339(),
                b.to_rfc3339()
            )?;
        }
        let join = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "  by format: {}", join(&self.by_format))?;
        writeln!(f, "  by station kind: {}", join(&self.by_station_kind))?;
        let fc = &self.faults;
        writeln!(
            f,
            "  faults: offline (not sent) {}, flatline {}, spike {}, duplicate {}, backfill {}, clock_skew {}, episode {}, maintenance {}, malformed {}{}",
            fc.offline_suppressed,
            fc.flatline,
            fc.spike,
            fc.duplicate,
            fc.backfill,
            fc.clock_skew,
            fc.episode,
            fc.maintenance,
            fc.malformed_total(),
            if fc.malformed.is_empty() {
                String::new()
            } else {
                format!(" ({})", join(&fc.malformed))
            }
        )?;
        for s in &self.faulty_stations {
            writeln!(f, "  fault: {s}")?;
        }
        if self.reconnects > 0 {
            writeln!(f, "  reconnects: {}", self.reconnects)?;
        }
        Ok(())
    }
}

/// Split `mqtt://HOST:PORT` into host and port.
pub fn parse_broker(url: &str) -> Result<(String, u16), SimError> {
    let bad = |reason: String| SimError::BadArgument {
        flag: "--broker",
        reason: format!("{url:?}: {reason}"),
    };
    let rest = if let Some(r) = url.strip_prefix("mqtt://") {
        r
    } else if let Some(r) = url.strip_prefix("tcp://") {
        r
    } else if url.starts_with("mqtts://") || url.starts_with("ssl://") {
        return Err(bad(
            "TLS is not supported by the simulator; use mqtt://".into()
        ));
    } else if url.contains("://") {
        return Err(bad("expected mqtt://HOST:PORT".into()));
    } else {
        url
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in IPv6 address".into()))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    let port = match port {
        None => 1883,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("{p:?} is not a port")))?,
    };
    Ok((host, port))
}

/// Flow control of the publisher against the consumer of its messages (the demo's envmon).
///
/// A broker's PUBACK to the publisher says "accepted", not "delivered": the embedded rumqttd
/// acknowledges a message as soon as it is appended to its in-memory log, and when a subscriber
/// falls further behind than that log holds, rumqttd drops the oldest segment and moves the
/// subscriber's cursor past it (measured: `envmon demo --backfill 2d` lost 267,411 of 572,153
/// messages that way). With pacing, the publisher keeps at most `budget_bytes` of messages
/// published and not yet consumed, counting every such message at the size of the largest one
/// published so far (as the broker counts it: 4 + topic + payload bytes), so no topic filter's
/// log ever holds more unread data than the budget.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Messages the consumer has taken off the broker so far (the demo: envmon's received count).
    pub consumed: watch::Receiver<u64>,
    /// Bytes that may be published and not yet consumed (the broker's guaranteed retention
    /// per topic filter, [`crate::broker::BrokerOptions::retained_bytes_per_filter`]).
    pub budget_bytes: u64,
    /// Stop waiting when nothing was consumed for this long (the consumer is stuck or messages
    /// were lost): publishing goes on and the wait is counted in `SimReport::pacing_stalls`.
    pub stall: Duration,
}

/// Size of one message as rumqttd's log counts it (`Storage::size` of a PUBLISH in rumqttd
/// 0.20: 4 bytes plus topic plus payload).
pub fn broker_size(topic: &str, payload_len: usize) -> u64 {
    (4 + topic.len() + payload_len) as u64
}

/// How many messages may be published and not yet consumed: `budget / largest`, at least 1.
pub fn pacing_window(budget_bytes: u64, largest_message: u64) -> u64 {
    (budget_bytes / largest_message.max(1)).max(1)
}

#[derive(Debug, Clone, PartialEq)]
enum Conn {
    Connecting,
    Up,
    Failed(String),
}

/// Run the simulator against a broker until `--duration`, `--count` or `cancel`.
pub async fn run_simulate(
    args: &SimArgs,
    cancel: CancellationToken,
) -> Result<SimReport, SimError> {
    run_simulate_with(args, None, cancel, None, None).await
}

/// [`run_simulate`] with an already loaded registry (instead of `args.stations`), an optional
/// channel that receives the report every second (`--progress` prints it every 5 s), and
/// optional [`Pacing`] against the consumer.
pub async fn run_simulate_with(
    args: &SimArgs,
    registry: Option<Registry>,
    cancel: CancellationToken,
    progress: Option<watch::Sender<SimReport>>,
    mut pacing: Option<Pacing>,
) -> Result<SimReport, SimError> {
    let (host, port) = parse_broker(&args.broker)?;
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(SimError::BadArgument {
                flag: "--rate",
                reason: format!("{r} is not a positive number of messages per second"),
            });
        }
    }
    if args.max_inflight == 0 {
        return Err(SimError::BadArgument {
            flag: "--max-inflight",
            reason: "must be at least 1".into(),
        });
    }
    let registry = match registry {
        Some(r) => r,
        None => Registry::load(&args.stations)?,
    };
    let now = Utc::now();
    let cfg = args.sim_config(now)?;
    let mut sim = Simulator::new(registry.stations(), cfg)?;

    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("envmon-sim-{}", std::process::id()));
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_inflight(args.max_inflight);
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(args.max_inflight).max(10));

    let acked = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let (conn_tx, mut conn_rx) = watch::channel(Conn::Connecting);
    let poll_stop = CancellationToken::new();
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll_task = {
        let closing = Arc::clone(&closing);
        let acked = Arc::clone(&acked);
        let reconnects = Arc::clone(&reconnects);
        let stop = poll_stop.clone();
        tokio::spawn(async move {
            let mut ever_up = false;
            let mut down_since: Option<Instant> = None;
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => break,
                    ev = eventloop.poll() => ev,
                };
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        ever_up = true;
                        down_since = None;
                        let _ = conn_tx.send(Conn::Up);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) if closing.load(Ordering::Relaxed) => break,
                    Err(e) => {
                        if !ever_up {
                            let _ = conn_tx.send(Conn::Failed(e.to_string()));
                            break;
                        }
                        let since = *down_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(15) {
                            let _ = conn_tx.send(Conn::Failed(e.to_string()));
                            break;
                        }
                        reconnects.fetch_add(1, Ordering::Relaxed);
                        let _ = conn_tx.send(Conn::Connecting);
                        tracing::warn!(error = %e, "simulate: MQTT connection error; reconnecting");
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        }
                    }
                }
            }
        })
    };

    // Wait for the first CONNACK.
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match &*conn_rx.borrow_and_update() {
                Conn::Up => return Ok(()),
                Conn::Failed(e) => return Err(e.clone()),
                Conn::Connecting => {}
            }
            if conn_rx.changed().await.is_err() {
                return Err("MQTT event loop ended".to_string());
            }
        }
    })
    .await;
    let fail_connect = |reason: String| SimError::Connect {
        broker: args.broker.clone(),
        reason,
    };
    match connected {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            poll_stop.cancel();
            let _ = poll_task.await;
            return Err(fail_connect(e));
        }
        Err(_) => {
            poll_stop.cancel();
            let _ = poll_task.await;
            return Err(fail_connect("no CONNACK within 10 s".into()));
        }
    }

    let mut report = SimReport {
        faulty_stations: describe_faults(&sim),
        ..SimReport::default()
    };
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let burst = Duration::from_millis(20);
    let mut next_slot = started;
    let mut last_progress = (started, started);
    let mut lost: Option<String> = None;
    let mut largest: u64 = 0;
    let mut paced_wait = Duration::ZERO;
    let stop = 'outer: loop {
        if cancel.is_cancelled() {
            break StopReason::Cancelled;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break StopReason::Duration;
        }
        if args.count.is_some_and(|c| report.messages_sent >= c) {
            break StopReason::Count;
        }
        if let Conn::Failed(e) = &*conn_rx.borrow() {
            lost = Some(e.clone());
            break StopReason::Cancelled;
        }
        let Some(msg) = sim.next_message()? else {
            break StopReason::Exhausted;
        };
        if !report.caught_up && msg.publish_time > Utc::now() {
            report.caught_up = true;
        }
        // Pacing: a token bucket at --rate (small burst), or the wall clock.
        let now = Instant::now();
        let wait_until = match interval {
            Some(iv) => {
                if next_slot + burst < now {
                    next_slot = now - burst;
                }
                let t = next_slot;
                next_slot += iv;
                (t > now).then_some(t)
            }
            None => {
                let ahead = msg.publish_time - Utc::now();
                ahead
                    .to_std()
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(|d| now + d)
            }
        };
        if let Some(t) = wait_until {
            let t = deadline.map_or(t, |d| t.min(d));
            loop {
                // Wake at least every second for progress and connection state.
                let step = t.min(Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer StopReason::Cancelled,
                    _ = tokio::time::sleep_until(step) => {}
                }
                if args.progress || progress.is_some() {
                    maybe_progress(
                        &mut report,
                        &acked,
                        started,
                        &mut last_progress,
                        args.progress,
                        progress.as_ref(),
                    );
                }
                if Instant::now() >= t {
                    break;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break StopReason::Duration;
            }
        }
        largest = largest.max(broker_size(&msg.topic, msg.payload.len()));
        if let Some(p) = pacing.as_mut() {
            let window = pacing_window(p.budget_bytes, largest);
            let t0 = Instant::now();
            let mut last_seen = (*p.consumed.borrow(), t0);
            while report.messages_sent.saturating_sub(*p.consumed.borrow()) >= window {
                let c = *p.consumed.borrow_and_update();
                if c != last_seen.0 {
                    last_seen = (c, Instant::now());
                } else if last_seen.1.elapsed() >= p.stall {
                    report.pacing_stalls += 1;
                    tracing::warn!(
                        sent = report.messages_sent,
                        consumed = c,
                        stall_s = p.stall.as_secs_f64(),
                        "simulate: the consumer took nothing for a while; publishing on"
                    );
                    break;
                }
                let wake = (last_seen.1 + p.stall).min(Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer StopReason::Cancelled,
                    _ = p.consumed.changed() => {}
                    _ = tokio::time::sleep_until(wake) => {}
                }
                if args.progress || progress.is_some() {
                    maybe_progress(
                        &mut report,
                        &acked,
                        started,
                        &mut last_progress,
                        args.progress,
                        progress.as_ref(),
                    );
                }
            }
            paced_wait += t0.elapsed();
            report.paced_wait_s = paced_wait.as_secs_f64();
        }
        let publish = client.publish(
            msg.topic.clone(),
            QoS::AtLeastOnce,
            false,
            msg.payload.clone(),
        );
        tokio::select! {
            _ = cancel.cancelled() => break StopReason::Cancelled,
            r = publish => {
                if let Err(e) = r {
                    lost = Some(e.to_string());
                    break StopReason::Cancelled;
                }
            }
        }
        report.record(&msg);
        if args.progress || progress.is_some() {
            maybe_progress(
                &mut report,
                &acked,
                started,
                &mut last_progress,
                args.progress,
                progress.as_ref(),
            );
        }
    };

    // Drain: wait for the broker to acknowledge what was sent.
    let drain_end = Instant::now() + args.drain_timeout;
    while acked.load(Ordering::Relaxed) < report.messages_sent && Instant::now() < drain_end {
        if matches!(&*conn_rx.borrow(), Conn::Failed(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    closing.store(true, Ordering::Relaxed);
    let _ = client.disconnect().await;
    // Let the event loop send DISCONNECT, then stop it.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while !poll_task.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if matches!(&*conn_rx.borrow(), Conn::Connecting | Conn::Failed(_)) {
                break;
            }
        }
    })
    .await;
    poll_stop.cancel();
    let _ = poll_task.await;

    report.messages_acked = acked.load(Ordering::Relaxed);
    report.faults.offline_suppressed = sim.suppressed_offline();
    report.reconnects = reconnects.load(Ordering::Relaxed);
    report.elapsed_s = elapsed.as_secs_f64();
    report.rate_msg_s = if report.elapsed_s > 0.0 {
        report.messages_acked as f64 / report.elapsed_s
    } else {
        0.0
    };
    report.stop = stop;
    if let Some(reason) = lost {
        if !cancel.is_cancelled() {
            return Err(SimError::ConnectionLost {
                broker: args.broker.clone(),
                reason: format!("{reason} (after {} messages sent)", report.messages_sent),
            });
        }
    }
    if let Some(tx) = &progress {
        let _ = tx.send(report.clone());
    }
    Ok(report)
}

/// Refresh the report's running figures; print them every 5 s (`--progress`) and send them on
/// `tx` every second. `last` is (last print, last send).
fn maybe_progress(
    report: &mut SimReport,
    acked: &AtomicU64,
    started: Instant,
    last: &mut (Instant, Instant),
    print: bool,
    tx: Option<&watch::Sender<SimReport>>,
) {
    let print_due = print && last.0.elapsed() >= Duration::from_secs(5);
    let send_due = tx.is_some() && last.1.elapsed() >= Duration::from_secs(1);
    if !print_due && !send_due {
        return;
    }
    report.messages_acked = acked.load(Ordering::Relaxed);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.rate_msg_s = report.messages_acked as f64 / report.elapsed_s.max(1e-9);
    if print_due {
        last.0 = Instant::now();
        eprintln!("{}", report.progress_line());
    }
    if let (true, Some(tx)) = (send_due, tx) {
        last.1 = Instant::now();
        let _ = tx.send(report.clone());
    }
}

/// One line per station with faults; per-message rates shared by every station in one line.
fn describe_faults(sim: &Simulator) -> Vec<String> {
    let faulty = sim.faulty_stations();
    let n = sim.stations().count();
    let everywhere = |get: fn(&StationFaults) -> f64| -> Option<f64> {
        let r = get(&faulty.first()?.1);
        (r > 0.0 && faulty.len() == n && faulty.iter().all(|(_, f)| get(f) == r)).then_some(r)
    };
    let spike = everywhere(|f| f.spike_rate);
    let malformed = everywhere(|f| f.malformed_rate);
    let duplicate = everywhere(|f| f.duplicate_rate);
    let mut out = Vec::new();
    let all = StationFaults {
        spike_rate: spike.unwrap_or(0.0),
        malformed_rate: malformed.unwrap_or(0.0),
        duplicate_rate: duplicate.unwrap_or(0.0),
        ..StationFaults::default()
    };
    if all.any() {
        out.push(format!("all stations: {}", describe(&all)));
    }
    for (id, mut f) in faulty {
        if spike.is_some() {
            f.spike_rate = 0.0;
        }
        if malformed.is_some() {
            f.malformed_rate = 0.0;
        }
        if duplicate.is_some() {
            f.duplicate_rate = 0.0;
        }
        if f.any() {
            out.push(format!("{id}: {}", describe(&f)));
        }
    }
    out
}

fn describe(f: &StationFaults) -> String {
    let mut v = Vec::new();
    if f.offline {
        v.push("offline".to_string());
    }
    for p in &f.flatline {
        v.push(format!("flatline {p}"));
    }
    if f.spike_rate > 0.0 {
        v.push(format!("spike {:.1}%", f.spike_rate * 100.0));
    }
    if f.malformed_rate > 0.0 {
        v.push(format!("malformed {:.1}%", f.malformed_rate * 100.0));
    }
    if f.duplicate_rate > 0.0 {
        v.push(format!("duplicate {:.1}%", f.duplicate_rate * 100.0));
    }
    if let Some(w) = f.backfill_s {
        v.push(format!("backfill after a {w} s outage"));
    }
    if let Some(s) = f.skew_s {
        v.push(format!("clock skew {s:+} s"));
    }
    if let Some(p) = f.episode_period_s {
        v.push(format!(
            "pollution episode (PM2.5 x4, PM10 x3) in the first half of every {p} s"
        ));
    }
    if let Some(p) = f.maintenance_period_s {
        v.push(format!(
            "maintenance (flag M) in the first half of every {p} s"
        ));
    }
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_broker("tcp://localhost").unwrap(),
            ("localhost".into(), 1883)
        );
        assert_eq!(
            parse_broker("mqtt://[::1]:1885").unwrap(),
            ("::1".into(), 1885)
        );
        for bad in [
            "mqtts://h:1",
            "http://h:1",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:x",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
    }
}
