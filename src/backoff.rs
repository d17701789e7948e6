//! The one retry delay of the crate: capped exponential backoff with "equal jitter" (a random
//! factor in [0.5, 1]), so that clients that failed together do not retry in lockstep
//! (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
//!
//! Used by the MQTT reconnect loop, the InfluxDB writer's retries, the indicator writer and the
//! alert notifiers. Hand-written rather than taken from `backon` or `backoff`: those crates drive
//! the retry loop themselves, while every loop here must also wake on a hard stop (and the
//! writer on InfluxDB's health), so only the delay sequence is shared; it is ten lines.

use std::time::Duration;

use rand::Rng as _;

/// A delay sequence: `min`, `2·min`, `4·min` … capped at `max`, each jittered in [d/2, d].
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// `min` is at least 1 ms; `max` at least `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// Start again from `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The un-jittered delay the next [`Backoff::step`] is based on.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The next delay: uniformly jittered in [d/2, d], then d doubles up to the cap.
    pub fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(d)
    }
}

/// The delay before retry number `attempt + 1` (0-based) of a sequence starting at `min`,
/// capped at `max`: the same values as the `attempt`-th [`Backoff::step`], without state.
pub fn delay(min: Duration, max: Duration, attempt: u32) -> Duration {
    let base = min
        .saturating_mul(1u32 << attempt.min(20))
        .min(max.max(min));
    jitter(base)
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn capped_and_jittered() {
        let mut b = Backoff::new(MS(100), MS(1000));
        let ds: Vec<_> = (0..8).map(|_| b.step()).collect();
        assert!(ds[0] >= MS(50) && ds[0] <= MS(100), "{ds:?}");
        assert!(ds[1] >= MS(100) && ds[1] <= MS(200), "{ds:?}");
        assert!(ds.iter().all(|d| *d <= MS(1000)), "{ds:?}");
        assert!(ds[7] >= MS(500), "{ds:?}");
        assert_eq!(b.peek(), MS(1000));
        b.reset();
        assert!(b.step() <= MS(100));
    }

    #[test]
    fn stateless_delay_matches_the_sequence() {
        for attempt in 0..30 {
            let d = delay(MS(100), MS(1000), attempt);
            let base = MS(100 * (1u64 << attempt.min(4))).min(MS(1000));
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn degenerate_bounds_are_lifted() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.step() <= MS(1));
        assert!(delay(MS(10), MS(1), 5) <= MS(10));
    }
}
