//! A shared tick for the input pumps ([`super::media::InputPump`]).
//!
//! A `Sleep` per pump would cost the runtime a timer entry per connection
//! and, each time one is re-armed, possibly an unpark of the I/O driver (an
//! eventfd write plus an extra `epoll_wait`): about a hundred per second per
//! hundred connections, measured with strace. Instead one ticker task per
//! interval sleeps until the next tick of a process-wide grid and wakes every
//! pump registered for it. Waking tasks from a task on the same worker only
//! queues them, so a tick costs one timer and no syscalls per connection.

use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;

/// The first tick at or after `now + interval / 2` on the process-wide grid of
/// `interval` (at least half an interval away, so a late tick cannot be
/// followed by an almost immediate one).
pub fn next_tick(now: Instant, interval: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos().max(1);
    let due = now.saturating_duration_since(epoch).as_nanos() + step / 2;
    let ticks = due.div_ceil(step);
    let at = u64::try_from(ticks.saturating_mul(step)).unwrap_or(u64::MAX);
    epoch
        .checked_add(Duration::from_nanos(at))
        .unwrap_or(now + interval)
}

#[derive(Default)]
struct Waiting {
    wakers: Vec<Waker>,
    /// Ticks fired so far; a pump registers once per tick.
    tick: u64,
}

pub struct PumpClock {
    interval: Duration,
    waiting: Mutex<Waiting>,
    /// Cleared when the ticker task ends (its runtime shut down), so the next
    /// pump on a new runtime starts a new clock instead of waiting forever.
    alive: std::sync::atomic::AtomicBool,
}

impl PumpClock {
    /// The clock for `interval` on the current runtime, started if needed.
    /// Must be called from within the runtime (a driver's poll).
    pub fn get(interval: Duration) -> Arc<PumpClock> {
        static CLOCKS: Mutex<Vec<Arc<PumpClock>>> = Mutex::new(Vec::new());
        let mut clocks = lock(&CLOCKS);
        clocks.retain(|c| c.alive.load(std::sync::atomic::Ordering::Acquire));
        if let Some(c) = clocks.iter().find(|c| c.interval == interval) {
            return c.clone();
        }
        let clock = Arc::new(PumpClock {
            interval,
            waiting: Mutex::new(Waiting::default()),
            alive: std::sync::atomic::AtomicBool::new(true),
        });
        tokio::spawn(run(clock.clone()));
        clocks.push(clock.clone());
        clock
    }

    /// Wake `waker` at the next tick. `last` is the tick this pump last
    /// registered for; returns the one it is registered for now (so a pump
    /// polled several times between ticks registers once), or `None` if this
    /// clock has stopped and the pump must get a new one.
    pub fn register(&self, waker: &Waker, last: Option<u64>) -> Option<u64> {
        let mut w = lock(&self.waiting);
        if !self.alive.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        if last != Some(w.tick) {
            w.wakers.push(waker.clone());
        }
        Some(w.tick)
    }
}

/// Marks the clock dead however its task ends (including being dropped by a
/// shutting-down runtime).
struct Alive(Arc<PumpClock>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0
            .alive
            .store(false, std::sync::atomic::Ordering::Release);
        // Pumps waiting on a clock that will not tick again: poll them now so
        // they move to a new one.
        let wakers = std::mem::take(&mut lock(&self.0.waiting).wakers);
        wakers.into_iter().for_each(Waker::wake);
    }
}

async fn run(clock: Arc<PumpClock>) {
    let guard = Alive(clock);
    let clock = &guard.0;
    let mut batch = Vec::new();
    loop {
        tokio::time::sleep_until(next_tick(Instant::now(), clock.interval)).await;
        {
            let mut w = lock(&clock.waiting);
            if w.wakers.is_empty() {
                // No pump left: stop ticking (under the lock, so a pump either
                // registered before this or sees the clock stopped).
                clock
                    .alive
                    .store(false, std::sync::atomic::Ordering::Release);
                return;
            }
            std::mem::swap(&mut batch, &mut w.wakers);
            w.tick += 1;
        }
        batch.drain(..).for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_sit_on_one_grid_at_least_half_an_interval_ahead() {
        let step = Duration::from_millis(20);
        let base = Instant::now();
        let mut last = None;
        for offset_us in [0u64, 1, 9_999, 10_000, 10_001, 19_999, 20_000, 123_456] {
            let now = base + Duration::from_micros(offset_us);
            let t = next_tick(now, step);
            assert!(t >= now + step / 2, "at +{offset_us} µs");
            assert!(t < now + step + step / 2, "at +{offset_us} µs");
            if let Some(prev) = last {
                // Any two ticks are a whole number of intervals apart.
                let gap: Duration = t - prev;
                assert_eq!(gap.as_nanos() % step.as_nanos(), 0);
            }
            last = Some(t);
        }
    }
}
