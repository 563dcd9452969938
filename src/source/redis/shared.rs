//! The Redis source's policy: the window's value is fetched from Redis (created there by the
//! first replica that asks), and a local fallback is made only when Redis fails.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use time::Duration;

use super::commands::{MAX_TTL_MS, set_and_get};
use super::connection::{Backoff, CallError, Connector, Wait};
use super::keys;
use crate::clock::ClockReading;
use crate::nonce::Nonce;
use crate::rotation::Rotation;
use crate::source::engine::{
    CURRENT, Layout, NEXT, PREVIOUS, Packed, Policy, Slots, WindowCell, carry_local, fresh_packed,
    is_empty,
};

/// One shared set (the Redis values), then the engine's two local slots.
pub(super) const SLOTS: usize = 5;

type L = Layout<SLOTS>;

/// The Redis policy: where the shared values live, and the connection to reach them.
pub(super) struct Shared {
    pub(super) rotation: Rotation,
    pub(super) prefix: String,
    pub(super) label: String,
    pub(super) connector: Connector,
    /// The latest window for which a fetch was tried regardless of the back-off.
    pub(super) forced_window: AtomicI64,
    /// `true` while a background refresher keeps the values fetched: the request path then
    /// makes no Redis call at all (no fetch, no prefetch, no re-read) and serves the local
    /// fallback when the current window's value is missing.
    pub(super) background: AtomicBool,
}

impl Shared {
    /// The shared value of the window the cell is in.
    pub(super) const CURRENT: usize = L::shared(0, CURRENT);
    /// The shared value of the window before.
    const PREVIOUS: usize = L::shared(0, PREVIOUS);
    /// The shared value of the window after, once prefetched.
    pub(super) const NEXT: usize = L::shared(0, NEXT);

    /// `true` while a background refresher runs: the request path stays off the network.
    #[inline]
    pub(super) fn in_background(&self) -> bool {
        self.background.load(Ordering::Acquire)
    }

    /// Records that a fetch of `window` ignores the back-off; `true` if none did before.
    pub(super) fn force(&self, window: i64) -> bool {
        self.forced_window.fetch_max(window, Ordering::AcqRel) < window
    }

    /// One round trip: create-if-absent and read `window`'s value (and read the window before,
    /// when its value is missing), then store what came back in `cell`.
    pub(super) fn fetch(
        &self,
        cell: &WindowCell<SLOTS>,
        window: i64,
        now: ClockReading,
        wait: Wait,
        backoff: Backoff,
    ) -> Result<(), CallError> {
        // Checked before any allocation or random draw, so an outage costs requests nothing.
        if backoff == Backoff::Respect && self.connector.backing_off() {
            return Err(CallError::BackingOff);
        }
        let latest = cell.read();
        let want_previous = latest.window == window && is_empty(&latest.values[Self::PREVIOUS]);
        let key = keys::nonce_key(&self.prefix, &self.label, window);
        let previous_key = want_previous
            .then(|| window.checked_sub(1))
            .flatten()
            .map(|previous| keys::nonce_key(&self.prefix, &self.label, previous));
        let ttl_ms = self.ttl_ms(window, now.unix_time());
        let candidate = Nonce::generate();
        self.connector.call(wait, backoff, |connection| {
            // Threads that queued for the connection at a window change find the work done
            // by the first one, and send nothing. So the values are stored before the
            // connection is released.
            if has_shared(cell, window) {
                return Ok(());
            }
            let (value, previous) = set_and_get(
                connection,
                &key,
                &candidate,
                ttl_ms,
                previous_key.as_deref(),
            )?;
            store(cell, window, value);
            // A fetch of the current window is a re-read too (the same `SET NX` then `GET`):
            // the next one is due an interval later. Armed while the connection is still held,
            // so threads that queued behind this one do not re-read at once.
            if cell.read().window == window {
                self.arm_recheck(now);
            }
            if let (Some(previous), Some(before)) = (previous, window.checked_sub(1)) {
                store(cell, before, previous);
            }
            Ok(())
        })
    }

    /// Milliseconds the key of `window` must live: until no replica can accept the value any
    /// more (the end of `window + 1`), plus one interval for clocks that lag.
    pub(super) fn ttl_ms(&self, window: i64, now: Duration) -> i64 {
        let until = self
            .rotation
            .window_start(window.saturating_add(2))
            .saturating_sub(now)
            .saturating_add(self.rotation.interval());
        let ms = until.whole_milliseconds().saturating_add(1);
        i64::try_from(ms).unwrap_or(i64::MAX).clamp(1, MAX_TTL_MS)
    }

    /// The current window has no shared value: fetch it (bounded), or fall back to a local one.
    /// With a background refresher, never fetch: fall back at once, the refresher fetches.
    #[cold]
    fn fill_current(
        &self,
        cell: &WindowCell<SLOTS>,
        slots: Slots<SLOTS>,
        now: ClockReading,
    ) -> Slots<SLOTS> {
        let window = slots.window;
        // A window below the floor (the clock stepped back) is never fetched: its value may
        // still be in Redis, and must not count again.
        if window >= cell.floor() && !self.in_background() {
            // The first attempt in each window ignores the back-off, so a replica converges at
            // its first call in the next window at the latest.
            let backoff = if self.force(window) {
                Backoff::Ignore
            } else {
                Backoff::Respect
            };
            let _ = self.fetch(cell, window, now, Wait::Bounded, backoff);
        }
        let latest = cell.read();
        if latest.window != window
            || !is_empty(&latest.values[Self::CURRENT])
            || !is_empty(&latest.values[L::LOCAL_CURRENT])
        {
            return latest;
        }
        cell.update(|latest, _| {
            (latest.window == window
                && is_empty(&latest.values[Self::CURRENT])
                && is_empty(&latest.values[L::LOCAL_CURRENT]))
            .then(|| {
                let mut next = *latest;
                next.values[L::LOCAL_CURRENT] = fresh_packed();
                next
            })
        })
    }
}

impl Policy<SLOTS> for Shared {
    /// The next window's value moves to current, the current one to previous; nothing is
    /// fetched here (that waits for [`prepare`](Policy::prepare), outside the writer lock).
    fn fill(&self, latest: &Slots<SLOTS>, target: i64, floor: i64) -> Slots<SLOTS> {
        let mut next = Slots::empty(target);
        if latest.window.checked_add(1) == Some(target) {
            if target >= floor {
                next.values[Self::CURRENT] = latest.values[Self::NEXT];
            }
            if latest.window >= floor {
                next.values[Self::PREVIOUS] = latest.values[Self::CURRENT];
            }
        }
        carry_local(latest, target, false, &mut next);
        next
    }

    fn prepare(
        &self,
        cell: &WindowCell<SLOTS>,
        slots: Slots<SLOTS>,
        now: ClockReading,
    ) -> Slots<SLOTS> {
        if is_empty(&slots.values[Self::CURRENT]) {
            return self.fill_current(cell, slots, now);
        }
        if self.in_background() {
            // The refresher prefetches and re-reads; the request path answers from the cell.
            return slots;
        }
        if is_empty(&slots.values[Self::NEXT]) {
            let prefetch_from = slots.end.saturating_sub(cell.lead());
            // Within the stored window and in its last `lead`: time to fetch the next value.
            let passed = now.marks_reached(&[slots.start, prefetch_from, slots.end]);
            if passed == 2
                && let Some(next) = slots.window.checked_add(1)
            {
                // Best effort: never waits for another thread, never during a back-off.
                let _ = self.fetch(cell, next, now, Wait::No, Backoff::Respect);
            }
        }
        self.recheck_if_due(cell, now, slots)
    }

    /// A re-read of the current value is due.
    #[inline]
    fn due(&self, now: &ClockReading) -> bool {
        if self.in_background() {
            return false;
        }
        let every = self.connector.config().recheck_every();
        self.connector.recheck.is_due(*now, every)
    }
}

/// `true` when `window`'s shared value is cached (as current or as next).
fn has_shared(cell: &WindowCell<SLOTS>, window: i64) -> bool {
    let latest = cell.read();
    if latest.window == window {
        !is_empty(&latest.values[Shared::CURRENT])
    } else if latest.window.checked_add(1) == Some(window) {
        !is_empty(&latest.values[Shared::NEXT])
    } else {
        false
    }
}

/// Puts `window`'s shared value in whichever slot it belongs to now, if that slot is empty and
/// the window is not below the floor.
fn store(cell: &WindowCell<SLOTS>, window: i64, value: Packed) {
    cell.update(|latest, floor| {
        if window < floor {
            return None;
        }
        let slot = if latest.window == window {
            Shared::CURRENT
        } else if latest.window.checked_add(1) == Some(window) {
            Shared::NEXT
        } else if window.checked_add(1) == Some(latest.window) {
            Shared::PREVIOUS
        } else {
            return None;
        };
        is_empty(&latest.values[slot]).then(|| {
            let mut next = *latest;
            next.values[slot] = value;
            next
        })
    });
}
