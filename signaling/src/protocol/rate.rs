//! A token bucket, driven by the caller's clock: the per-connection message rate, and the
//! per-address buckets of [`super::per_source`].

use std::time::Instant;

/// Allows `rate` events per second on average and bursts of up to `burst` events.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` events per second, in bursts of up to `rate`.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self::with_burst(rate, rate, now)
    }

    /// `rate` events per second (may be below one), in bursts of up to `burst` (at least one).
    pub(crate) fn with_burst(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Whether a whole burst is available at `now`: a bucket in that state holds nothing a fresh
    /// one would not, so it can be forgotten.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    /// Takes one token; `false` when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        assert!((0..10).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        // A tenth of a second refills one token, and no more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(bucket.take(t1));
        assert!(!bucket.take(t1));
        // A long pause refills the burst, not more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.take(t2)).count(), 10);
    }

    #[test]
    fn a_slow_rate_with_its_own_burst() {
        let t0 = Instant::now();
        // Six a minute, three at once.
        let mut bucket = TokenBucket::with_burst(0.1, 3.0, t0);
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        assert!(!bucket.take(t0 + Duration::from_secs(9)));
        assert!(bucket.take(t0 + Duration::from_secs(10)));
        assert!(!bucket.is_full(t0 + Duration::from_secs(30)));
        assert!(bucket.is_full(t0 + Duration::from_secs(40)));
    }
}
