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
//! A PUBACK is sent only for a message that arrived on the current connection: after a
//! reconnect the broker redelivers every unacknowledged message of the persistent session, so
//! acks for the old connection are withheld (counted in `envmon_acks_stale_total`); the
//! redelivered copies are stored again (the same point, so no duplicate) and acked then.
//! If the pipeline drops a waiter (not stored: shutdown deadline), no later message of that
//! connection is acked either.
//!
//! The queue between the two tasks is unbounded on purpose: its length is bounded by the
//! broker's inflight window (`max_inflight_messages`), since the broker sends no more QoS 1
//! messages until we ack; a bounded queue here could block the poll task and starve keep-alive.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{AckHandle, AckWaiter, Envelope, Origin, Payload};
use crate::backoff::Backoff;
use crate::config::{MqttSettings, Subscription};
use crate::decode::Format;
use crate::telemetry::Metrics;

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
    o.set_keep_alive(Duration::from_secs(s.keep_alive_s.max(5)));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // HJ 212 frames relayed over MQTT and JSON arrays can exceed rumqttc's 10 KiB default.
    o.set_max_packet_size(1024 * 1024, 64 * 1024);
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

/// Handles of a running MQTT source.
pub struct MqttSource {
    /// Connection state (for `/readyz`).
    pub state: watch::Receiver<ConnState>,
    poll_task: tokio::task::JoinHandle<()>,
    ack_task: tokio::task::JoinHandle<()>,
    poll_stop: CancellationToken,
    client: AsyncClient,
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
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let poll_stop = CancellationToken::new();
        let subs: Arc<Vec<Subscription>> = Arc::new(settings.subscriptions.clone());
        let filters: Vec<SubscribeFilter> = settings
            .subscriptions
            .iter()
            .map(|s| SubscribeFilter::new(effective_filter(settings, s), qos(s.qos)))
            .collect();
        let poll_task = tokio::spawn(poll_loop(
            eventloop,
            client.clone(),
            filters,
            in_tx,
            state_tx,
            metrics.clone(),
            Backoff::new(
                Duration::from_millis(settings.reconnect_min_ms),
                Duration::from_millis(settings.reconnect_max_ms),
            ),
            poll_stop.clone(),
        ));
        let ack_task = tokio::spawn(ack_loop(
            client.clone(),
            subs,
            in_rx,
            out,
            state_rx.clone(),
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

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    in_tx: mpsc::UnboundedSender<(u64, Publish)>,
    state: watch::Sender<ConnState>,
    metrics: Metrics,
    mut backoff: Backoff,
    stop: CancellationToken,
) {
    let mut epoch = 0u64;
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = stop.cancelled() => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // The ack task ends only after this task's sender is dropped or at shutdown;
                // a closed queue means we are shutting down: drop the message (not acked).
                let _ = in_tx.send((epoch, p));
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                epoch += 1;
                backoff.reset();
                metrics.mqtt_connects.inc();
                metrics.mqtt_connected.set(1);
                state.send_replace(ConnState {
                    connected: true,
                    epoch,
                });
                tracing::info!(
                    session_present = ack.session_present,
                    connection = epoch,
                    "mqtt connected"
                );
                if let Err(e) = client.try_subscribe_many(filters.clone()) {
                    tracing::error!(error = %e, "mqtt: cannot queue SUBSCRIBE");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                use rumqttc::SubscribeReasonCode;
                if s.return_codes
                    .iter()
                    .all(|c| !matches!(c, SubscribeReasonCode::Failure))
                {
                    metrics.mqtt_subscribed.set(1);
                }
                for (code, f) in s.return_codes.iter().zip(filters.iter()) {
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
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                tracing::info!("mqtt: disconnect sent");
                // Poll once more so the packet is flushed, then stop.
                let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt_connection_errors.inc();
                metrics.mqtt_connected.set(0);
                metrics.mqtt_subscribed.set(0);
                let was = *state.borrow();
                state.send_replace(ConnState {
                    connected: false,
                    epoch,
                });
                if matches!(e, ConnectionError::RequestsDone) {
                    break;
                }
                let delay = backoff.step();
                if was.connected {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt connection lost; reconnecting");
                } else {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt connect failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
    }
    metrics.mqtt_connected.set(0);
    state.send_replace(ConnState {
        connected: false,
        epoch,
    });
}

enum Step {
    Nothing,
    IntakeClosed,
    /// The head waiter resolved: `true` = stored or dead-lettered, `false` = dropped.
    Resolved(bool),
    Incoming((u64, Publish)),
}

struct Pending {
    epoch: u64,
    publish: Publish,
    waiter: AckWaiter,
}

async fn ack_loop(
    client: AsyncClient,
    subs: Arc<Vec<Subscription>>,
    mut in_rx: mpsc::UnboundedReceiver<(u64, Publish)>,
    out: mpsc::Sender<Envelope>,
    state: watch::Receiver<ConnState>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut forward: Option<Envelope> = None;
    let mut out = Some(out);
    // Epoch whose acks are suspended because a waiter was dropped (not stored).
    let mut halted_epoch: Option<u64> = None;
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
            Step::Resolved(stored) => {
                let p = queue.pop_front().expect("non-empty");
                metrics.acks_pending.dec();
                let current = state.borrow().epoch;
                if !stored {
                    // Not stored: acking any later message of this connection would ack out
                    // of order, so none is; the broker redelivers them all.
                    halted_epoch = Some(p.epoch);
                    metrics.acks_stale.inc();
                } else if p.epoch == current && halted_epoch != Some(p.epoch) {
                    if let Err(e) = client.ack(&p.publish).await {
                        tracing::warn!(error = %e, "mqtt: cannot queue PUBACK");
                    } else {
                        metrics.acks_sent.inc();
                    }
                } else {
                    metrics.acks_stale.inc();
                }
            }
            Step::Incoming((epoch, publish)) => {
                let topic = publish.topic.clone();
                let (format, vendor) = match route(&subs, &topic) {
                    Some(s) => (s.format.clone(), s.vendor.clone()),
                    // A message for a filter no longer configured (kept by the persistent
                    // session): decode it as envmon JSON; a failure dead-letters it.
                    None => (Format::Json, None),
                };
                let payload = publish.payload.clone();
                let ack = if publish.qos == QoS::AtMostOnce {
                    None
                } else {
                    let (h, w) = AckHandle::new();
                    metrics.acks_pending.inc();
                    queue.push_back(Pending {
                        epoch,
                        publish,
                        waiter: w,
                    });
                    Some(h)
                };
                forward = Some(Envelope {
                    origin: Origin::Mqtt(topic),
                    format,
                    vendor,
                    payload: Payload::Raw(payload),
                    received: Utc::now(),
                    ack,
                });
            }
        }
    }
    tracing::debug!("mqtt ack task done");
}

#[cfg(test)]
mod tests {
    use super::*;

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
