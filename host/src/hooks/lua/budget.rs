//! What one call into a script may spend: an instruction budget and a wall-clock deadline.
//!
//! The count hook ([`super::sandbox`]) charges the VM instructions it sees; the library
//! functions the sandbox implements in Rust (patterns, `string.rep`, ...) charge their own work
//! in the same units through [`CallBudget::charge`]. Both check the deadline each time, so a call
//! ends at whichever comes first. The deadline is what bounds wall-clock time: one VM instruction
//! can take far longer than another (comparing two long strings full of NUL bytes costs one
//! `strcoll` per NUL), so no instruction count alone bounds it.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Why the current call was stopped, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// It used its instruction budget.
    Instructions,
    /// It ran past its deadline.
    Deadline,
}

const RUNNING: u8 = 0;
const OUT_OF_INSTRUCTIONS: u8 = 1;
const PAST_DEADLINE: u8 = 2;

/// What one call into the script may still spend, shared by the count hook and the Rust
/// library functions (atomics only because mlua wants its callbacks `Send`; nothing contends).
#[derive(Debug)]
pub(super) struct CallBudget {
    limit: u64,
    deadline: Duration,
    used: AtomicU64,
    /// When the current call must end, on [`now_ns`]'s clock.
    ends_at: AtomicU64,
    stop: AtomicU8,
    /// `file.lua:LINE: ` where the call was stopped, for the error message.
    stopped_at: Mutex<String>,
    /// `p2p.log` lines written during this call (capped, so a loop cannot flood the log).
    pub(super) log_lines: AtomicU32,
}

impl CallBudget {
    pub(super) fn new(limit: u64, deadline: Duration) -> Self {
        Self {
            limit,
            deadline,
            used: AtomicU64::new(0),
            ends_at: AtomicU64::new(u64::MAX),
            stop: AtomicU8::new(RUNNING),
            stopped_at: Mutex::new(String::new()),
            log_lines: AtomicU32::new(0),
        }
    }

    /// Starts a call with the whole budget and a deadline counted from now.
    pub(super) fn start(&self) {
        self.used.store(0, Ordering::Relaxed);
        let deadline = u64::try_from(self.deadline.as_nanos()).unwrap_or(u64::MAX);
        self.ends_at
            .store(now_ns().saturating_add(deadline), Ordering::Relaxed);
        self.stop.store(RUNNING, Ordering::Relaxed);
        self.stopped_at().clear();
        self.log_lines.store(0, Ordering::Relaxed);
    }

    /// Why the current call was stopped, if it was.
    pub(super) fn stopped(&self) -> Option<Stop> {
        match self.stop.load(Ordering::Relaxed) {
            OUT_OF_INSTRUCTIONS => Some(Stop::Instructions),
            PAST_DEADLINE => Some(Stop::Deadline),
            _ => None,
        }
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    pub(super) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// `file.lua:LINE: ` where the current call was stopped, or nothing if Lua did not know.
    pub(super) fn stopped_at(&self) -> MutexGuard<'_, String> {
        self.stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` instructions (or their equivalent in library work) and checks the deadline;
    /// `Some` once the call must stop. The first time, `place` says where, for the message.
    pub(super) fn charge(&self, n: u64, place: impl FnOnce() -> Option<String>) -> Option<Stop> {
        if let Some(stop) = self.stopped() {
            return Some(stop);
        }
        let used = self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        let stop = if used > self.limit {
            OUT_OF_INSTRUCTIONS
        } else if now_ns() >= self.ends_at.load(Ordering::Relaxed) {
            PAST_DEADLINE
        } else {
            return None;
        };
        if self
            .stop
            .compare_exchange(RUNNING, stop, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && let Some(at) = place()
        {
            *self.stopped_at() = at;
        }
        self.stopped()
    }
}

/// A monotonic clock in nanoseconds, cheap enough to read every few VM instructions: the
/// coarse clock (read from the vDSO, a few nanoseconds; it advances once per kernel tick, 1 to
/// 4 ms, which is all a deadline of a second needs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn now_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_stops_at_its_budget_or_its_deadline() {
        let budget = CallBudget::new(100, Duration::from_secs(60));
        budget.start();
        assert_eq!(budget.charge(60, || None), None);
        assert_eq!(
            budget.charge(60, || Some("x.lua:3: ".into())),
            Some(Stop::Instructions)
        );
        assert_eq!(budget.stopped_at().as_str(), "x.lua:3: ");
        // Stopped for good, and where it first stopped is kept.
        assert_eq!(
            budget.charge(0, || Some("elsewhere".into())),
            Some(Stop::Instructions)
        );
        assert_eq!(budget.stopped_at().as_str(), "x.lua:3: ");
        budget.start();
        assert_eq!(budget.stopped(), None);
        assert!(budget.stopped_at().is_empty());

        let budget = CallBudget::new(u64::MAX, Duration::ZERO);
        budget.start();
        assert_eq!(budget.charge(1, || None), Some(Stop::Deadline));
    }

    #[test]
    fn the_clock_moves_forward() {
        let before = now_ns();
        std::thread::sleep(Duration::from_millis(20));
        assert!(now_ns() > before);
    }
}
