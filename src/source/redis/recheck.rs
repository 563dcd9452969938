//! Re-reading the current window's shared value on a schedule, so that replicas which cached
//! different values (Redis lost its data mid-window) agree again within seconds.

use time::Duration;

use super::commands::set_and_get;
use super::connection::{Backoff, CallError, Wait};
use super::keys;
use super::shared::{SLOTS, Shared};
use crate::clock::ClockReading;
use crate::source::engine::{Layout, Packed, Slots, WindowCell, is_empty, unpack};

type L = Layout<SLOTS>;

impl Shared {
    /// From the request path (the slow path of a check or an issue): re-reads the current
    /// window's value if the recheck interval has passed on the source's clock, without
    /// waiting for the connection and never during a back-off. Returns the slots to answer
    /// from (the latest, if the re-read changed them).
    pub(super) fn recheck_if_due(
        &self,
        cell: &WindowCell<SLOTS>,
        now: ClockReading,
        slots: Slots<SLOTS>,
    ) -> Slots<SLOTS> {
        let every = self.connector.config().recheck_every();
        if !self.connector.recheck.claim(now, every) {
            return slots;
        }
        match self.recheck(cell, &slots, now.unix_time(), Wait::No, Backoff::Respect) {
            Ok(true) => cell.read(),
            _ => slots,
        }
    }

    /// Moves the schedule on: the next re-read is due one interval after `now`.
    pub(super) fn arm_recheck(&self, now: ClockReading) {
        let every = self.connector.config().recheck_every();
        self.connector.recheck.push(now, every);
    }

    /// From [`refresh`](super::RedisNonceSource::refresh): re-reads the current window's value
    /// now, waiting at most one call budget for the connection and ignoring the back-off, and
    /// moves the schedule on so that request threads do not repeat it.
    pub(super) fn recheck_now(
        &self,
        cell: &WindowCell<SLOTS>,
        slots: &Slots<SLOTS>,
        now: ClockReading,
    ) -> Result<(), CallError> {
        self.arm_recheck(now);
        self.recheck(cell, slots, now.unix_time(), Wait::Bounded, Backoff::Ignore)
            .map(|_| ())
    }

    /// One round trip, `SET key cached NX PX ttl` then `GET key`: puts the cached value back if
    /// Redis lost it, and reads the value every replica now agrees on. `Ok(true)` when that
    /// value differs from the cached one and this replica moved over to it.
    fn recheck(
        &self,
        cell: &WindowCell<SLOTS>,
        slots: &Slots<SLOTS>,
        now: Duration,
        wait: Wait,
        backoff: Backoff,
    ) -> Result<bool, CallError> {
        let cached = slots.values[Self::CURRENT];
        let Some(nonce) = unpack(&cached) else {
            // Nothing shared to re-read: the fallback path fetches instead.
            return Ok(false);
        };
        let key = keys::nonce_key(&self.prefix, &self.label, slots.window);
        let ttl_ms = self.ttl_ms(slots.window, now);
        self.connector.call(wait, backoff, |connection| {
            let (found, _) = set_and_get(connection, &key, &nonce, ttl_ms, None)?;
            Ok(adopt(cell, slots.window, &cached, found))
        })
    }
}

/// Redis holds `found` for `window` while this replica cached `cached`: hand out `found` from
/// now on, and keep accepting `cached` as a previous value (with a `DPoP-Nonce` refresh, RFC
/// 9449 §8.2) in a local slot, which rotates out like a local value: after the next window. A
/// local value made earlier in this window keeps its slot if the other one is free; otherwise
/// the replaced value takes its place, since it was handed out later. `true` when the slots
/// changed.
fn adopt(cell: &WindowCell<SLOTS>, window: i64, cached: &Packed, found: Packed) -> bool {
    if found == *cached {
        return false;
    }
    let mut changed = false;
    cell.update(|latest, floor| {
        if window < floor || latest.window != window || latest.values[Shared::CURRENT] != *cached {
            return None;
        }
        let mut next = *latest;
        next.values[Shared::CURRENT] = found;
        let keep = if !is_empty(&latest.values[L::LOCAL_CURRENT])
            && is_empty(&latest.values[L::LOCAL_PREVIOUS])
        {
            L::LOCAL_PREVIOUS
        } else {
            L::LOCAL_CURRENT
        };
        next.values[keep] = *cached;
        changed = true;
        Some(next)
    });
    changed
}
