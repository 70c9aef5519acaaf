//! Mirror back-off: a mirror that failed (no connection, or a 5xx) is skipped for a while
//! instead of being tried again before every manifest, blob and chunk of every pull. The pause
//! starts at [`super::Options::mirror_backoff`] and doubles on each failure after it, up to
//! [`super::Options::mirror_backoff_max`]; any answer from the mirror that is not a 5xx ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A mirror that failed: skipped until `until`; the next failure after that pauses it for
/// twice `pause`.
#[derive(Debug, Clone, Copy)]
struct Down {
    until: Instant,
    pause: Duration,
}

/// What [`Backoff::failed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// The mirror was in use until now: it is skipped for this long (worth a log line).
    Paused(Duration),
    /// It was tried again after a pause and failed again: skipped for this long.
    Extended(Duration),
    /// It is already paused (a request that was in flight when it went down).
    AlreadyPaused,
}

/// Pauses of failed mirrors, by key (registry and mirror), for one registry client.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    down: Mutex<HashMap<String, Down>>,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            down: Mutex::default(),
        }
    }

    fn down(&self) -> std::sync::MutexGuard<'_, HashMap<String, Down>> {
        self.down
            .lock()
            .expect("back-off lock is never poisoned: no panics inside")
    }

    /// Whether the mirror `key` may be tried at `now`.
    pub(crate) fn available(&self, key: &str, now: Instant) -> bool {
        self.down().get(key).is_none_or(|d| now >= d.until)
    }

    /// Records a failure of `key` at `now`.
    pub(crate) fn failed(&self, key: &str, now: Instant) -> Failed {
        let mut down = self.down();
        match down.get_mut(key) {
            None => {
                down.insert(
                    key.to_owned(),
                    Down {
                        until: now + self.initial,
                        pause: self.initial,
                    },
                );
                Failed::Paused(self.initial)
            }
            Some(d) if now < d.until => Failed::AlreadyPaused,
            Some(d) => {
                d.pause = d.pause.saturating_mul(2).min(self.max);
                d.until = now + d.pause;
                Failed::Extended(d.pause)
            }
        }
    }

    /// Records that `key` answered; returns whether it had been paused.
    pub(crate) fn succeeded(&self, key: &str) -> bool {
        self.down().remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset_on_success() {
        let b = Backoff::new(Duration::from_secs(30), Duration::from_secs(100));
        let t0 = Instant::now();
        assert!(b.available("m", t0));
        assert_eq!(b.failed("m", t0), Failed::Paused(Duration::from_secs(30)));
        assert!(!b.available("m", t0 + Duration::from_secs(29)));
        assert!(b.available("other", t0), "pauses are per mirror");
        assert_eq!(
            b.failed("m", t0 + Duration::from_secs(1)),
            Failed::AlreadyPaused,
            "failures of requests in flight do not lengthen the pause"
        );
        let t1 = t0 + Duration::from_secs(30);
        assert!(b.available("m", t1));
        assert_eq!(b.failed("m", t1), Failed::Extended(Duration::from_secs(60)));
        let t2 = t1 + Duration::from_secs(60);
        assert!(!b.available("m", t2 - Duration::from_millis(1)));
        assert_eq!(
            b.failed("m", t2),
            Failed::Extended(Duration::from_secs(100))
        );
        assert!(b.succeeded("m"));
        assert!(b.available("m", t2));
        assert!(!b.succeeded("m"));
        assert_eq!(b.failed("m", t2), Failed::Paused(Duration::from_secs(30)));
    }
}
