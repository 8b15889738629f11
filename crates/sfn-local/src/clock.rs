//! Time, behind a trait: the real clock sleeps, the virtual clock jumps.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
    /// A virtual clock never sleeps, so task timeouts are measured on it after the fact.
    fn is_virtual(&self) -> bool {
        false
    }
}

/// Wall-clock time and real sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

#[async_trait::async_trait]
impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock that advances instantly when slept on. Concurrent sleepers (Parallel
/// branches, Map iterations) overlap: the clock jumps to the earliest pending
/// wake-up time once every sleeper had a chance to register, so two branches
/// waiting 10 s and 20 s take 20 s of virtual time, not 30 s.
///
/// Use it on a current-thread runtime: tasks a handler spawns then run interleaved with
/// the engine, so every sleeper registers before the clock moves. On a multi-thread
/// runtime a spawned task may move the clock before a sleeper on another thread registers.
#[derive(Debug)]
pub struct VirtualClock {
    start: DateTime<Utc>,
    offset_micros: AtomicI64,
    /// Pending wake-up offsets and how many sleepers wait for each.
    pending: Mutex<BTreeMap<i64, usize>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            start,
            offset_micros: AtomicI64::new(0),
            pending: Mutex::new(BTreeMap::new()),
        }
    }
    /// Time elapsed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.offset_micros.load(Ordering::SeqCst).max(0) as u64)
    }
}

/// Scheduler rounds a sleeper waits before it may move the virtual clock.
const SETTLE_ROUNDS: u32 = 3;

impl VirtualClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, usize>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One registered sleeper; removes itself from the pending set when dropped.
struct PendingSleep<'a> {
    clock: &'a VirtualClock,
    target: i64,
}

impl<'a> PendingSleep<'a> {
    fn register(clock: &'a VirtualClock, target: i64) -> Self {
        *clock.lock().entry(target).or_insert(0) += 1;
        PendingSleep { clock, target }
    }
}

impl Drop for PendingSleep<'_> {
    fn drop(&mut self) {
        let mut pending = self.clock.lock();
        if let Some(n) = pending.get_mut(&self.target) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.target);
            }
        }
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new(Utc::now())
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
    async fn sleep(&self, d: Duration) {
        let now = self.offset_micros.load(Ordering::SeqCst);
        let target = now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        // Deregisters on completion and on cancellation (a dropped branch or timeout).
        let _pending = PendingSleep::register(self, target);
        // Let concurrently polled futures reach their own sleeps first.
        let mut rounds = 0;
        loop {
            tokio::task::yield_now().await;
            rounds += 1;
            let now = self.offset_micros.load(Ordering::SeqCst);
            if now >= target {
                break;
            }
            let earliest = self.lock().range(now + 1..).next().map(|(t, _)| *t);
            if rounds >= SETTLE_ROUNDS && earliest == Some(target) {
                self.offset_micros.fetch_max(target, Ordering::SeqCst);
                break;
            }
        }
    }
    fn is_virtual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_sleep_advances_without_waiting() {
        let c = VirtualClock::default();
        let t0 = c.now();
        c.sleep(Duration::from_secs(3600)).await;
        assert_eq!((c.now() - t0).num_seconds(), 3600);
        assert_eq!(c.elapsed(), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn concurrent_sleeps_overlap() {
        let c = VirtualClock::default();
        tokio::join!(
            c.sleep(Duration::from_secs(10)),
            c.sleep(Duration::from_secs(20)),
            c.sleep(Duration::from_secs(10))
        );
        assert_eq!(c.elapsed(), Duration::from_secs(20));
        c.sleep(Duration::from_secs(5)).await;
        assert_eq!(c.elapsed(), Duration::from_secs(25));
    }

    #[tokio::test]
    async fn a_cancelled_sleep_does_not_block_others() {
        let c = VirtualClock::default();
        // The 5 s sleep is dropped before it can move the clock.
        tokio::select! {
            biased;
            _ = tokio::task::yield_now() => {}
            _ = c.sleep(Duration::from_secs(5)) => panic!("should have been cancelled"),
        }
        c.sleep(Duration::from_secs(30)).await;
        assert_eq!(c.elapsed(), Duration::from_secs(30));
    }
}
