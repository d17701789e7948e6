//! Embedded MQTT broker for `envmon demo`: rumqttd (MQTT 3.1.1) on a local port, in threads of
//! its own, so the demo needs no external broker.
//!
//! Owns: building rumqttd's configuration, picking a free port, detecting bind failures, and
//! stopping the listener.
//!
//! - Port 0 means "any free port": rumqttd binds the address it is given and cannot report the
//!   port it got, so we pick one (bind `IP:0`, read the port, release it), start rumqttd on it
//!   and retry with a new port if another process took it in between.
//! - Sessions: rumqttd keeps the state of `clean_session = false` clients across reconnects
//!   (subscriptions and unacknowledged QoS 1 messages), so envmon's persistent session works.
//!   rumqttd closes the connection of a client that acknowledges QoS 1 messages out of order:
//!   a useful check that envmon acks in arrival order.
//! - Logging: rumqttd logs through `tracing` (targets `rumqttd::…`); this module installs no
//!   subscriber. With envmon's logging, filter it with e.g. `rumqttd=warn`.
//! - Stopping: [`EmbeddedBroker::shutdown`] (or drop) closes the listener and every client
//!   connection (their tasks run on a runtime that is dropped). rumqttd's router has no stop:
//!   its thread (`router-0`) stays parked on its channel, using no CPU, until the process exits,
//!   together with the messages it still holds in memory (bounded by
//!   `max_segment_size × max_segment_count` per topic filter).
//! - Retention, and why a fast publisher can lose messages: rumqttd keeps each topic filter's
//!   messages in an in-memory log of segments and acknowledges a QoS 1 PUBLISH (PUBACK) as soon
//!   as it is appended there, whether or not any subscriber has read it. When the active
//!   segment is full and the log already has `max_segment_count` segments, the oldest segment
//!   is dropped; a subscriber whose read cursor was in it jumps to the new head (rumqttd warns
//!   "Read cursor start jumped … on <filter>") and never gets the messages in between. So a
//!   subscriber more than [`BrokerOptions::retained_bytes_per_filter`] behind loses data, and
//!   the publisher's PUBACKs cannot tell. The demo therefore paces the simulator against what
//!   envmon has received (`sim::Pacing`), within that budget.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Concurrent client connections at most.
    pub max_connections: usize,
    /// Largest PUBLISH payload accepted, bytes (at least 1 MiB by default).
    pub max_payload_size: usize,
    /// rumqttd `max_inflight_count`. In rumqttd 0.20 this bounds how many packets are read
    /// from one connection in a batch; the QoS 1 window towards each subscriber (messages sent
    /// and not yet acknowledged) is fixed at 100 by rumqttd (`MAX_INFLIGHT`), whatever this
    /// says. A subscriber that acknowledges only after storing therefore gets at most 100
    /// messages ahead: its store batches must flush on time, not only on size.
    pub max_inflight_count: usize,
    /// Time a new TCP connection has to send CONNECT, milliseconds.
    pub connection_timeout_ms: u16,
    /// Messages the router hands a connection per read (rumqttd `max_outgoing_packet_count`).
    pub max_outgoing_packet_count: u64,
    /// Size of one in-memory log segment, bytes; the broker keeps at most
    /// `max_segment_count` segments per topic filter (older messages are dropped).
    pub max_segment_size: usize,
    pub max_segment_count: usize,
    /// Attempts at picking a free port when the requested port is 0.
    pub bind_attempts: u32,
}

impl BrokerOptions {
    /// Options whose in-memory log holds `mib` MiB per topic filter (4 segments of `mib / 4`
    /// MiB; at least 4 KiB each). Payloads are limited to one segment (at most 1 MiB).
    pub fn with_log_mib(mib: u32) -> BrokerOptions {
        let mut o = BrokerOptions::default();
        o.max_segment_count = 4;
        o.max_segment_size = ((mib as usize) * 1024 * 1024 / 4).max(4096);
        o.max_payload_size = o.max_payload_size.min(o.max_segment_size);
        o
    }

    /// Bytes of a topic filter's messages (rumqttd counts 4 + topic + payload each) that the
    /// log is guaranteed to keep behind its newest message: `(max_segment_count − 1) ×
    /// max_segment_size`. A segment is dropped only when the active one is full and the log
    /// already holds `max_segment_count` segments; the `max_segment_count − 1` full segments
    /// after the dropped one stay. A subscriber less than this far behind loses nothing.
    pub fn retained_bytes_per_filter(&self) -> u64 {
        (self.max_segment_count.saturating_sub(1) * self.max_segment_size) as u64
    }
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            max_connections: 1000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            connection_timeout_ms: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            bind_attempts: 5,
        }
    }
}

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded MQTT broker: invalid option {option}: {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },
    #[error("embedded MQTT broker: cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("embedded MQTT broker: cannot start its thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("embedded MQTT broker on {addr} did not report ready within {secs} s")]
    Timeout { addr: SocketAddr, secs: u64 },
}

/// A running embedded broker. Stops (listener and connections) on [`shutdown`](Self::shutdown)
/// or drop.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// The address the broker listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://IP:PORT`, as `envmon simulate --broker` and the MQTT settings take it.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Close the listener and all client connections, and wait for the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn check(opts: &BrokerOptions) -> Result<(), BrokerError> {
    let bad = |option: &'static str, reason: &str| {
        Err(BrokerError::Option {
            option,
            reason: reason.to_string(),
        })
    };
    if opts.max_connections == 0 {
        return bad("max_connections", "must be at least 1");
    }
    if opts.max_payload_size < 1024 {
        return bad("max_payload_size", "must be at least 1024 bytes");
    }
    if opts.max_inflight_count == 0 || opts.max_inflight_count > usize::from(u16::MAX) {
        return bad("max_inflight_count", "must be 1..=65535");
    }
    if opts.max_segment_size < opts.max_payload_size {
        return bad("max_segment_size", "must be at least max_payload_size");
    }
    if opts.max_segment_count < 2 {
        return bad(
            "max_segment_count",
            "must be at least 2 (with 1, a full segment is dropped whole)",
        );
    }
    if opts.max_outgoing_packet_count == 0 {
        return bad("max_outgoing_packet_count", "must be at least 1");
    }
    Ok(())
}

/// Start rumqttd on `addr` (port 0: a free port) and return once it is listening.
pub fn start_embedded(
    addr: SocketAddr,
    opts: BrokerOptions,
) -> Result<EmbeddedBroker, BrokerError> {
    check(&opts)?;
    let router = Router::new(
        0,
        RouterConfig {
            max_connections: opts.max_connections,
            max_outgoing_packet_count: opts.max_outgoing_packet_count,
            max_segment_size: opts.max_segment_size,
            max_segment_count: opts.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
    );
    let router_tx = router.spawn();
    let attempts = if addr.port() == 0 {
        opts.bind_attempts.max(1)
    } else {
        1
    };
    let mut last_err = None;
    for _ in 0..attempts {
        let listen = if addr.port() == 0 {
            let probe = TcpListener::bind(SocketAddr::new(addr.ip(), 0)).map_err(|e| {
                BrokerError::Bind {
                    addr,
                    reason: e.to_string(),
                }
            })?;
            let a = probe.local_addr().map_err(|e| BrokerError::Bind {
                addr,
                reason: e.to_string(),
            })?;
            drop(probe);
            a
        } else {
            addr
        };
        let settings = ServerSettings {
            name: "envmon-embedded".into(),
            listen,
            tls: None,
            next_connection_delay_ms: 0,
            connections: ConnectionSettings {
                connection_timeout_ms: opts.connection_timeout_ms,
                max_payload_size: opts.max_payload_size,
                max_inflight_count: opts.max_inflight_count,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let router_tx = router_tx.clone();
        let thread = std::thread::Builder::new()
            .name("envmon-broker".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot build its runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut server = Server::new(settings, router_tx, V4);
                    let fut = server.start(LinkType::Remote);
                    let mut fut = std::pin::pin!(fut);
                    // The first poll binds the listener and then waits for connections: a
                    // pending future means it is listening; a ready one, that binding failed.
                    match futures::poll!(fut.as_mut()) {
                        std::task::Poll::Ready(r) => {
                            let reason = match r {
                                Err(e) => e.to_string(),
                                Ok(()) => "server ended at once".to_string(),
                            };
                            let _ = ready_tx.send(Err(reason));
                            return;
                        }
                        std::task::Poll::Pending => {
                            let _ = ready_tx.send(Ok(()));
                        }
                    }
                    tokio::select! {
                        r = fut => {
                            if let Err(e) = r {
                                tracing::error!(error = %e, "embedded MQTT broker stopped");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime here ends every connection task.
            })
            .map_err(BrokerError::Thread)?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {
                return Ok(EmbeddedBroker {
                    addr: listen,
                    stop: Some(stop_tx),
                    thread: Some(thread),
                })
            }
            Ok(Err(reason)) => {
                let _ = thread.join();
                last_err = Some(BrokerError::Bind {
                    addr: listen,
                    reason,
                });
            }
            Err(_) => {
                let _ = stop_tx.send(());
                return Err(BrokerError::Timeout {
                    addr: listen,
                    secs: 10,
                });
            }
        }
    }
    Err(last_err.unwrap_or(BrokerError::Bind {
        addr,
        reason: "no attempt made".into(),
    }))
}
