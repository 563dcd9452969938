//! Re-reading the current window's shared value on a schedule, so that replicas which cached
//! different values (Redis lost its data mid-window) agree again within seconds; and the time
//! of the last contact with Redis, for health checks.

use std::time::{Duration as StdDuration, Instant};

use super::{LOCAL_CURRENT, LOCAL_PREVIOUS, RedisNonceSource, SHARED_CURRENT, SLOTS};
use crate::clock::{Clock, ClockReading};
use crate::ct::{self, Packed};
use crate::redis::commands::set_and_get;
use crate::redis::connection::{Backoff, CallError, Wait};
use crate::redis::keys;
use crate::window_cell::Slots;

impl<C: Clock> RedisNonceSource<C> {
    /// When a call to Redis last succeeded (any call: a fetch, a prefetch, a re-read or a
    /// [`refresh`](Self::refresh)); `None` if none has yet. Does not call Redis.
    ///
    /// In steady state a check makes no Redis call, so [`health`](Self::health) alone can stay
    /// green long after Redis died. Call [`refresh`](Self::refresh) every few seconds from a
    /// background task (it always makes one round trip) and report unhealthy when the last
    /// contact is older than a few refresh periods; see [`Health`](super::Health) for an
    /// example.
    pub fn last_contact(&self) -> Option<Instant> {
        self.connector.last_contact()
    }

    /// How often the current window's value is re-read from Redis (see "When Redis loses its
    /// data" in the type's docs): the back-off maximum, and at least one second. 2 s by
    /// default.
    pub fn recheck_interval(&self) -> StdDuration {
        self.connector.config().recheck_every()
    }

    /// From the request path: re-reads the current window's value if the recheck interval has
    /// passed on the source's clock, without waiting for the connection and never during a
    /// back-off. Returns the slots to answer from (the latest, if the re-read changed them).
    #[inline]
    pub(super) fn recheck_if_due(&self, now: ClockReading, slots: Slots<SLOTS>) -> Slots<SLOTS> {
        if self.recheck_when_due(now) {
            self.cell.read()
        } else {
            slots
        }
    }

    /// The re-read of [`recheck_if_due`](Self::recheck_if_due), also run by a check that matched
    /// nothing, so that a claim of the value another replica stored meanwhile is accepted at
    /// once rather than refused one last time. `true` when the slots changed (compare the
    /// claim again).
    #[inline]
    pub(super) fn recheck_when_due(&self, now: ClockReading) -> bool {
        self.connector.recheck.claim(now, self.recheck_interval()) && self.recheck_claimed()
    }

    /// The re-read of the request path, once claimed. `true` when it moved this replica over
    /// to another value.
    #[cold]
    #[inline(never)]
    fn recheck_claimed(&self) -> bool {
        matches!(
            self.recheck(&self.cell.read(), Wait::No, Backoff::Respect),
            Ok(true)
        )
    }

    /// Moves the schedule on: the next re-read is due one interval from now.
    fn arm_recheck(&self) {
        self.connector
            .recheck
            .push(self.clock.read(), self.recheck_interval());
    }

    /// A fetch of `window` just succeeded. For the current window that was a re-read (the same
    /// `SET NX` then `GET`), so the next one is due an interval later. Called while the fetch
    /// still holds the connection, so threads that queued behind it do not re-read at once.
    pub(super) fn fetched(&self, window: i64) {
        if self.cell.read().window == window {
            self.arm_recheck();
        }
    }

    /// From [`refresh`](Self::refresh): re-reads the current window's value now, waiting at
    /// most one call budget for the connection and ignoring the back-off, and moves the
    /// schedule on so that request threads do not repeat it.
    pub(super) fn recheck_now(&self, slots: &Slots<SLOTS>) -> Result<(), CallError> {
        self.arm_recheck();
        self.recheck(slots, Wait::Bounded, Backoff::Ignore)
            .map(|_| ())
    }

    /// One round trip, `SET key cached NX PX ttl` then `GET key`: puts the cached value back if
    /// Redis lost it, and reads the value every replica now agrees on. `Ok(true)` when that
    /// value differs from the cached one and this replica moved over to it.
    fn recheck(
        &self,
        slots: &Slots<SLOTS>,
        wait: Wait,
        backoff: Backoff,
    ) -> Result<bool, CallError> {
        let cached = slots.values[SHARED_CURRENT];
        let Some(nonce) = ct::unpack(&cached) else {
            // Nothing shared to re-read: the fallback path fetches instead.
            return Ok(false);
        };
        let key = keys::nonce_key(&self.prefix, &self.label, slots.window);
        let ttl_ms = self.ttl_ms(slots.window);
        self.connector.call(wait, backoff, |connection| {
            let (found, _) = set_and_get(connection, &key, &nonce, ttl_ms, None)?;
            Ok(self.adopt(slots.window, &cached, found))
        })
    }

    /// Redis holds `found` for `window` while this replica cached `cached`: hand out `found`
    /// from now on, and keep accepting `cached` as a previous value (with a `DPoP-Nonce`
    /// refresh, RFC 9449 §8.2) in a fallback slot, which rotates out like a fallback: after
    /// the next window. A fallback made earlier in this window keeps its slot if the other one
    /// is free; otherwise the replaced value takes its place, since it was handed out later.
    /// `true` when the slots changed.
    fn adopt(&self, window: i64, cached: &Packed, found: Packed) -> bool {
        if found == *cached {
            return false;
        }
        let mut changed = false;
        self.cell.update(|latest| {
            if latest.window != window || latest.values[SHARED_CURRENT] != *cached {
                return None;
            }
            let mut next = *latest;
            next.values[SHARED_CURRENT] = found;
            let keep = if !ct::is_empty(&latest.values[LOCAL_CURRENT])
                && ct::is_empty(&latest.values[LOCAL_PREVIOUS])
            {
                LOCAL_PREVIOUS
            } else {
                LOCAL_CURRENT
            };
            next.values[keep] = *cached;
            changed = true;
            Some(next)
        });
        changed
    }
}
