//! Token buckets: a byte rate with a small burst, shared by whoever draws from them.
//!
//! A draw never blocks: it takes the tokens, possibly into debt, and says how long the caller
//! must wait before sending. Debt makes a bucket fair enough across connections without a queue:
//! each draw pays for the bytes before them.

use std::time::{Duration, Instant};

/// A rate in bytes per second with a burst of at most `burst` bytes.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket of `rate` bytes per second; the burst is 1/50 s of rate, at least 16 KiB.
    pub fn new(rate: u64) -> Bucket {
        let rate = rate.max(1) as f64;
        let burst = (rate / 50.0).max(16.0 * 1024.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes `bytes` tokens and returns how long to wait before sending them.
    pub fn draw(&mut self, bytes: usize) -> Duration {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_at_the_rate() {
        let mut bucket = Bucket::new(1_000_000);
        // The burst (20 KB here) is free; the next megabyte costs about a second.
        assert_eq!(bucket.draw(16 * 1024), Duration::ZERO);
        let wait = bucket.draw(1_000_000);
        assert!(wait > Duration::from_millis(950), "{wait:?}");
        assert!(wait < Duration::from_millis(1_050), "{wait:?}");
    }
}
