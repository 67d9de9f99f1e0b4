//! A token bucket per source address, in a table of bounded size: the nameplate-join cap of the hub
//! and the STUN responder's request rate. Driven by the caller's clock, like the hub.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::rate::TokenBucket;

/// Buckets for at most `capacity` addresses. A bucket that has refilled holds nothing a new one
/// would not, so it is forgotten at the next sweep; when the table is full of busy addresses
/// anyway, the addresses it has no room for share one more bucket, so memory stays bounded and
/// nobody gets more than the rate.
#[derive(Debug)]
pub(crate) struct PerSource {
    rate: f64,
    burst: f64,
    capacity: usize,
    buckets: HashMap<IpAddr, TokenBucket>,
    /// Shared by the addresses the table has no room for; made the first time it is needed.
    overflow: Option<TokenBucket>,
    /// A bucket untouched this long is full again.
    refill_time: Duration,
    next_sweep: Option<Instant>,
}

impl PerSource {
    /// `rate` events per second per address (may be below one), bursts of `burst`, buckets for
    /// `capacity` addresses.
    pub(crate) fn new(rate: f64, burst: f64, capacity: usize) -> Self {
        let refill_time = Duration::from_secs_f64((burst / rate.max(1e-9)).clamp(1.0, 86_400.0));
        Self {
            rate,
            burst,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            overflow: None,
            refill_time,
            next_sweep: None,
        }
    }

    /// Takes one token for `source` (an address group, see [`super::hub::address_group`]);
    /// `false` when it is out of tokens.
    pub(crate) fn take(&mut self, source: IpAddr, now: Instant) -> bool {
        if let Some(bucket) = self.buckets.get_mut(&source) {
            return bucket.take(now);
        }
        // The first bucket starts the sweeping clock.
        self.next_sweep.get_or_insert(now + self.refill_time);
        if self.buckets.len() >= self.capacity {
            // At most one sweep per refill time, so a flood of new addresses costs no more.
            self.sweep_if_due(now);
        }
        if self.buckets.len() >= self.capacity {
            let (rate, burst) = (self.rate, self.burst);
            return self
                .overflow
                .get_or_insert_with(|| TokenBucket::with_burst(rate, burst, now))
                .take(now);
        }
        let mut bucket = TokenBucket::with_burst(self.rate, self.burst, now);
        let taken = bucket.take(now);
        self.buckets.insert(source, bucket);
        taken
    }

    /// Forgets the buckets that have refilled, once per refill time at most.
    pub(crate) fn sweep_if_due(&mut self, now: Instant) {
        if self.next_sweep.is_none_or(|due| now < due) {
            return;
        }
        self.next_sweep = Some(now + self.refill_time);
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
    }

    /// Addresses with a bucket now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn each_address_has_its_own_bucket() {
        let t0 = Instant::now();
        let mut limiter = PerSource::new(1.0, 3.0, 100);
        assert_eq!((0..10).filter(|_| limiter.take(ip(1), t0)).count(), 3);
        assert!(limiter.take(ip(2), t0));
        assert!(limiter.take(ip(1), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_buckets() {
        let t0 = Instant::now();
        let mut limiter = PerSource::new(10.0, 10.0, 4);
        for n in 0..4 {
            assert!(limiter.take(ip(n), t0));
        }
        // Full of busy addresses: newcomers share one bucket of the same rate.
        assert_eq!((100..200).filter(|&n| limiter.take(ip(n), t0)).count(), 10);
        assert_eq!(limiter.len(), 4);
        // A second later every bucket has refilled: the table makes room.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.take(ip(500), t1));
        assert_eq!(limiter.len(), 1);
        limiter.sweep_if_due(t1 + Duration::from_secs(5));
        assert_eq!(limiter.len(), 0);
    }
}
