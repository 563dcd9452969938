//! [`RedisNonceSource`]: one random nonce per window, shared by every replica through Redis.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use redis::{ErrorKind, RedisError};
use time::Duration;

use super::commands::{MAX_TTL_MS, set_and_get};
use super::connection::{Backoff, CallError, Connector, Wait};
use super::error::RedisSourceError;
use super::health::Health;
use super::keys;
use crate::clock::{Clock, ClockReading, SystemClock};
use crate::ct::{self, Packed};
use crate::nonce::Nonce;
use crate::rotation::Rotation;
use crate::source::{NonceCheck, NonceSource};
use crate::window_cell::{Slots, WindowCell};

mod recheck;

/// The shared (Redis) value of the window the cell is in.
const SHARED_CURRENT: usize = 0;
/// The shared value of the window before.
const SHARED_PREVIOUS: usize = 1;
/// The shared value of the window after, once prefetched.
const SHARED_NEXT: usize = 2;
/// This replica's own fallback for the window the cell is in, made only when Redis failed.
const LOCAL_CURRENT: usize = 3;
/// This replica's fallback of the window before.
const LOCAL_PREVIOUS: usize = 4;
pub(super) const SLOTS: usize = 5;

/// A nonce source shared by many replicas through one Redis server.
///
/// Time is cut into [`Rotation`] windows as for
/// [`InMemoryNonceSource`](crate::InMemoryNonceSource). For each window, the first replica that
/// needs a value stores a fresh random nonce (256 bits from the OS CSPRNG) under
/// `{prefix}:{label}:nonce:{window}` with `SET key value NX PX ttl`, so exactly one value wins;
/// every replica then reads that winner with `GET`, in the same round trip. The key expires once
/// no replica can still accept it (three windows after it was written, at most).
///
/// # Cost per request: no Redis call in steady state
///
/// A window's value never changes, so each replica caches the current, previous and next values
/// in a lock-free cell (the same one the in-memory source uses: readers write no shared memory).
/// [`check`](NonceSource::check) and [`issue`](NonceSource::issue) read that cell; they reach
/// for Redis only to fill a slot that is empty, and to re-read the current value every couple
/// of seconds (see "When Redis loses its data" below):
///
/// - **prefetch**: during the last [`prefetch_lead`](super::RedisNonceSourceBuilder::prefetch_lead) of
///   a window (default: 5 s, or a quarter of the interval if shorter), one call fetches the next
///   window's value. It only *tries* the connection: if another thread is using it, the call
///   goes on without waiting. A replica whose clock runs a little ahead hands out the next value
///   early, and a replica that prefetched accepts it as current.
/// - **window change without a prefetched value** (no traffic during the lead, or Redis failed):
///   the first call of the new window fetches the value, and calls arriving meanwhile wait for it.
///
/// So a replica makes at most two round trips per window (two or three commands each) for its
/// values, plus one re-read per [`recheck_interval`](Self::recheck_interval) (see below),
/// whatever its request rate; call [`refresh`](Self::refresh) from a periodic task (say every
/// second) and request threads practically never make one.
///
/// # When a call blocks, and for how long at most
///
/// Only a call that finds the current window's value missing waits for Redis. One Redis call is
/// bounded by the *call budget*, `connect_timeout + 4 × io_timeout` (a dead reused connection,
/// then a reconnect and a retry), 650 ms with the defaults; a waiting thread queues for the
/// connection for at most one more budget, then serves the fallback. Against a server that
/// refuses connections at once (a stopped Redis on a reachable host or socket), a failing call
/// returns in well under a millisecond. Host name resolution in the `redis` crate is not bounded;
/// give an IP address or a unix socket if that matters. The prefetch and the re-read below
/// never wait for the connection, but the request that makes one spends its round trip: at
/// most one call budget when Redis hangs, and the failure then starts the back-off.
///
/// # When Redis is down
///
/// A Redis outage never makes this source panic, and never makes it accept a claim it cannot
/// verify: it only accepts values it read from Redis or made itself.
///
/// - If the current window's value cannot be fetched, the replica makes a **local fallback**
///   nonce for the window, random, kept next to the shared slots. It hands that out and accepts
///   it (current, then previous, like any nonce). Other replicas do not know it, so a client
///   sent to another replica gets one `use_dpop_nonce` answer with that replica's nonce, and
///   succeeds on retry: an outage costs at worst an extra round trip per client.
/// - Failures start a back-off (doubling from 100 ms to 2 s by default): while it runs, calls
///   serve the fallback without touching Redis, so an outage does not make every request pay a
///   timeout. [`health`](Self::health) reports [`Health::Unavailable`] with the last error.
/// - **Convergence**: while the replica serves its fallback, the first call after each back-off
///   delay tries Redis again, and the first call in each new window tries regardless of the
///   back-off. So once Redis answers again, the replica is back on the shared value at the
///   first call after at most one back-off maximum (2 s by default), and at the latest at its
///   first call in the next window. From then on it hands out the shared value; a client still
///   holding the fallback is accepted once more with the shared value in the answer
///   ([`NonceCheck::Previous`], RFC 9449 §8.2).
///
/// A value found in Redis that is not exactly what this crate writes (43 characters of
/// canonical unpadded base64url, as [`Nonce::generate`] makes them) is a failed call like an
/// outage, never a nonce: not handed out, not accepted, and [`health`](Self::health) shows it.
///
/// # When Redis loses its data: a re-read every couple of seconds
///
/// A Redis restarted without persistence (or flushed, or evicting keys) forgets the window's
/// value while replicas still cache it. A replica that fetches afterwards (a new one, say)
/// stores a new value, and a client sent back and forth between the two would be refused on
/// every request until the next window. So each replica re-reads the current window's key
/// every [`recheck_interval`](Self::recheck_interval) (the back-off maximum, and at least one
/// second: 2 s by default), with the same `SET NX` then `GET`, offering the value it cached:
///
/// - If the key is gone, the first replica to re-read puts its value back, and every replica,
///   new ones included, settles on the value the old replicas already hand out: clients notice
///   nothing. This is why the re-read writes rather than only reads: with reads alone, old
///   replicas would keep their value and the first new one would impose another.
/// - If another value got there first, the replica moves over to it (every replica ends up on
///   the one value in Redis) and keeps accepting the value it had as a previous value: accepted
///   with the new one in the answer (RFC 9449 §8.2), until its next window ends.
///
/// [`refresh`](Self::refresh) always re-reads. On the request path, a re-read is due once the
/// interval has passed on the source's clock since the last one, and runs in the first
/// [`issue`](NonceSource::issue) or the first check that matches no value (a refusal, which is
/// what a client caught between two values gets), as a non-blocking try like the prefetch:
/// one thread at a time, never waiting for the connection, never during a back-off. A check
/// that accepts a claim in steady state still makes no Redis call. A claim refused only
/// because the re-read was due is compared again after it, so the first client to bring the
/// other value is accepted at once.
///
/// So once Redis answers again, a client going back and forth between replicas is refused
/// for at most about one recheck interval (measured: 2 s with the defaults, whether Redis was
/// flushed or restarted empty), even without `refresh`; a replica that had no request for
/// longer re-reads at its first one.
///
/// # Clocks
///
/// Replicas must agree on the time to within the prefetch lead: a replica ahead by less than
/// that hands out the next window's value, which the others already know; a replica behind
/// hands out a value the others still accept as previous. A replica whose clock is off by more
/// than that makes its clients retry more often, but never accepts anything it did not fetch
/// or make.
///
/// # Example
///
/// ```no_run
/// use dpop_nonce::redis::RedisNonceSource;
/// use dpop_nonce::{NonceCheck, NonceSource, NonceValidator};
/// use time::Duration;
///
/// let client = redis::Client::open("redis://10.0.0.5:6379")?;
/// let source = RedisNonceSource::builder(client, "as")
///     .prefix("myapp:dpop")
///     .rotation(Duration::minutes(5))
///     .build()?;
/// let nonce = source.issue();
/// assert_eq!(source.check(nonce.as_str()), NonceCheck::Current);
/// let validator = NonceValidator::new(source);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisNonceSource<C = SystemClock> {
    pub(super) clock: C,
    pub(super) rotation: Rotation,
    pub(super) prefix: String,
    pub(super) label: String,
    pub(super) prefetch_lead: Duration,
    pub(super) connector: Connector,
    pub(super) cell: WindowCell<SLOTS>,
    /// The latest window for which a fetch was tried regardless of the back-off.
    pub(super) forced_window: AtomicI64,
}

impl<C: Clock> RedisNonceSource<C> {
    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The longest time a nonce of this source is accepted: two intervals plus the prefetch lead
    /// (the next window's value is accepted that much early). Use it as the entry lifetime of
    /// a replay cache.
    pub fn max_nonce_lifetime(&self) -> Duration {
        self.rotation
            .max_nonce_lifetime()
            .saturating_add(self.prefetch_lead)
    }

    /// How long before a window starts its value is fetched.
    pub fn prefetch_lead(&self) -> Duration {
        self.prefetch_lead
    }

    /// The outcome of the last Redis call (see [`Health`] for how fresh it is).
    pub fn health(&self) -> Health {
        self.connector.health()
    }

    /// `true` when the last Redis call succeeded. One atomic load.
    pub fn is_healthy(&self) -> bool {
        self.connector.is_healthy()
    }

    /// `true` when the nonce handed out now is this replica's local fallback rather than the
    /// shared value (Redis failed for the current window). Does not call Redis.
    pub fn is_serving_fallback(&self) -> bool {
        let slots = self.cell.read();
        ct::is_empty(&slots.values[SHARED_CURRENT])
            && self.rotation.contains(slots.window, self.clock.unix_time())
    }

    /// Fetches whatever is missing for the current and the next window, and otherwise re-reads
    /// the current window's value (see "When Redis loses its data" above), ignoring the
    /// back-off and waiting at most one call budget for the connection. Call it from a periodic
    /// task (every second or few) so that request threads never wait for Redis and replicas
    /// agree again quickly after Redis lost its data.
    ///
    /// Always makes at least one round trip, so its outcome is a fresh probe of Redis:
    /// [`health`](Self::health) and [`last_contact`](Self::last_contact) are up to date after
    /// each call, and an endpoint built on them reports an outage within one refresh period
    /// (see [`Health`] for how to wire one).
    ///
    /// # Errors
    ///
    /// [`RedisSourceError::Unreachable`] when Redis failed (the source serves its fallback), or
    /// [`RedisSourceError::Busy`] when another thread held the connection for a whole budget.
    pub fn refresh(&self) -> Result<(), RedisSourceError> {
        let slots = self.rotate_to(self.clock.read());
        if ct::is_empty(&slots.values[SHARED_CURRENT]) {
            let want_previous = ct::is_empty(&slots.values[SHARED_PREVIOUS]);
            self.fetch(slots.window, want_previous, Wait::Bounded, Backoff::Ignore)
                .map_err(public_error)?;
        } else {
            self.recheck_now(&slots).map_err(public_error)?;
        }
        let slots = self.cell.read();
        if ct::is_empty(&slots.values[SHARED_NEXT])
            && let Some(next) = slots.window.checked_add(1)
        {
            self.fetch(next, false, Wait::Bounded, Backoff::Ignore)
                .map_err(public_error)?;
        }
        Ok(())
    }

    /// Fetches the value of the window the source starts in, ignoring the back-off: the
    /// start-up check of [`RedisNonceSourceBuilder::build`](super::RedisNonceSourceBuilder::build).
    pub(super) fn fetch_first(&self) -> Result<(), RedisSourceError> {
        let window = self.cell.read().window;
        self.forced_window.store(window, Ordering::Release);
        self.fetch(window, true, Wait::Bounded, Backoff::Ignore)
            .map_err(public_error)
    }

    /// The slots for the window of `now` (a reading of the source's clock), rotating locally
    /// first (no Redis call).
    fn rotate_to(&self, now: ClockReading) -> Slots<SLOTS> {
        self.cell.forward_to(now, |latest, target| {
            let mut next = Slots::empty(target);
            if latest.window.checked_add(1) == Some(target) {
                next.values[SHARED_CURRENT] = latest.values[SHARED_NEXT];
                next.values[SHARED_PREVIOUS] = latest.values[SHARED_CURRENT];
                next.values[LOCAL_PREVIOUS] = latest.values[LOCAL_CURRENT];
            }
            next
        })
    }

    /// The slots to answer from now: rotated, with the current value filled in (shared or
    /// fallback), and the next value prefetched when its time has come.
    #[inline]
    pub(super) fn slots_now(&self) -> Slots<SLOTS> {
        let now = self.clock.read();
        let slots = self.rotate_to(now);
        if ct::is_empty(&slots.values[SHARED_CURRENT]) {
            return self.fill_current(slots);
        }
        if ct::is_empty(&slots.values[SHARED_NEXT]) {
            let prefetch_from = slots.end.saturating_sub(self.prefetch_lead);
            // Within the stored window (the clock did not step back) and in its last
            // `prefetch_lead`: time to fetch the next value.
            let passed = now.marks_reached(&[slots.start, prefetch_from, slots.end]);
            if passed == 2
                && let Some(next) = slots.window.checked_add(1)
            {
                // Best effort: never waits for another thread, never during a back-off.
                let _ = self.fetch(next, false, Wait::No, Backoff::Respect);
            }
        }
        self.recheck_if_due(now, slots)
    }

    /// The current window has no shared value yet: fetch it (bounded), or fall back.
    #[cold]
    fn fill_current(&self, slots: Slots<SLOTS>) -> Slots<SLOTS> {
        let window = slots.window;
        // The first attempt in each window ignores the back-off, so a replica converges at
        // its first call in the next window at the latest.
        let backoff = if self.forced_window.fetch_max(window, Ordering::AcqRel) < window {
            Backoff::Ignore
        } else {
            Backoff::Respect
        };
        let want_previous = ct::is_empty(&slots.values[SHARED_PREVIOUS]);
        let _ = self.fetch(window, want_previous, Wait::Bounded, backoff);
        let latest = self.cell.read();
        if !ct::is_empty(&latest.values[SHARED_CURRENT])
            || !ct::is_empty(&latest.values[LOCAL_CURRENT])
        {
            return latest;
        }
        self.cell.update(|latest| {
            (ct::is_empty(&latest.values[SHARED_CURRENT])
                && ct::is_empty(&latest.values[LOCAL_CURRENT]))
            .then(|| {
                let mut next = *latest;
                next.values[LOCAL_CURRENT] = ct::fresh_packed();
                next
            })
        })
    }

    /// One round trip: create-if-absent and read `window`'s value (and read the window before,
    /// when asked), then store what came back.
    fn fetch(
        &self,
        window: i64,
        want_previous: bool,
        wait: Wait,
        backoff: Backoff,
    ) -> Result<(), CallError> {
        // Checked before any allocation or random draw, so an outage costs requests nothing.
        if backoff == Backoff::Respect && self.connector.backing_off() {
            return Err(CallError::BackingOff);
        }
        let key = keys::nonce_key(&self.prefix, &self.label, window);
        let previous_key = want_previous
            .then(|| window.checked_sub(1))
            .flatten()
            .map(|previous| keys::nonce_key(&self.prefix, &self.label, previous));
        let ttl_ms = self.ttl_ms(window);
        let candidate = Nonce::generate();
        self.connector.call(wait, backoff, |connection| {
            // Threads that queued for the connection at a window change find the work done
            // by the first one, and send nothing. So the values are stored before the
            // connection is released.
            if self.has_shared(window) {
                return Ok(());
            }
            let (value, previous) = set_and_get(
                connection,
                &key,
                &candidate,
                ttl_ms,
                previous_key.as_deref(),
            )?;
            self.store(window, value);
            self.fetched(window);
            if let (Some(previous), Some(before)) = (previous, window.checked_sub(1)) {
                self.store(before, previous);
            }
            Ok(())
        })
    }

    /// `true` when `window`'s shared value is cached (as current or as next).
    fn has_shared(&self, window: i64) -> bool {
        let latest = self.cell.read();
        if latest.window == window {
            !ct::is_empty(&latest.values[SHARED_CURRENT])
        } else if latest.window.checked_add(1) == Some(window) {
            !ct::is_empty(&latest.values[SHARED_NEXT])
        } else {
            false
        }
    }

    /// Puts `window`'s shared value in whichever slot it belongs to now, if that slot is empty.
    fn store(&self, window: i64, value: Packed) {
        self.cell.update(|latest| {
            let slot = if latest.window == window {
                SHARED_CURRENT
            } else if latest.window.checked_add(1) == Some(window) {
                SHARED_NEXT
            } else if window.checked_add(1) == Some(latest.window) {
                SHARED_PREVIOUS
            } else {
                return None;
            };
            (ct::is_empty(&latest.values[slot])).then(|| {
                let mut next = *latest;
                next.values[slot] = value;
                next
            })
        });
    }

    /// Milliseconds the key of `window` must live: until no replica can accept the value any
    /// more (the end of `window + 1`), plus one interval for clocks that lag.
    fn ttl_ms(&self, window: i64) -> i64 {
        let until = self
            .rotation
            .window_start(window.saturating_add(2))
            .saturating_sub(self.clock.unix_time())
            .saturating_add(self.rotation.interval());
        let ms = until.whole_milliseconds().saturating_add(1);
        i64::try_from(ms).unwrap_or(i64::MAX).clamp(1, MAX_TTL_MS)
    }
}

/// The public face of a failed call.
fn public_error(err: CallError) -> RedisSourceError {
    match err {
        CallError::Busy => RedisSourceError::Busy,
        CallError::BackingOff => RedisSourceError::Unreachable(RedisError::from((
            ErrorKind::Io,
            "Redis failed recently; waiting for the back-off to run out",
        ))),
        CallError::Redis(err) => RedisSourceError::Unreachable(err),
    }
}

impl<C: Clock> NonceSource for RedisNonceSource<C> {
    fn issue(&self) -> Nonce {
        let slots = self.slots_now();
        let slot = if !ct::is_empty(&slots.values[SHARED_CURRENT]) {
            SHARED_CURRENT
        } else {
            LOCAL_CURRENT
        };
        match ct::unpack(&slots.values[slot]) {
            Some(nonce) => nonce,
            // `slots_now` always leaves one of the two filled; should that ever fail, make a
            // fallback this replica can verify rather than an unverifiable value.
            None => {
                let filled = self.fill_current(self.cell.read());
                ct::unpack(&filled.values[SHARED_CURRENT])
                    .or_else(|| ct::unpack(&filled.values[LOCAL_CURRENT]))
                    .unwrap_or_else(Nonce::generate)
            }
        }
    }

    #[inline]
    fn check(&self, claim: &str) -> NonceCheck {
        // The clock first, so that the comparison runs while the clock is being read (see
        // `ClockReading`).
        let now = self.clock.read();
        let Some(claim) = ct::pack(claim.as_bytes()) else {
            return NonceCheck::Unknown;
        };
        // Compare straight from the cache. Anything other than the steady state (inside the
        // window, before the prefetch time, with the shared value present) goes through
        // `slots_now`, which rotates, fetches or prefetches, and the claim is compared again.
        let mut compared = self.cell.compare(&claim);
        let passed = now.marks_reached(&[compared.start(), compared.steady_end()]);
        if passed != 1 || !compared.filled[SHARED_CURRENT] {
            self.slots_now();
            compared = self.cell.compare(&claim);
        }
        if !compared.hits.contains(&true) && self.recheck_when_due(now) {
            compared = self.cell.compare(&claim);
        }
        let hit = compared.hits;
        let serving_shared = compared.filled[SHARED_CURRENT];
        // The fallback is current only while it is what this replica hands out; once the
        // shared value is back, a client holding the fallback is moved over (RFC 9449 §8.2).
        if hit[SHARED_CURRENT] | hit[SHARED_NEXT] | (hit[LOCAL_CURRENT] & !serving_shared) {
            NonceCheck::Current
        } else if hit[SHARED_PREVIOUS] | hit[LOCAL_PREVIOUS] | hit[LOCAL_CURRENT] {
            NonceCheck::Previous
        } else {
            NonceCheck::Unknown
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RedisNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.cell.read();
        f.debug_struct("RedisNonceSource")
            .field("clock", &self.clock)
            .field("rotation", &self.rotation.interval())
            .field("prefix", &self.prefix)
            .field("label", &self.label)
            .field("window", &stored.window)
            .field(
                "serving_fallback",
                &(ct::is_empty(&stored.values[SHARED_CURRENT])),
            )
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}
