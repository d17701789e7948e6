//! MQTT source (rumqttc): persistent QoS 1 session, manual acks sent in arrival order, only
//! after the pipeline reports a payload durably stored or dead-lettered.
//!
//! Owns: the rumqttc client and event loop, subscriptions, reconnect backoff, and the ack
//! queue. Never parses payloads.
//!
//! Two tasks:
//! - the **poll task** owns the [`EventLoop`] and does nothing but poll it (rumqttc needs it
//!   polled continuously for keep-alive and to send our PUBACKs), forwarding each PUBLISH with
//!   the number of the connection it arrived on. On CONNACK it logs `session_present` and
//!   subscribes again (harmless when the session kept the subscriptions; needed when it did not).
//!   On errors it waits with capped exponential backoff and jitter, then polls again (= reconnect).
//! - the **ack task** turns each PUBLISH into an [`Envelope`] for the pipeline, keeps the
//!   [`AckWaiter`]s in arrival order, and sends a PUBACK only when the waiter at the head of the
//!   queue has resolved (MQTT 3.1.1 §4.6: acks in the order the messages arrived — even a
//!   dead-lettered message's ack waits for the ones before it).
//!
//! A PUBACK is sent only on the connection its message arrived on: after a reconnect the
//! broker redelivers every unacknowledged message of the persistent session, so acks for the
//! old connection are withheld (counted in `envmon_acks_stale_total`); the redelivered copies
//! are stored again (the same point, so no duplicate) and acked then. The ack task queues a
//! PUBACK into rumqttc's request channel only while holding the connection lock and only if
//! the message's connection is the current, live one; the poll task takes the same lock when
//! a connection ends and purges the request channel of PUBACKs then ([`EventLoop::clean`]).
//! So no PUBACK queued for connection N can be written on connection N+1, even one released
//! while the connection was down. If the pipeline drops a waiter (not stored: shutdown
//! deadline), no later message of that connection is acked either.
//!
//! The queue between the two tasks is bounded ([`INTAKE_CAPACITY`], the number of MQTT packet
//! ids) and the poll task never waits on it: it uses `try_send`. A conforming broker cannot
//! have more unacknowledged QoS 1/2 messages outstanding to one client than there are packet
//! ids, so the queue is only full if messages of old connections linger in it; then the poll
//! task drops the connection (the message is not acked, the broker redelivers it) rather than
//! block, so keep-alive is never starved. QoS 0 subscriptions, which nothing bounds, are
//! refused by the settings; the one QoS 0 subscription is envmon's own read of the broker's
//! `$SYS` drop counter, handled in the poll task and never queued or stored. A message its
//! publisher sent at QoS 0 still arrives at QoS 0; with the queue full it is dropped and
//! counted (the broker would not send it again, so reconnecting would not help).
//!
//! The transport accepts any packet size the protocol allows ([`MQTT_MAX_PACKET`]): a message
//! above `mqtt.max_message_bytes` is not decoded but handed to the pipeline as
//! [`Payload::Rejected`] (`oversized`, truncated, with its real size), so it is dead-lettered
//! and acked like any poison message instead of breaking the connection in a loop.
//!
//! Reconnect backoff starts again from `mqtt.reconnect_min_ms` only after a connection stayed
//! up for one keep-alive interval ([`Reconnect`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{AckHandle, AckWaiter, Envelope, Origin, Payload};
use crate::backoff::Backoff;
use crate::config::{MqttSettings, Subscription, MQTT_MAX_PACKET};
use crate::decode::Format;
use crate::telemetry::Metrics;

/// Mosquitto's count of messages it dropped because a client's inflight or queue limit was
/// reached (mosquitto(8), "$SYS topics"; published every `sys_interval`, retained).
pub const SYS_DROPPED_TOPIC: &str = "$SYS/broker/publish/messages/dropped";

/// Capacity of the queue from the poll task to the ack task: the number of MQTT packet ids
/// (16 bits, non-zero: MQTT 3.1.1 §2.3.1), so the most unacknowledged QoS 1/2 messages a
/// broker can have outstanding to one client. Allocated as it fills (tokio's blocks of 32).
pub const INTAKE_CAPACITY: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum MqttSourceError {
    #[error("mqtt.ca_file: cannot read {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
}

/// Build the rumqttc options from settings.
pub fn options(s: &MqttSettings) -> Result<MqttOptions, MqttSourceError> {
    let mut o = MqttOptions::new(&s.client_id, &s.host, s.port);
    o.set_keep_alive(keep_alive(s));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // Any packet the broker may send: a limit below the broker's would make rumqttc drop the
    // connection on a big message and get the same message first again after reconnecting.
    // Payloads above `mqtt.max_message_bytes` are dead-lettered by the ack task instead.
    // Outgoing packets are only SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT.
    o.set_max_packet_size(MQTT_MAX_PACKET, 64 * 1024);
    if let Some(u) = &s.username {
        o.set_credentials(
            u,
            s.password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
        );
    }
    if s.tls {
        let transport = match &s.ca_file {
            None => Transport::tls_with_default_config(),
            Some(path) => {
                let ca = std::fs::read(path).map_err(|source| MqttSourceError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?;
                Transport::tls_with_config(TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                })
            }
        };
        o.set_transport(transport);
    }
    Ok(o)
}

/// The keep-alive interval used (at least 5 s).
fn keep_alive(s: &MqttSettings) -> Duration {
    Duration::from_secs(s.keep_alive_s.max(5))
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// The filter actually subscribed: `$share/<group>/<topic>` when a shared group is configured.
pub fn effective_filter(s: &MqttSettings, sub: &Subscription) -> String {
    match &s.shared_group {
        Some(g) => format!("$share/{g}/{}", sub.topic),
        None => sub.topic.clone(),
    }
}

/// MQTT topic matching (MQTT 3.1.1 §4.7) of a concrete topic against a filter, by rumqttc's
/// matcher. rumqttc refuses every topic that starts with `$`; §4.7.2 only says a filter that
/// starts with a wildcard must not match one, so `$SYS/#` (written out) still matches
/// `$SYS/broker/…` here, and `#` or `+/broker` do not.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    match (topic.strip_prefix('$'), filter.strip_prefix('$')) {
        (Some(t), Some(f)) => rumqttc::matches(t, f),
        (Some(_), None) => false,
        (None, _) => rumqttc::matches(topic, filter),
    }
}

/// Which subscription a topic belongs to (first match in config order).
fn route<'a>(subs: &'a [Subscription], topic: &str) -> Option<&'a Subscription> {
    subs.iter().find(|s| topic_matches(&s.topic, topic))
}

/// Connection state shared with the HTTP readiness probe (defined in `telemetry`).
pub use crate::telemetry::ConnState;

/// The connection lock: the current connection and whether it is up. The ack task queues a
/// PUBACK only while holding it and only for a message of the live connection; the poll task
/// holds it while it ends a connection and purges queued PUBACKs.
type ConnLock = Arc<Mutex<ConnState>>;

fn lock(c: &ConnLock) -> std::sync::MutexGuard<'_, ConnState> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reconnect delay rule: capped exponential backoff that starts again from the minimum only
/// after a connection stayed up for `stable_after`. A connect that is accepted and then fails at
/// once (a packet the client refuses, an ACL that closes the connection, a broker that accepts
/// and then kicks a duplicate client id) would otherwise reset the backoff on every CONNACK and
/// reconnect as fast as the broker answers. `stable_after` is one keep-alive interval: by then
/// rumqttc has sent a PINGREQ (or traffic flowed) and the broker kept the connection, which is
/// the protocol's own notion of a live connection, and it needs no new setting.
#[derive(Debug)]
pub struct Reconnect {
    backoff: Backoff,
    stable_after: Duration,
    up_since: Option<Instant>,
}

impl Reconnect {
    pub fn new(backoff: Backoff, stable_after: Duration) -> Reconnect {
        Reconnect {
            backoff,
            stable_after,
            up_since: None,
        }
    }

    /// A connection was established (CONNACK) at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// The connection (or the attempt) failed at `now`: the delay before the next attempt.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if let Some(t) = self.up_since.take() {
            if now.saturating_duration_since(t) >= self.stable_after {
                self.backoff.reset();
            }
        }
        self.backoff.step()
    }

    /// The un-jittered delay the next failure is based on (before the reset rule).
    pub fn peek(&self) -> Duration {
        self.backoff.peek()
    }
}

/// Handles of a running MQTT source.
pub struct MqttSource {
    /// Connection state (for `/readyz`).
    pub state: watch::Receiver<ConnState>,
    poll_task: tokio::task::JoinHandle<()>,
    ack_task: tokio::task::JoinHandle<()>,
    poll_stop: CancellationToken,
    client: AsyncClient,
}

/// What the ack task needs from the settings.
#[derive(Debug, Clone)]
struct AckSettings {
    subs: Arc<Vec<Subscription>>,
    max_message_bytes: usize,
    oversized_keep_bytes: usize,
    broker_queue_warn: Duration,
    /// Give up queueing one PUBACK after this long with the request channel full (the event
    /// loop is stuck; the connection will time out): two keep-alive intervals.
    ack_queue_deadline: Duration,
}

impl MqttSource {
    /// Start the poll and ack tasks. `stop` ends intake (no new messages go to the pipeline);
    /// already forwarded messages are still acked as the pipeline completes them. Then call
    /// [`MqttSource::shutdown`].
    pub fn start(
        settings: &MqttSettings,
        out: mpsc::Sender<Envelope>,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Result<MqttSource, MqttSourceError> {
        let opts = options(settings)?;
        // Room for every PUBACK of a full inflight window plus subscribe/disconnect requests,
        // so the ack task never waits on a full request channel for long.
        // Without a hint, room for Mosquitto's largest common setting (1000, deploy/README.md);
        // a fuller channel only makes the ack task wait, it loses nothing.
        let cap = settings.inflight_window.unwrap_or(1000).max(16) * 2 + 16;
        let (client, eventloop) = AsyncClient::new(opts, cap);
        let (state_tx, state_rx) = watch::channel(ConnState::default());
        let conn: ConnLock = Arc::new(Mutex::new(ConnState::default()));
        let (in_tx, in_rx) = mpsc::channel(INTAKE_CAPACITY);
        let poll_stop = CancellationToken::new();
        let filters: Vec<SubscribeFilter> = settings
            .subscriptions
            .iter()
            .map(|s| SubscribeFilter::new(effective_filter(settings, s), qos(s.qos)))
            .collect();
        let ka = keep_alive(settings);
        let poll_task = tokio::spawn(poll_loop(
            PollCtx {
                client: client.clone(),
                filters,
                sys: settings.broker_sys_topics,
                sub_order: VecDeque::new(),
                sub_pkids: Vec::new(),
                in_tx,
                state: state_tx,
                conn: conn.clone(),
                metrics: metrics.clone(),
                reconnect: Reconnect::new(
                    Backoff::new(
                        Duration::from_millis(settings.reconnect_min_ms),
                        Duration::from_millis(settings.reconnect_max_ms),
                    ),
                    ka,
                ),
                dropped_seen: None,
            },
            eventloop,
            poll_stop.clone(),
        ));
        let ack_task = tokio::spawn(ack_loop(
            client.clone(),
            AckSettings {
                subs: Arc::new(settings.subscriptions.clone()),
                max_message_bytes: settings.max_message_bytes,
                oversized_keep_bytes: settings.oversized_keep_bytes,
                broker_queue_warn: Duration::from_secs(settings.broker_queue_warn_s),
                ack_queue_deadline: ka * 2,
            },
            in_rx,
            out,
            conn,
            metrics,
            stop,
        ));
        Ok(MqttSource {
            state: state_rx,
            poll_task,
            ack_task,
            poll_stop,
            client,
        })
    }

    /// Wait until every forwarded message is acked (or known not to be), then disconnect.
    /// Call after the pipeline has finished (so every waiter has resolved).
    /// Resolves when the poll task or the ack task has ended (before shutdown: a failure, for
    /// `app`'s supervisor). Looks every 100 ms without taking the tasks' results, so
    /// [`MqttSource::shutdown`] can still await them.
    pub async fn ended(&mut self) -> &'static str {
        loop {
            if self.poll_task.is_finished() {
                return "the MQTT poll task ended";
            }
            if self.ack_task.is_finished() {
                return "the MQTT ack task ended";
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(self, deadline: Duration) {
        if tokio::time::timeout(deadline, self.ack_task).await.is_err() {
            tracing::warn!("mqtt: ack task did not finish before the deadline");
        }
        // Let the event loop send the last PUBACKs, then DISCONNECT (keeps the session).
        let _ = self.client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), self.poll_task)
            .await
            .is_err()
        {
            self.poll_stop.cancel();
        }
    }
}

/// The poll task's state besides the event loop.
struct PollCtx {
    client: AsyncClient,
    /// The data subscriptions (one SUBSCRIBE).
    filters: Vec<SubscribeFilter>,
    /// Subscribe to the broker's drop counter (`mqtt.broker_sys_topics`), in a SUBSCRIBE of its
    /// own after the data one; turned off for the rest of the process if a broker closes the
    /// connection before answering it (rumqttd, for one, disconnects a client that subscribes
    /// to a `$` topic).
    sys: bool,
    /// SUBSCRIBEs queued on this connection and not yet written, in order.
    sub_order: VecDeque<SubKind>,
    /// SUBSCRIBEs written on this connection and not yet answered, by packet id.
    sub_pkids: Vec<(u16, SubKind)>,
    in_tx: mpsc::Sender<(u64, Publish)>,
    state: watch::Sender<ConnState>,
    conn: ConnLock,
    metrics: Metrics,
    reconnect: Reconnect,
    /// The broker's drop counter as last read.
    dropped_seen: Option<i64>,
}

/// Which of envmon's SUBSCRIBE packets a SUBACK answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubKind {
    Data,
    Sys,
}

impl PollCtx {
    /// The current connection is over (error, or dropped by us): under the connection lock,
    /// mark it down and purge every PUBACK still queued for it, so none is written on the next
    /// connection. rumqttc's own clean (on an error) ran before this; a PUBACK the ack task
    /// queued in between is removed here.
    fn end_connection(&mut self, eventloop: &mut EventLoop) -> ConnState {
        let was = {
            let mut c = lock(&self.conn);
            let was = *c;
            c.connected = false;
            eventloop.clean();
            was
        };
        // Subscriptions are made again at the next CONNACK; a SUBSCRIBE left over from this
        // connection would only confuse which SUBACK answers what.
        eventloop
            .pending
            .retain(|r| !matches!(r, rumqttc::Request::Subscribe(_)));
        self.sub_order.clear();
        if self.sub_pkids.iter().any(|(_, k)| *k == SubKind::Sys) {
            self.sys = false;
            tracing::warn!(
                "mqtt: the broker closed the connection before answering the subscription to \
                 {SYS_DROPPED_TOPIC}; not subscribing to it again (set \
                 mqtt.broker_sys_topics = false for this broker)"
            );
        }
        self.sub_pkids.clear();
        self.metrics.mqtt_connected.set(0);
        self.metrics.mqtt_subscribed.set(0);
        self.state.send_replace(ConnState {
            connected: false,
            epoch: was.epoch,
        });
        was
    }

    fn on_connack(&mut self, session_present: bool) {
        let epoch = {
            let mut c = lock(&self.conn);
            c.epoch += 1;
            c.connected = true;
            c.epoch
        };
        self.reconnect.connected(Instant::now());
        self.metrics.mqtt_connects.inc();
        self.metrics.mqtt_connected.set(1);
        self.state.send_replace(ConnState {
            connected: true,
            epoch,
        });
        tracing::info!(session_present, connection = epoch, "mqtt connected");
        self.sub_order.clear();
        self.sub_pkids.clear();
        match self.client.try_subscribe_many(self.filters.clone()) {
            Ok(()) => self.sub_order.push_back(SubKind::Data),
            Err(e) => tracing::error!(error = %e, "mqtt: cannot queue SUBSCRIBE"),
        }
        if self.sys {
            // Telemetry, not data: QoS 0, never shared (every instance reads the counter).
            match self
                .client
                .try_subscribe(SYS_DROPPED_TOPIC, QoS::AtMostOnce)
            {
                Ok(()) => self.sub_order.push_back(SubKind::Sys),
                Err(e) => tracing::warn!(error = %e, "mqtt: cannot queue the $SYS SUBSCRIBE"),
            }
        }
    }

    /// A SUBSCRIBE was written with packet id `pkid` (they are written in the order queued).
    fn on_subscribe_sent(&mut self, pkid: u16) {
        if let Some(kind) = self.sub_order.pop_front() {
            self.sub_pkids.push((pkid, kind));
        }
    }

    fn on_suback(&mut self, s: &rumqttc::SubAck) {
        use rumqttc::SubscribeReasonCode;
        let kind = match self.sub_pkids.iter().position(|(p, _)| *p == s.pkid) {
            Some(i) => self.sub_pkids.swap_remove(i).1,
            None => SubKind::Data,
        };
        if kind == SubKind::Sys {
            match s.return_codes.first() {
                Some(SubscribeReasonCode::Success(_)) => {
                    tracing::debug!(topic = SYS_DROPPED_TOPIC, "mqtt: subscribed")
                }
                _ => tracing::info!(
                    topic = SYS_DROPPED_TOPIC,
                    "mqtt: the broker refused the $SYS subscription; its drop counter is not read"
                ),
            }
            return;
        }
        if s.return_codes.len() == self.filters.len()
            && s.return_codes
                .iter()
                .all(|c| !matches!(c, SubscribeReasonCode::Failure))
        {
            self.metrics.mqtt_subscribed.set(1);
        }
        for (code, f) in s.return_codes.iter().zip(self.filters.iter()) {
            match code {
                SubscribeReasonCode::Failure => {
                    tracing::error!(filter = %f.path, "mqtt: broker refused the subscription")
                }
                SubscribeReasonCode::Success(q) => {
                    tracing::debug!(filter = %f.path, qos = ?q, "mqtt: subscribed")
                }
            }
        }
    }

    /// The broker's drop counter arrived: expose it, warn when it rose.
    fn on_sys_dropped(&mut self, payload: &[u8]) {
        let Some(n) = std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
        else {
            tracing::debug!(
                payload = %crate::text::excerpt(payload),
                "mqtt: unreadable $SYS drop counter"
            );
            return;
        };
        self.metrics.broker_dropped_messages.set(n);
        match self.dropped_seen {
            Some(before) if n > before => tracing::warn!(
                dropped = n - before,
                total = n,
                "mqtt: the broker dropped {} more message(s) (its per-client queue limit, \
                 max_queued_messages, or inflight limit was reached): readings envmon never \
                 received",
                n - before
            ),
            None if n > 0 => tracing::warn!(
                total = n,
                "mqtt: the broker reports {n} message(s) dropped since it started (all clients; \
                 queue or inflight limits)"
            ),
            _ => {}
        }
        self.dropped_seen = Some(n);
    }
}

async fn poll_loop(mut ctx: PollCtx, mut eventloop: EventLoop, stop: CancellationToken) {
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = stop.cancelled() => break,
        };
        let failure: Option<String> = match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic == SYS_DROPPED_TOPIC {
                    // Telemetry (QoS 0): read here, never queued, decoded or stored. Also when
                    // `broker_sys_topics` is off now: a persistent session keeps the
                    // subscription of an earlier run.
                    ctx.on_sys_dropped(&p.payload);
                    None
                } else {
                    let epoch = lock(&ctx.conn).epoch;
                    match ctx.in_tx.try_send((epoch, p)) {
                        Ok(()) => None,
                        // The ack task is gone: shutting down; the message stays unacked.
                        Err(mpsc::error::TrySendError::Closed(_)) => None,
                        Err(mpsc::error::TrySendError::Full(p)) if p.1.qos == QoS::AtMostOnce => {
                            // Published at QoS 0, so delivered at QoS 0: the broker would not
                            // send it again, so reconnecting would not help. Dropped, counted.
                            ctx.metrics.mqtt_intake_overflows.inc();
                            tracing::warn!(
                                topic = %crate::text::excerpt(p.1.topic.as_bytes()),
                                "mqtt: a QoS 0 message was dropped: the intake queue is full \
                                 (the pipeline is blocked); stations should publish at QoS 1"
                            );
                            None
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            ctx.metrics.mqtt_intake_overflows.inc();
                            Some(format!(
                                "{INTAKE_CAPACITY} messages wait for the pipeline; dropping the \
                                 connection so the broker redelivers (never blocking keep-alive)"
                            ))
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                ctx.on_connack(ack.session_present);
                None
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                ctx.on_suback(&s);
                None
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid))) => {
                ctx.on_subscribe_sent(pkid);
                None
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                tracing::info!("mqtt: disconnect sent");
                // Poll once more so the packet is flushed, then stop.
                let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                break;
            }
            Ok(_) => None,
            Err(ConnectionError::RequestsDone) => break,
            Err(e) => {
                ctx.metrics.mqtt_connection_errors.inc();
                Some(e.to_string())
            }
        };
        if let Some(error) = failure {
            let was = ctx.end_connection(&mut eventloop);
            let delay = ctx.reconnect.failed(Instant::now());
            let retry_in_ms = delay.as_millis() as u64;
            if was.connected {
                tracing::warn!(%error, retry_in_ms, "mqtt connection lost; reconnecting");
            } else {
                tracing::warn!(%error, retry_in_ms, "mqtt connect failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => break,
            }
        }
    }
    ctx.end_connection(&mut eventloop);
}

enum Step {
    Nothing,
    IntakeClosed,
    /// The head waiter resolved: `true` = stored or dead-lettered, `false` = dropped.
    Resolved(bool),
    Incoming((u64, Publish)),
    Tick,
}

struct Pending {
    epoch: u64,
    publish: Publish,
    waiter: AckWaiter,
    since: Instant,
}

/// What became of one PUBACK.
#[derive(Debug, PartialEq, Eq)]
enum AckSent {
    /// In rumqttc's request channel, for the live connection it belongs to.
    Queued,
    /// Its connection is gone: withheld, the broker redelivers the message.
    Stale,
    /// The request channel stayed full past the deadline: withheld.
    GaveUp,
}

/// Queue the PUBACK of `p` only if its connection is the live one, checked under the
/// connection lock (see the module docs). Never blocks while holding the lock; waits 1 ms
/// between tries while rumqttc's request channel is full, at most `deadline`.
async fn queue_ack(
    conn: &ConnLock,
    client: &AsyncClient,
    p: &Pending,
    deadline: Duration,
) -> AckSent {
    let until = Instant::now() + deadline;
    loop {
        {
            let c = lock(conn);
            if !c.connected || c.epoch != p.epoch {
                return AckSent::Stale;
            }
            if client.try_ack(&p.publish).is_ok() {
                return AckSent::Queued;
            }
        }
        if Instant::now() >= until {
            return AckSent::GaveUp;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The payload handed to the pipeline: the raw bytes, or for a message above
/// `mqtt.max_message_bytes` a rejection carrying its first `oversized_keep_bytes` bytes.
fn payload_of(bytes: Bytes, topic: &str, s: &AckSettings) -> Payload {
    let size = bytes.len();
    if size <= s.max_message_bytes {
        return Payload::Raw(bytes);
    }
    let mut keep = s.oversized_keep_bytes.min(size);
    // Cut at a character boundary when the start is text, so the record stays readable.
    if let Err(e) = std::str::from_utf8(&bytes[..keep]) {
        if e.error_len().is_none() {
            keep = e.valid_up_to();
        }
    }
    Payload::Rejected {
        reason: "oversized",
        detail: format!(
            "message of {size} bytes on {topic} is larger than mqtt.max_message_bytes \
             ({max}); not decoded; the first {keep} bytes are kept",
            max = s.max_message_bytes,
            topic = crate::text::excerpt(topic.as_bytes()),
        ),
        station: None,
        // A copy: a slice would keep the whole message's buffer alive.
        bytes: Bytes::copy_from_slice(&bytes[..keep]),
    }
}

async fn ack_loop(
    client: AsyncClient,
    s: AckSettings,
    mut in_rx: mpsc::Receiver<(u64, Publish)>,
    out: mpsc::Sender<Envelope>,
    conn: ConnLock,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut forward: Option<Envelope> = None;
    let mut out = Some(out);
    // Epoch whose acks are suspended because a waiter was dropped (not stored).
    let mut halted_epoch: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warn: Option<Instant> = None;
    loop {
        let intake_open = out.is_some() && !stop.is_cancelled();
        if !intake_open {
            // Intake closed: hand back the sender so the pipeline can finish, and drop any
            // message not yet forwarded (unacked: the broker redelivers it).
            out = None;
            forward = None;
            if queue.is_empty() {
                break;
            }
        }
        let step = tokio::select! {
            biased;
            // First, so that a busy stream cannot starve the age gauge (ready once a second).
            _ = tick.tick() => Step::Tick,
            res = async { (&mut queue.front_mut().expect("non-empty").waiter).await }, if !queue.is_empty() => Step::Resolved(res.is_ok()),
            permit = async { out.as_ref().expect("checked").reserve().await }, if forward.is_some() && intake_open => {
                match permit {
                    Ok(permit) => {
                        permit.send(forward.take().expect("checked"));
                        Step::Nothing
                    }
                    Err(_) => Step::IntakeClosed,
                }
            }
            m = in_rx.recv(), if forward.is_none() && intake_open => match m {
                Some(m) => Step::Incoming(m),
                None => Step::IntakeClosed,
            },
            _ = stop.cancelled(), if intake_open => Step::Nothing,
        };
        match step {
            Step::Nothing => {}
            Step::IntakeClosed => out = None,
            Step::Tick => {
                let age = queue.front().map(|p| p.since.elapsed()).unwrap_or_default();
                metrics
                    .mqtt_oldest_pending_ack_seconds
                    .set(age.as_secs_f64());
                let due = last_warn.is_none_or(|t| t.elapsed() >= s.broker_queue_warn);
                if age > s.broker_queue_warn && due {
                    last_warn = Some(Instant::now());
                    tracing::warn!(
                        waited_s = age.as_secs(),
                        pending = queue.len(),
                        "mqtt: the oldest unacknowledged message has waited {} s (more than \
                         mqtt.broker_queue_warn_s = {}); the broker queues every newer message \
                         for this session and drops beyond its max_queued_messages",
                        age.as_secs(),
                        s.broker_queue_warn.as_secs()
                    );
                }
            }
            Step::Resolved(stored) => {
                let p = queue.pop_front().expect("non-empty");
                metrics.acks_pending.dec();
                if queue.is_empty() {
                    metrics.mqtt_oldest_pending_ack_seconds.set(0.0);
                }
                if !stored {
                    // Not stored: acking any later message of this connection would ack out
                    // of order, so none is; the broker redelivers them all.
                    halted_epoch = Some(p.epoch);
                    metrics.acks_stale.inc();
                } else if halted_epoch == Some(p.epoch) {
                    metrics.acks_stale.inc();
                } else {
                    match queue_ack(&conn, &client, &p, s.ack_queue_deadline).await {
                        AckSent::Queued => {
                            metrics.acks_sent.inc();
                        }
                        AckSent::Stale => {
                            metrics.acks_stale.inc();
                        }
                        AckSent::GaveUp => {
                            tracing::warn!(
                                "mqtt: cannot queue PUBACK (request channel full); withholding \
                                 the acks of this connection"
                            );
                            halted_epoch = Some(p.epoch);
                            metrics.acks_stale.inc();
                        }
                    }
                }
            }
            Step::Incoming((epoch, publish)) => {
                let topic = publish.topic.clone();
                let (format, vendor) = match route(&s.subs, &topic) {
                    Some(s) => (s.format.clone(), s.vendor.clone()),
                    // A message for a filter no longer configured (kept by the persistent
                    // session): decode it as envmon JSON; a failure dead-letters it.
                    None => (Format::Json, None),
                };
                let payload = payload_of(publish.payload.clone(), &topic, &s);
                let ack = if publish.qos == QoS::AtMostOnce {
                    None
                } else {
                    let (h, w) = AckHandle::new();
                    metrics.acks_pending.inc();
                    queue.push_back(Pending {
                        epoch,
                        // A PUBACK needs no payload; keeping it would hold the buffer until then.
                        publish: Publish {
                            payload: Bytes::new(),
                            ..publish
                        },
                        waiter: w,
                        since: Instant::now(),
                    });
                    Some(h)
                };
                forward = Some(Envelope {
                    origin: Origin::Mqtt(topic),
                    format,
                    vendor,
                    payload,
                    received: Utc::now(),
                    ack,
                });
            }
        }
    }
    metrics.mqtt_oldest_pending_ack_seconds.set(0.0);
    tracing::debug!("mqtt ack task done");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_resets_only_after_a_connection_lived_one_keep_alive() {
        let mut r = Reconnect::new(Backoff::new(MS(100), MS(10_000)), Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(r.peek(), MS(100));
        r.failed(t0); // connect refused
        assert_eq!(r.peek(), MS(200));
        // Accepted, then failed at once (the oversized-message loop): no reset.
        for (i, want) in [400, 800, 1600].into_iter().enumerate() {
            let at = t0 + MS(1000 * i as u64);
            r.connected(at);
            let d = r.failed(at + MS(10));
            assert!(d >= MS(want / 4) && d <= MS(want / 2), "{d:?}");
            assert_eq!(r.peek(), MS(want));
        }
        // Just under one keep-alive: still no reset.
        r.connected(t0 + MS(10_000));
        r.failed(t0 + MS(14_999));
        assert_eq!(r.peek(), MS(3200));
        // Up for a keep-alive interval: the next delay starts from the minimum again.
        r.connected(t0 + MS(20_000));
        let d = r.failed(t0 + MS(25_000));
        assert!(d <= MS(100), "{d:?}");
        assert_eq!(r.peek(), MS(200));
    }

    fn ack_settings(max: usize, keep: usize) -> AckSettings {
        AckSettings {
            subs: Arc::new(Vec::new()),
            max_message_bytes: max,
            oversized_keep_bytes: keep,
            broker_queue_warn: Duration::from_secs(60),
            ack_queue_deadline: Duration::from_secs(10),
        }
    }

    #[test]
    fn oversized_payloads_are_rejected_truncated_with_their_size() {
        let s = ack_settings(10, 4);
        assert!(matches!(
            payload_of(Bytes::from_static(b"0123456789"), "t", &s),
            Payload::Raw(b) if b.len() == 10
        ));
        match payload_of(Bytes::from_static(b"0123456789a"), "env/json/A001", &s) {
            Payload::Rejected {
                reason,
                detail,
                bytes,
                station,
            } => {
                assert_eq!(reason, "oversized");
                assert_eq!(&bytes[..], b"0123");
                assert!(station.is_none());
                assert!(detail.contains("11 bytes"), "{detail}");
                assert!(detail.contains("env/json/A001"), "{detail}");
                assert!(detail.contains("mqtt.max_message_bytes"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // Text is cut at a character boundary ("é" is two bytes).
        let s = ack_settings(2, 4);
        match payload_of(Bytes::from("abcé".as_bytes().to_vec()), "t", &s) {
            Payload::Rejected { bytes, .. } => assert_eq!(&bytes[..], b"abc"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn topic_matching() {
        assert!(topic_matches("env/json/+", "env/json/WJ-A01"));
        assert!(!topic_matches("env/json/+", "env/json/a/b"));
        assert!(topic_matches("env/#", "env/json/a/b"));
        assert!(topic_matches("env/#", "env"));
        assert!(!topic_matches("env/senml/+", "env/json/x"));
        assert!(!topic_matches("#", "$SYS/broker"));
        assert!(!topic_matches("+/broker", "$SYS/broker"));
        assert!(topic_matches("$SYS/#", "$SYS/broker/load"));
        assert!(topic_matches("$SYS/broker/+", "$SYS/broker/load"));
        assert!(!topic_matches("$SYS/#", "SYS/broker"));
        assert!(topic_matches("env/+/WJ-A01", "env/json/WJ-A01"));
    }
}
