//! HJ 212 data loggers over TCP: framing, per-connection limits, 9014 responses after storage,
//! split-packet reassembly, time calibration.
//!
//! Wiring (done by `app.rs`): when `[hj212] listen` is set, [`bind`] it at start-up (a busy port
//! is a start-up error), then spawn [`serve`] with the pipeline's envelope sender. Register
//! [`Hj212TcpMetrics`] once with the telemetry registry.
//!
//! Per connection:
//! - **Framing**: bytes are scanned for `##`; a frame ends at the first `\r\n`. Garbage before a
//!   `##` is skipped (counted); a frame that meets a new `##` before its `\r\n` is abandoned
//!   (resynchronise on the new header); a frame longer than `max_frame_len` is discarded up to
//!   the next `##`. The read buffer never grows beyond `max_frame_len` plus one read.
//! - **Checks**: frame check (CRC, length), data segment, MN → station, PW. A station needs its
//!   password (registry `pw` / `pw_env`) unless the registry says `hj212_no_password = true`
//!   for it ([`PwPolicy::Required`]). A failure becomes a `Payload::Rejected` envelope
//!   (dead-letter, counted) and gets no response. `PW=` values are redacted (`***`) in every
//!   log line, error and dead-letter record.
//! - **Unauthenticated frames** (any rejection before the MN and PW were verified): their
//!   dead-letter records name no station (the MN they claim is in the detail; the dead-letter
//!   keeps them apart, in `unauthenticated/`) and are rate-limited over all connections
//!   (`unauthenticated_deadletter_per_min`; the rest counted in `deadletter_suppressed`). Auth
//!   failures are counted per MN (`auth_failures`, registry MNs only, else `unknown`) and per
//!   peer address (in memory, bounded, named in the log). `max_rejected_frames` of them in a row
//!   close the connection and refuse its address for `reject_backoff_s`.
//! - **Uploads** (CN 2xxx) become `Payload::Readings` envelopes. With Flag bit A they carry an
//!   [`AckHandle`]; the CN=9014 response ([`encode::data_response`]) is written only once the
//!   pipeline completes the handle (stored or dead-lettered), in frame order. A dropped handle
//!   (not stored) stops all later responses on the connection and closes it, so the logger sends
//!   the unacknowledged data again.
//! - **Split uploads** (Flag bit D, PNUM/PNO) are collected per (MN, CN, QN) and decoded as one
//!   once every part has arrived; one 9014 echoing the shared QN follows their storage. Parts
//!   still missing after `split_timeout_s` (or at disconnect) send what arrived to the
//!   dead-letter as `incomplete split`.
//! - **CN=1013** time calibration: answered with CN=1012 (station-local SystemTime) when
//!   `time_calibration` is on. For every frame whose QN is a timestamp, the device clock drift
//!   (QN − server time) is exported per MN and logged when over 5 minutes.
//! - **Limits**: `max_connections` in all and `max_connections_per_peer` per peer IP address
//!   (further connections are closed at once, counted in `refusals{reason}`),
//!   `idle_timeout_s` (no complete valid frame for that long → close, whatever bytes arrive:
//!   `slow frame` when one was in progress, else `idle`), a bounded
//!   response queue (a logger that does not read its responses stalls only itself), writes time
//!   out after `idle_timeout_s`. Each connection is its own task; the pipeline channel is the
//!   only shared queue (tokio's mpsc serves waiting senders in order), so one client cannot
//!   starve others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decode::hj212::frame::snippet;
use crate::decode::hj212::{self, encode, Hj212Error, Hj212Options, PwPolicy, Segment};
use crate::decode::{DecodeContext, Format};
use crate::registry::{Registry, Station};
use crate::source::{AckHandle, AckWaiter, Envelope, Origin, Payload};

/// Errors that stop the listener (per-connection trouble never does).
#[derive(Debug, thiserror::Error)]
pub enum Hj212TcpError {
    #[error("hj212.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Labels: MN of a registered station, or `unknown` (bounded by the registry).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MnLabels {
    pub mn: String,
}

/// Labels: MN (as [`MnLabels`]) and result (`ok`, `ignored`, or a fixed rejection reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    pub mn: String,
    pub result: &'static str,
}

/// Labels: a fixed reason: why a connection was refused (`max_connections`, `per_peer`,
/// `backoff`), or why a dead-letter record was not written (a frame rejection reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Labels: why a connection ended (`eof`, `idle`, `slow frame`, `error`, `shutdown`,
/// `not stored`, `write timeout`, `pipeline closed`, `rejected frames`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    pub reason: &'static str,
}

/// Metrics of the HJ 212 listener (prefix `envmon_hj212_tcp_`). Cheap to clone (shared cells).
#[derive(Debug, Clone, Default)]
pub struct Hj212TcpMetrics {
    pub connections_open: Gauge,
    pub connections: Counter,
    pub connections_refused: Counter,
    pub refusals: Family<ReasonLabels, Counter>,
    pub auth_failures: Family<MnLabels, Counter>,
    pub deadletter_suppressed: Family<ReasonLabels, Counter>,
    pub backoffs: Counter,
    pub backed_off_addresses: Gauge,
    pub connections_closed: Family<CloseLabels, Counter>,
    pub frames: Family<FrameLabels, Counter>,
    pub bytes_received: Counter,
    pub garbage_bytes: Counter,
    pub oversized_frames: Counter,
    pub responses_sent: Family<MnLabels, Counter>,
    pub bad_length_accepted: Family<MnLabels, Counter>,
    pub time_calibrations: Family<MnLabels, Counter>,
    pub clock_drift_seconds: Family<MnLabels, Gauge<f64, AtomicU64>>,
}

impl Hj212TcpMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every metric under `envmon_hj212_tcp_`.
    pub fn register(&self, reg: &mut prometheus_client::registry::Registry) {
        let r = reg.sub_registry_with_prefix("envmon_hj212_tcp");
        r.register(
            "connections_open",
            "Open logger connections",
            self.connections_open.clone(),
        );
        r.register(
            "connections",
            "Logger connections accepted",
            self.connections.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed at once (any reason; by reason: refusals)",
            self.connections_refused.clone(),
        );
        r.register(
            "refusals",
            "Connections closed at once, by reason (max_connections, per_peer, backoff)",
            self.refusals.clone(),
        );
        r.register(
            "auth_failures",
            "Frames with a wrong or missing PW, or for a station without a password, by MN",
            self.auth_failures.clone(),
        );
        r.register(
            "deadletter_suppressed",
            "Unauthenticated frames not dead-lettered (unauthenticated_deadletter_per_min)",
            self.deadletter_suppressed.clone(),
        );
        r.register(
            "backoffs",
            "Peer addresses refused for reject_backoff_s after max_rejected_frames",
            self.backoffs.clone(),
        );
        r.register(
            "backed_off_addresses",
            "Peer addresses currently refused (backoff)",
            self.backed_off_addresses.clone(),
        );
        r.register(
            "connections_closed",
            "Logger connections ended, by reason",
            self.connections_closed.clone(),
        );
        r.register(
            "frames",
            "Frames received, by MN and result",
            self.frames.clone(),
        );
        r.register(
            "bytes_received",
            "Bytes read from loggers",
            self.bytes_received.clone(),
        );
        r.register(
            "garbage_bytes",
            "Bytes skipped while looking for a frame header",
            self.garbage_bytes.clone(),
        );
        r.register(
            "oversized_frames",
            "Frames discarded for exceeding max_frame_len",
            self.oversized_frames.clone(),
        );
        r.register(
            "responses_sent",
            "CN=9014 data responses sent after storage",
            self.responses_sent.clone(),
        );
        r.register(
            "bad_length_accepted",
            "Frames accepted with a wrong length field (accept_bad_length)",
            self.bad_length_accepted.clone(),
        );
        r.register(
            "time_calibrations",
            "CN=1013 requests answered with CN=1012",
            self.time_calibrations.clone(),
        );
        r.register(
            "clock_drift_seconds",
            "Device clock minus server clock, from the last QN",
            self.clock_drift_seconds.clone(),
        );
    }
}

/// What the framer found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete candidate frame, `##` … `\r\n` inclusive (not yet checked).
    Frame(Bytes),
    /// This many bytes were skipped (no header, or a frame cut short by a new `##`).
    Garbage(usize),
    /// A frame exceeded the maximum length and was dropped (its remainder is skipped as garbage).
    Oversized,
}

/// Incremental HJ 212 framer over a byte buffer (resumes its scan across reads).
#[derive(Debug)]
pub struct Framer {
    max_len: usize,
    scanned: usize,
}

impl Framer {
    pub fn new(max_len: usize) -> Self {
        Framer {
            max_len: max_len.max(12),
            scanned: 2,
        }
    }

    /// True when the buffer holds the start of a frame that is not complete yet.
    pub fn in_frame(&self, buf: &BytesMut) -> bool {
        buf.starts_with(b"##")
    }

    /// Next event, consuming the bytes it covers; `None` = need more bytes.
    pub fn next_event(&mut self, buf: &mut BytesMut) -> Option<FrameEvent> {
        if buf.is_empty() {
            return None;
        }
        if !buf.starts_with(b"##") {
            self.scanned = 2;
            let skip = match buf.windows(2).position(|w| w == b"##") {
                Some(p) => p,
                // keep a trailing '#': it may be half of the next header
                None if buf.ends_with(b"#") => buf.len() - 1,
                None => buf.len(),
            };
            if skip == 0 {
                return None;
            }
            buf.advance(skip);
            return Some(FrameEvent::Garbage(skip));
        }
        if buf.len() >= 3 && buf[2] == b'#' {
            // "###…": the header is the last two of the run
            self.scanned = 2;
            buf.advance(1);
            return Some(FrameEvent::Garbage(1));
        }
        let limit = buf.len().min(self.max_len);
        let mut i = self.scanned.max(2);
        while i + 1 < limit {
            match (buf[i], buf[i + 1]) {
                (b'\r', b'\n') => {
                    self.scanned = 2;
                    return Some(FrameEvent::Frame(buf.split_to(i + 2).freeze()));
                }
                (b'#', b'#') => {
                    self.scanned = 2;
                    buf.advance(i);
                    return Some(FrameEvent::Garbage(i));
                }
                _ => i += 1,
            }
        }
        if buf.len() >= self.max_len {
            self.scanned = 2;
            buf.advance(2);
            return Some(FrameEvent::Oversized);
        }
        self.scanned = i.max(2);
        None
    }
}

/// Bind the configured address.
pub async fn bind(addr: &str) -> Result<TcpListener, Hj212TcpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Hj212TcpError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Peer addresses tracked at most (backoffs, auth failure counts); the oldest entries go first.
const MAX_TRACKED_PEERS: usize = 4096;

/// Per peer address: open connections, backoff, auth failures.
#[derive(Default)]
struct Peers {
    open: HashMap<IpAddr, usize>,
    backoff: HashMap<IpAddr, Instant>,
    auth_failures: HashMap<IpAddr, u64>,
}

/// The dead-letter budget of unauthenticated frames: a token bucket of `per_min` tokens.
struct Bucket {
    per_min: u32,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_min: u32) -> Self {
        Bucket {
            per_min,
            tokens: f64::from(per_min),
            last: Instant::now(),
        }
    }
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let cap = f64::from(self.per_min);
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * cap / 60.0).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open connection counted against its address; released on drop.
struct PeerSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut p = lock(&self.shared.peers);
        if let Some(n) = p.open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.open.remove(&self.ip);
            }
        }
    }
}

struct Shared {
    opts: Hj212Options,
    registry: Arc<Registry>,
    tx: mpsc::Sender<Envelope>,
    metrics: Arc<Hj212TcpMetrics>,
    peers: Mutex<Peers>,
    bucket: Mutex<Bucket>,
}

impl Shared {
    /// A slot for a new connection from `ip`, or the reason to refuse it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PeerSlot, &'static str> {
        let mut p = lock(&self.peers);
        let now = Instant::now();
        if let Some(until) = p.backoff.get(&ip).copied() {
            if until > now {
                return Err("backoff");
            }
            p.backoff.remove(&ip);
            self.metrics
                .backed_off_addresses
                .set(p.backoff.len() as i64);
        }
        let n = p.open.entry(ip).or_insert(0);
        if *n >= self.opts.max_connections_per_peer.max(1) {
            return Err("per_peer");
        }
        *n += 1;
        Ok(PeerSlot {
            shared: self.clone(),
            ip,
        })
    }

    fn refuse(&self, peer: SocketAddr, reason: &'static str) {
        self.metrics.connections_refused.inc();
        self.metrics
            .refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
        tracing::warn!(%peer, reason, max = self.opts.max_connections,
            max_per_peer = self.opts.max_connections_per_peer,
            "hj212: connection refused, closing it");
    }

    /// Refuse `ip` for `reject_backoff_s` from now.
    fn back_off(&self, ip: IpAddr) {
        let mut p = lock(&self.peers);
        let now = Instant::now();
        p.backoff.retain(|_, until| *until > now);
        if p.backoff.len() >= MAX_TRACKED_PEERS {
            if let Some(first) = p.backoff.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                p.backoff.remove(&first);
            }
        }
        p.backoff
            .insert(ip, now + Duration::from_secs(self.opts.reject_backoff_s));
        self.metrics.backoffs.inc();
        self.metrics
            .backed_off_addresses
            .set(p.backoff.len() as i64);
    }

    /// Count one auth failure of `ip`; the address's total so far.
    fn note_auth_failure(&self, ip: IpAddr) -> u64 {
        let mut p = lock(&self.peers);
        if !p.auth_failures.contains_key(&ip) && p.auth_failures.len() >= MAX_TRACKED_PEERS {
            if let Some(least) = p
                .auth_failures
                .iter()
                .min_by_key(|(_, n)| **n)
                .map(|(k, _)| *k)
            {
                p.auth_failures.remove(&least);
            }
        }
        let n = p.auth_failures.entry(ip).or_insert(0);
        *n += 1;
        *n
    }

    fn mn_label(&self, mn: Option<&str>) -> String {
        match mn {
            Some(m) if self.registry.by_mn(m).is_some() => m.to_string(),
            _ => "unknown".to_string(),
        }
    }
    fn count(&self, mn: Option<&str>, result: &'static str) {
        self.metrics
            .frames
            .get_or_create(&FrameLabels {
                mn: self.mn_label(mn),
                result,
            })
            .inc();
    }
}

/// Accept loop on an already bound listener (tests bind `127.0.0.1:0`). Stops accepting on
/// `cancel`, then waits for open connections to finish (they stop reading at once and send the
/// responses still due as the pipeline completes them).
pub async fn serve(
    listener: TcpListener,
    opts: Hj212Options,
    registry: Arc<Registry>,
    tx: mpsc::Sender<Envelope>,
    cancel: CancellationToken,
    metrics: Arc<Hj212TcpMetrics>,
) -> Result<(), Hj212TcpError> {
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "hj212 TCP listener up");
    }
    let sem = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let bucket = Mutex::new(Bucket::new(opts.unauthenticated_deadletter_per_min));
    let shared = Arc::new(Shared {
        opts,
        registry,
        tx,
        metrics,
        peers: Mutex::new(Peers::default()),
        bucket,
    });
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let ip = peer.ip().to_canonical();
                    let admitted = shared.admit(ip).and_then(|slot| {
                        match sem.clone().try_acquire_owned() {
                            Ok(permit) => Ok((slot, permit)),
                            Err(_) => Err("max_connections"),
                        }
                    });
                    match admitted {
                        Ok((slot, permit)) => {
                            let shared = shared.clone();
                            let cancel = cancel.child_token();
                            tracker.spawn(async move {
                                connection(sock, peer, shared, cancel).await;
                                drop(permit);
                                drop(slot);
                            });
                        }
                        Err(reason) => {
                            shared.refuse(peer, reason);
                            drop(sock);
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly, keep serving.
                    tracing::warn!(error = %e, "hj212: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// A response for the writer task, in frame order.
enum Reply {
    /// Write `bytes` once the pipeline reports the payload final; stop if it was not stored.
    AfterStore {
        waiter: AckWaiter,
        bytes: Vec<u8>,
        mn: String,
    },
    /// Write at once (after the responses queued before it).
    Now(Vec<u8>),
}

/// Parts of one split upload.
struct SplitSet {
    first_seen: Instant,
    pnum: u32,
    parts: BTreeMap<u32, (String, Bytes)>,
    qn: Option<String>,
    st: Option<String>,
    cn: String,
    pw: Option<String>,
    mn: String,
    flag: u8,
    wants_ack: bool,
    station: Arc<Station>,
}

const MAX_SPLIT_PARTS: u32 = 64;
const MAX_SPLIT_SETS: usize = 4;
const REPLY_QUEUE: usize = 64;
const DRIFT_WARN_S: f64 = 300.0;

/// What the read loop does after a frame.
enum Step {
    Go,
    Close(&'static str),
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    ip: IpAddr,
    /// The last complete valid (authenticated) frame, or the connection's start.
    last_valid: Instant,
    /// Unauthenticated rejected frames since the last valid one.
    rejected_in_a_row: u32,
    origin: Origin,
    replies: mpsc::Sender<Reply>,
    splits: HashMap<(String, String, String), SplitSet>,
    drift_warned: HashSet<String>,
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let m = shared.metrics.clone();
    m.connections.inc();
    m.connections_open.inc();
    let _ = sock.set_nodelay(true);
    let (mut rd, wr) = sock.into_split();
    let idle = Duration::from_secs(shared.opts.idle_timeout_s.max(1));
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    let stop = cancel.child_token();
    let why_stopped = Arc::new(OnceLock::new());
    let writer = tokio::spawn(writer(
        wr,
        reply_rx,
        shared.clone(),
        (stop.clone(), why_stopped.clone()),
        idle,
    ));
    let mut conn = Conn {
        origin: Origin::Hj212Tcp(peer),
        shared: shared.clone(),
        peer,
        ip: peer.ip().to_canonical(),
        last_valid: Instant::now(),
        rejected_in_a_row: 0,
        replies: reply_tx,
        splits: HashMap::new(),
        drift_warned: HashSet::new(),
    };
    tracing::debug!(%peer, "hj212: logger connected");
    let mut buf = BytesMut::with_capacity(4096);
    let mut framer = Framer::new(shared.opts.max_frame_len);
    let split_timeout = Duration::from_secs(shared.opts.split_timeout_s.max(1));
    let close_reason: &'static str = loop {
        // Time without a complete valid frame, not time without bytes.
        let deadline = conn.last_valid + idle;
        let split_deadline = conn
            .splits
            .values()
            .map(|s| s.first_seen + split_timeout)
            .min();
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        tokio::select! {
            _ = stop.cancelled() => {
                break if cancel.is_cancelled() {
                    "shutdown"
                } else {
                    why_stopped.get().copied().unwrap_or("not stored")
                };
            }
            _ = tokio::time::sleep_until(split_deadline.unwrap_or(deadline)), if split_deadline.is_some() => {
                if !conn.expire_splits(split_timeout, false).await {
                    break "pipeline closed";
                }
            }
            r = tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)) => match r {
                Err(_) => break if framer.in_frame(&buf) { "slow frame" } else { "idle" },
                Ok(Ok(0)) => break "eof",
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "hj212: read error");
                    break "error";
                }
                Ok(Ok(n)) => {
                    m.bytes_received.inc_by(n as u64);
                    let mut step = Step::Go;
                    while let Some(ev) = framer.next_event(&mut buf) {
                        match ev {
                            FrameEvent::Garbage(n) => {
                                m.garbage_bytes.inc_by(n as u64);
                            }
                            FrameEvent::Oversized => {
                                m.oversized_frames.inc();
                                shared.count(None, "oversized");
                                tracing::warn!(%peer, max = shared.opts.max_frame_len,
                                    "hj212: frame longer than max_frame_len discarded");
                                step = conn.rejected_one();
                            }
                            FrameEvent::Frame(f) => {
                                step = conn.on_frame(f).await;
                            }
                        }
                        if let Step::Close(_) = step {
                            break;
                        }
                    }
                    if let Step::Close(why) = step {
                        break why;
                    }
                }
            }
        }
    };
    // Parts that will never be completed on this connection: dead-letter them now.
    let _ = conn.expire_splits(Duration::ZERO, true).await;
    drop(conn);
    m.connections_closed
        .get_or_create(&CloseLabels {
            reason: close_reason,
        })
        .inc();
    tracing::debug!(%peer, reason = close_reason, "hj212: logger connection closing");
    let _ = writer.await;
    m.connections_open.dec();
}

/// Writes responses in order; a not-stored outcome stops the connection.
async fn writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Reply>,
    shared: Arc<Shared>,
    (stop, why): (CancellationToken, Arc<OnceLock<&'static str>>),
    idle: Duration,
) {
    while let Some(reply) = rx.recv().await {
        let bytes = match reply {
            Reply::Now(b) => b,
            Reply::AfterStore { waiter, bytes, mn } => match waiter.await {
                Ok(_) => {
                    shared
                        .metrics
                        .responses_sent
                        .get_or_create(&MnLabels { mn })
                        .inc();
                    bytes
                }
                Err(_) => {
                    tracing::warn!(mn = %mn,
                        "hj212: upload not stored; no response, closing so the logger resends");
                    let _ = why.set("not stored");
                    stop.cancel();
                    break;
                }
            },
        };
        match tokio::time::timeout(idle, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                let _ = why.set("error");
                stop.cancel();
                break;
            }
            Err(_) => {
                let _ = why.set("write timeout");
                stop.cancel();
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

impl Conn {
    fn ctx<'a>(&'a self, now: chrono::DateTime<Utc>) -> DecodeContext<'a> {
        DecodeContext {
            registry: Some(&self.shared.registry),
            now,
            vendor: None,
            hj212: &self.shared.opts,
        }
    }

    async fn send(&self, payload: Payload, ack: Option<AckHandle>) -> bool {
        let env = Envelope {
            origin: self.origin.clone(),
            format: Format::Hj212,
            vendor: None,
            payload,
            received: Utc::now(),
            ack,
        };
        self.shared.tx.send(env).await.is_ok()
    }

    /// A frame of an authenticated station that could not be used: dead-lettered under its
    /// station, always (its readings are the evidence an operator needs).
    async fn reject(&self, e: &Hj212Error, mn: Option<&str>, bytes: Bytes) -> Step {
        self.shared.count(mn, e.reason());
        tracing::info!(peer = %self.peer, reason = e.reason(), error = %e, "hj212: frame rejected");
        let station = e
            .station()
            .map(str::to_string)
            .or_else(|| mn.map(str::to_string));
        let sent = self
            .send(
                Payload::Rejected {
                    reason: e.reason(),
                    detail: e.to_string(),
                    station,
                    bytes: redacted(&bytes),
                },
                None,
            )
            .await;
        if sent {
            Step::Go
        } else {
            Step::Close("pipeline closed")
        }
    }

    /// One more unauthenticated rejected frame in a row; at `max_rejected_frames` the
    /// connection closes and its address backs off.
    fn rejected_one(&mut self) -> Step {
        self.rejected_in_a_row += 1;
        let max = self.shared.opts.max_rejected_frames.max(1);
        if self.rejected_in_a_row < max {
            return Step::Go;
        }
        self.shared.back_off(self.ip);
        let auth_failures = lock(&self.shared.peers)
            .auth_failures
            .get(&self.ip)
            .copied()
            .unwrap_or(0);
        tracing::warn!(peer = %self.peer, rejected = self.rejected_in_a_row, auth_failures,
            backoff_s = self.shared.opts.reject_backoff_s,
            "hj212: too many rejected frames in a row: closing, address refused for a while");
        Step::Close("rejected frames")
    }

    /// A frame that did not authenticate: counted (per MN and per address for auth failures),
    /// dead-lettered without a station within the rate limit, counted towards the backoff.
    async fn reject_unauthenticated(
        &mut self,
        e: &Hj212Error,
        mn: Option<&str>,
        bytes: Bytes,
    ) -> Step {
        let reason = e.reason();
        self.shared.count(mn, reason);
        let mn_shown = crate::text::excerpt(mn.unwrap_or("?").as_bytes());
        if hj212::is_auth_failure(e) {
            self.shared
                .metrics
                .auth_failures
                .get_or_create(&MnLabels {
                    mn: self.shared.mn_label(mn),
                })
                .inc();
            let from_address = self.shared.note_auth_failure(self.ip);
            tracing::warn!(peer = %self.peer, mn = %mn_shown, reason, from_address,
                "hj212: authentication failure");
        } else {
            tracing::info!(peer = %self.peer, mn = %mn_shown, reason, error = %e,
                "hj212: frame rejected (not authenticated)");
        }
        if lock(&self.shared.bucket).take() {
            let sent = self
                .send(
                    Payload::Rejected {
                        reason,
                        detail: e.to_string(),
                        station: None,
                        bytes: redacted(&bytes),
                    },
                    None,
                )
                .await;
            if !sent {
                return Step::Close("pipeline closed");
            }
        } else {
            self.shared
                .metrics
                .deadletter_suppressed
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        self.rejected_one()
    }

    /// Handle one candidate frame.
    async fn on_frame(&mut self, raw: Bytes) -> Step {
        let opts = &self.shared.opts;
        let checked = match hj212::check(&raw, opts.accept_bad_length) {
            Ok(c) => c,
            Err(e) => {
                let mn = hj212::frame::mn_hint(&raw);
                return self
                    .reject_unauthenticated(&e, mn.as_deref(), raw.clone())
                    .await;
            }
        };
        let seg = match hj212::parse_segment(checked.data) {
            Ok(s) => s,
            Err(e) => {
                let mn = hj212::frame::mn_hint(&raw);
                return self
                    .reject_unauthenticated(&e, mn.as_deref(), raw.clone())
                    .await;
            }
        };
        if !checked.length_ok {
            hj212::note_bad_length(&checked);
            self.shared
                .metrics
                .bad_length_accepted
                .get_or_create(&MnLabels {
                    mn: self.shared.mn_label(seg.mn),
                })
                .inc();
        }
        let registry = self.shared.registry.clone();
        let station = match hj212::authenticate_with(&seg, Some(&registry), PwPolicy::Required) {
            Ok(Some(st)) => st.clone(),
            // Not reached with a registry; treat like an unknown MN rather than panic.
            Ok(None) => {
                let e = Hj212Error::UnknownStation {
                    mn: crate::text::truncate(seg.mn.unwrap_or(""), 64).into_owned(),
                };
                return self.reject_unauthenticated(&e, seg.mn, raw.clone()).await;
            }
            Err(e) => return self.reject_unauthenticated(&e, seg.mn, raw.clone()).await,
        };
        // A complete valid frame: the idle timer and the rejection count start again.
        self.last_valid = Instant::now();
        self.rejected_in_a_row = 0;
        let now = Utc::now();
        self.note_drift(&seg, &station, now);
        let cn = seg.cn.unwrap_or("");
        if cn == "1013" {
            self.shared.count(seg.mn, "ok");
            if self.shared.opts.time_calibration {
                let pol_id = hj212::frame::cp_fields(seg.cp)
                    .find(|(k, _)| *k == "PolId")
                    .and_then(|(_, v)| v);
                let reply = encode::set_time(
                    seg.st.unwrap_or("91"),
                    seg.pw.unwrap_or(""),
                    seg.mn.unwrap_or(""),
                    seg.flag.unwrap_or(4),
                    pol_id,
                    now,
                    station.timezone,
                );
                self.shared
                    .metrics
                    .time_calibrations
                    .get_or_create(&MnLabels {
                        mn: self.shared.mn_label(seg.mn),
                    })
                    .inc();
                let _ = self.replies.send(Reply::Now(reply)).await;
            }
            return Step::Go;
        }
        if !cn.starts_with('2') {
            // Responses, heartbeats, notifications: nothing to store, nothing to answer.
            self.shared.count(seg.mn, "ignored");
            return Step::Go;
        }
        if seg.is_split() {
            return self.on_split_part(&seg, station, raw.clone()).await;
        }
        let readings =
            match hj212::readings_from_segment(&seg, &station.id, station.timezone, &self.ctx(now))
            {
                Ok(r) => r,
                Err(e) => return self.reject(&e, seg.mn, raw.clone()).await,
            };
        self.shared.count(seg.mn, "ok");
        self.forward(readings, &seg, seg.wants_ack()).await
    }

    /// [`Self::forward_inner`] as a [`Step`].
    async fn forward(
        &self,
        readings: Vec<crate::model::Reading>,
        seg: &Segment<'_>,
        wants_ack: bool,
    ) -> Step {
        if self.forward_inner(readings, seg, wants_ack).await {
            Step::Go
        } else {
            Step::Close("pipeline closed")
        }
    }

    /// Send readings to the pipeline and, when asked for, queue the 9014 response. False when
    /// the pipeline is gone.
    async fn forward_inner(
        &self,
        readings: Vec<crate::model::Reading>,
        seg: &Segment<'_>,
        wants_ack: bool,
    ) -> bool {
        if !wants_ack {
            if readings.is_empty() {
                return true;
            }
            return self.send(Payload::Readings(readings), None).await;
        }
        let (handle, waiter) = AckHandle::new();
        let reply = encode::data_response(
            seg.qn,
            seg.pw.unwrap_or(""),
            seg.mn.unwrap_or(""),
            seg.flag.unwrap_or(4),
        );
        // Queue the response first (bounded: a logger that stops reading stalls only itself).
        if self
            .replies
            .send(Reply::AfterStore {
                waiter,
                bytes: reply,
                mn: self.shared.mn_label(seg.mn),
            })
            .await
            .is_err()
        {
            return true; // writer gone (connection closing): the handle drops, nothing is acked
        }
        self.send(Payload::Readings(readings), Some(handle)).await
    }

    async fn on_split_part(
        &mut self,
        seg: &Segment<'_>,
        station: Arc<Station>,
        raw: Bytes,
    ) -> Step {
        let mn = seg.mn.unwrap_or("").to_string();
        let (pnum, pno) = match (seg.pnum, seg.pno) {
            (Some(n), Some(i)) if n >= 1 && i >= 1 && i <= n && n <= MAX_SPLIT_PARTS => (n, i),
            _ => {
                let e = Hj212Error::Malformed {
                    what: "split packet needs 1 <= PNO <= PNUM <= 64",
                    snippet: snippet(&raw),
                    station: Some(station.id.clone()),
                };
                return self.reject(&e, Some(&mn), raw).await;
            }
        };
        let key = (
            mn.clone(),
            seg.cn.unwrap_or("").to_string(),
            seg.qn.unwrap_or("").to_string(),
        );
        if !self.splits.contains_key(&key) && self.splits.len() >= MAX_SPLIT_SETS {
            let e = Hj212Error::Malformed {
                what: "too many split uploads in progress on this connection",
                snippet: snippet(&raw),
                station: Some(station.id.clone()),
            };
            return self.reject(&e, Some(&mn), raw).await;
        }
        self.shared.count(seg.mn, "ok");
        let set = self.splits.entry(key.clone()).or_insert_with(|| SplitSet {
            first_seen: Instant::now(),
            pnum,
            parts: BTreeMap::new(),
            qn: seg.qn.map(str::to_string),
            st: seg.st.map(str::to_string),
            cn: seg.cn.unwrap_or("").to_string(),
            pw: seg.pw.map(str::to_string),
            mn: mn.clone(),
            flag: seg.flag.unwrap_or(6),
            wants_ack: false,
            station,
        });
        set.wants_ack |= seg.wants_ack();
        set.parts.insert(pno, (seg.cp.to_string(), raw));
        if set.parts.len() < set.pnum as usize {
            return Step::Go;
        }
        let Some(set) = self.splits.remove(&key) else {
            return Step::Go;
        };
        let cp = set
            .parts
            .values()
            .map(|(cp, _)| cp.as_str())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(";");
        let whole = Segment {
            qn: set.qn.as_deref(),
            st: set.st.as_deref(),
            cn: Some(&set.cn),
            pw: set.pw.as_deref(),
            mn: Some(&set.mn),
            flag: Some(set.flag),
            pnum: None,
            pno: None,
            cp: &cp,
        };
        let now = Utc::now();
        match hj212::readings_from_segment(
            &whole,
            &set.station.id,
            set.station.timezone,
            &self.ctx(now),
        ) {
            Ok(readings) => self.forward(readings, &whole, set.wants_ack).await,
            Err(e) => {
                let bytes = concat_parts(&set);
                self.reject(&e, Some(&set.mn), bytes).await
            }
        }
    }

    /// Dead-letter split uploads older than `timeout` (all of them when `all`).
    async fn expire_splits(&mut self, timeout: Duration, all: bool) -> bool {
        let now = Instant::now();
        let expired: Vec<_> = self
            .splits
            .iter()
            .filter(|(_, s)| all || s.first_seen + timeout <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            let Some(set) = self.splits.remove(&k) else {
                continue;
            };
            self.shared.count(Some(&set.mn), "incomplete split");
            tracing::warn!(peer = %self.peer, mn = %set.mn, got = set.parts.len(), of = set.pnum,
                "hj212: split upload incomplete, dead-lettering the parts received");
            let ok = self
                .send(
                    Payload::Rejected {
                        reason: "incomplete split",
                        detail: format!(
                            "split upload QN={} CN={} from MN {}: {} of {} parts arrived",
                            set.qn.as_deref().unwrap_or("-"),
                            set.cn,
                            set.mn,
                            set.parts.len(),
                            set.pnum
                        ),
                        station: Some(set.station.id.clone()),
                        bytes: redacted(&concat_parts(&set)),
                    },
                    None,
                )
                .await;
            if !ok {
                return false;
            }
        }
        true
    }

    fn note_drift(&mut self, seg: &Segment<'_>, station: &Station, now: chrono::DateTime<Utc>) {
        let Some(qn) = seg.qn else { return };
        let Some(t) =
            hj212::parse_local_time(qn).and_then(|t| hj212::local_to_utc(t, station.timezone))
        else {
            return;
        };
        let drift = (t - now).num_milliseconds() as f64 / 1000.0;
        let mn = seg.mn.unwrap_or("");
        self.shared
            .metrics
            .clock_drift_seconds
            .get_or_create(&MnLabels {
                mn: self.shared.mn_label(Some(mn)),
            })
            .set(drift);
        if drift.abs() > DRIFT_WARN_S && self.drift_warned.insert(mn.to_string()) {
            tracing::warn!(station = %station.id, mn, drift_s = drift,
                "hj212: device clock drift (QN vs server time)");
        } else {
            tracing::debug!(station = %station.id, mn, drift_s = drift, "hj212: device clock drift");
        }
    }
}

/// `bytes` with HJ 212 `PW=` values redacted (for dead-letter records).
fn redacted(bytes: &Bytes) -> Bytes {
    match hj212::redact_frame(bytes) {
        std::borrow::Cow::Borrowed(_) => bytes.clone(),
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    }
}

fn concat_parts(set: &SplitSet) -> Bytes {
    let mut b = BytesMut::new();
    for (_, raw) in set.parts.values() {
        b.extend_from_slice(raw);
    }
    b.freeze()
}
