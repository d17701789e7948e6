//! When to flush a batch whose messages wait for their acks: the broker's inflight window,
//! found without being told.
//!
//! A broker sends at most its inflight window of unacknowledged QoS 1 messages (Mosquitto
//! `max_inflight_messages`, default 20; MQTT 3.1.1 §4.4 leaves the number to the server) and then
//! waits. envmon acknowledges a message only after it is stored, so a batch that waits for more
//! messages than the window only idles until `influxdb.batch_age_ms`. Two signals avoid that:
//!
//! - **Stall:** acks are pending and no message arrived for `mqtt.ack_stall_ms`: flush now.
//!   Within a burst a broker on the same host delivers messages microseconds apart (measured in
//!   docs/performance.md, "Broker window"), so a stall of a few milliseconds means the broker
//!   is waiting, or the feed paused; either way nothing is gained by waiting longer.
//! - **Learned window:** when [`LEARN_STREAK`] stalls in a row happen at the same number of
//!   pending acks `n`, `n` is the broker's window, and later batches flush as soon as `n`
//!   messages wait, without the stall. If messages arrive while a batch of `n` is being written
//!   (all its acks withheld), the broker's window is larger than `n`: the guess is dropped.
//!
//! `mqtt.inflight_window`, when set, is taken as the window outright (a hint, never a trap:
//! stalls still flush).

/// Stalls in a row at the same pending count before that count is taken as the window. Three:
/// two equal counts happen by chance in a bursty feed more often than an operator would like a
/// wrong guess (a wrong guess only costs smaller batches until it is dropped).
pub const LEARN_STREAK: u32 = 3;

/// The flush-by-ack-count policy of one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Window {
    hint: Option<usize>,
    learned: Option<usize>,
    last_stall: usize,
    streak: u32,
}

impl Window {
    /// `hint`: `mqtt.inflight_window` when the operator set it.
    pub fn new(hint: Option<usize>) -> Window {
        Window {
            hint,
            ..Window::default()
        }
    }

    /// Flush as soon as this many messages wait for their ack (`None`: only on a stall, the
    /// batch size or age).
    pub fn flush_at(&self) -> Option<usize> {
        self.hint.or(self.learned)
    }

    /// The window learned from stalls, if any (for metrics and the log).
    pub fn learned(&self) -> Option<usize> {
        self.learned
    }

    /// A batch was flushed because the stream stalled with `pending` messages waiting for acks.
    /// Returns the newly learned window when this stall completed a streak.
    pub fn on_stall(&mut self, pending: usize) -> Option<usize> {
        if pending == 0 || self.hint.is_some() {
            return None;
        }
        if pending == self.last_stall {
            self.streak += 1;
        } else {
            self.last_stall = pending;
            self.streak = 1;
        }
        if self.streak >= LEARN_STREAK && self.learned != Some(pending) {
            self.learned = Some(pending);
            return Some(pending);
        }
        None
    }

    /// A batch of `pending` acked messages was written and `arrived` more messages came in while
    /// its acks were withheld: the broker's window is larger than `pending`.
    pub fn on_written(&mut self, pending: usize, arrived: usize) {
        if arrived > 0 && self.learned.is_some_and(|w| w <= pending) {
            self.learned = None;
            self.streak = 0;
            self.last_stall = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_stalls_at_the_same_count_teach_the_window() {
        let mut w = Window::new(None);
        assert_eq!(w.flush_at(), None);
        assert_eq!(w.on_stall(20), None);
        assert_eq!(w.on_stall(20), None);
        assert_eq!(w.on_stall(20), Some(20));
        assert_eq!(w.flush_at(), Some(20));
        // Writing a batch of 20 while nothing else arrives keeps the guess.
        w.on_written(20, 0);
        assert_eq!(w.flush_at(), Some(20));
        // Messages arriving while 20 acks were withheld: the window is larger.
        w.on_written(20, 5);
        assert_eq!(w.flush_at(), None);
    }

    #[test]
    fn different_counts_teach_nothing() {
        let mut w = Window::new(None);
        for n in [3, 7, 3, 3, 9, 1, 1] {
            w.on_stall(n);
        }
        assert_eq!(w.flush_at(), None);
        assert_eq!(w.on_stall(1), Some(1));
    }

    #[test]
    fn a_hint_wins_and_is_never_dropped() {
        let mut w = Window::new(Some(100));
        for _ in 0..5 {
            assert_eq!(w.on_stall(20), None);
        }
        w.on_written(100, 50);
        assert_eq!(w.flush_at(), Some(100));
    }
}
