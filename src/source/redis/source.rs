//! [`RedisNonceSource`]: one random nonce per window, shared by every replica through Redis.

use std::fmt;

use time::Duration;

use super::connection::{Backoff, CallError, Wait};
use super::error::RedisSourceError;
use super::health::Health;
use super::shared::{SLOTS, Shared};
use crate::clock::{Clock, SystemClock};
use crate::rotation::Rotation;
use crate::source::engine::{Engine, is_empty};

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
/// [`check`](crate::NonceSource::check) and [`issue`](crate::NonceSource::issue) read that cell; they reach
/// for Redis only to fill a slot that is empty, and to re-read the current value every couple
/// of seconds (see "When Redis loses its data" below):
///
/// - **prefetch**: during the last [`lead`](super::RedisNonceSourceBuilder::lead) of a window
///   (default: 5 s, or a quarter of the interval if shorter), one call fetches the next window's
///   value. It only *tries* the connection: if another thread is using it, the call goes on
///   without waiting. A replica whose clock runs a little ahead hands out the next value early,
///   and a replica that prefetched accepts it as current during the lead, and only then.
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
/// **In an async server, no call blocks.** Built with
/// [`build_with_refresher`](super::RedisNonceSourceBuilder::build_with_refresher) (feature
/// `tokio`), the source leaves every Redis call to a background task: `check` and `issue` never
/// fetch, prefetch nor re-read, and a current window whose value the task has not fetched yet
/// is served from the local fallback below at once. See [`Refresher`](super::Refresher).
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
///   ([`NonceCheck::Previous`](crate::NonceCheck::Previous), RFC 9449 §8.2).
///
/// A value found in Redis that is not exactly what this crate writes (43 characters of
/// canonical unpadded base64url, as [`Nonce::generate`](crate::Nonce::generate) makes them) is a failed call like an
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
/// interval has passed on the source's clock since the last one, and runs in the first call
/// that leaves the steady path (a check that the current and previous values do not decide,
/// which is what a client caught between two values brings, or an issue at a window change),
/// as a non-blocking try like the prefetch: one thread at a time, never waiting for the
/// connection, never during a back-off. A check that accepts a claim in steady state makes no
/// Redis call. A claim is compared after the re-read, so the first client to bring the other
/// value is accepted at once.
///
/// So once Redis answers again, a client going back and forth between replicas is refused for
/// at most about one recheck interval (2 s with the defaults, whether Redis was flushed or
/// restarted empty), even without `refresh`.
///
/// # Clocks
///
/// Replicas must agree on the time to within the lead: a replica ahead by less than that hands
/// out the next window's value, which the others already know; a replica behind hands out a
/// value the others still accept as previous. A replica whose clock is off by more than that
/// makes its clients retry more often, but never accepts anything it did not fetch or make.
///
/// A window's value stays in Redis for a few windows, so a clock that steps back could find an
/// old value there again. The source never lets it count: it never fetches nor accepts the value
/// of a window more than one behind the latest window it has been in. After a step back of more
/// than one window it serves fresh local values, rotated every interval, until its clock is past
/// that latest window (see the in-memory source's clock policy, which it then follows).
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
    pub(super) engine: Engine<Shared, C, SLOTS>,
}

impl<C: Clock> RedisNonceSource<C> {
    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.engine.rotation()
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        self.engine.clock()
    }

    /// How long before a window starts its value is fetched, and accepted.
    pub fn lead(&self) -> Duration {
        self.engine.lead()
    }

    /// The outcome of the last Redis call (see [`Health`] for how fresh it is).
    pub fn health(&self) -> Health {
        self.engine.policy().connector.health()
    }

    /// When a call to Redis last succeeded (any call: a fetch, a prefetch, a re-read or a
    /// [`refresh`](Self::refresh)); `None` if none has yet. Does not call Redis.
    ///
    /// In steady state a check makes no Redis call, so [`health`](Self::health) alone can stay
    /// green long after Redis died. Call [`refresh`](Self::refresh) every few seconds from a
    /// background task (it always makes one round trip) and report unhealthy when the last
    /// contact is older than a few refresh periods; see [`Health`] for an example.
    pub fn last_contact(&self) -> Option<std::time::Instant> {
        self.engine.policy().connector.last_contact()
    }

    /// How often the current window's value is re-read from Redis (see "When Redis loses its
    /// data" above): the back-off maximum, and at least one second. 2 s by default.
    pub fn recheck_interval(&self) -> std::time::Duration {
        self.engine.policy().connector.config().recheck_every()
    }

    /// `true` when the last Redis call succeeded. One atomic load.
    pub fn is_healthy(&self) -> bool {
        self.engine.policy().connector.is_healthy()
    }

    /// `true` when the nonce handed out now is this replica's local fallback rather than the
    /// shared value (Redis failed for the current window). Does not call Redis.
    pub fn is_serving_fallback(&self) -> bool {
        let slots = self.engine.cell().read();
        is_empty(&slots.values[Shared::CURRENT])
            && self
                .rotation()
                .contains(slots.window, self.clock().unix_time())
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
        let cell = self.engine.cell();
        let Some(slots) = self.engine.slots_now() else {
            return Ok(());
        };
        let shared = self.engine.policy();
        let now = self.clock().read();
        if is_empty(&slots.values[Shared::CURRENT]) {
            if slots.window >= cell.floor() {
                shared
                    .fetch(cell, slots.window, now, Wait::Bounded, Backoff::Ignore)
                    .map_err(public_error)?;
            }
        } else {
            shared
                .recheck_now(cell, &slots, now)
                .map_err(public_error)?;
        }
        let slots = cell.read();
        if is_empty(&slots.values[Shared::NEXT])
            && let Some(next) = slots.window.checked_add(1)
        {
            shared
                .fetch(cell, next, now, Wait::Bounded, Backoff::Ignore)
                .map_err(public_error)?;
        }
        Ok(())
    }

    /// Fetches the value of the window the source starts in, ignoring the back-off: the
    /// start-up check of [`RedisNonceSourceBuilder::build`](super::RedisNonceSourceBuilder::build).
    pub(super) fn fetch_first(&self) -> Result<(), RedisSourceError> {
        let cell = self.engine.cell();
        let window = cell.read().window;
        let shared = self.engine.policy();
        shared.force(window);
        shared
            .fetch(
                cell,
                window,
                self.clock().read(),
                Wait::Bounded,
                Backoff::Ignore,
            )
            .map_err(public_error)
    }

    /// Moves to the clock's window and fills its value (shared, or the fallback): what
    /// [`build_with_fallback`](super::RedisNonceSourceBuilder::build_with_fallback) does once.
    pub(super) fn prepare_now(&self) {
        let _ = self.engine.slots_now();
    }
}

/// The public face of a failed call.
fn public_error(err: CallError) -> RedisSourceError {
    match err {
        CallError::Busy => RedisSourceError::Busy,
        CallError::BackingOff => RedisSourceError::Unreachable(redis::RedisError::from((
            redis::ErrorKind::Io,
            "Redis failed recently; waiting for the back-off to run out",
        ))),
        CallError::Redis(err) => RedisSourceError::Unreachable(err),
    }
}

crate::source::engine::engine_nonce_source!(RedisNonceSource);

impl<C: fmt::Debug> fmt::Debug for RedisNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.engine.cell().read();
        let shared = self.engine.policy();
        f.debug_struct("RedisNonceSource")
            .field("prefix", &shared.prefix)
            .field("label", &shared.label)
            .field(
                "serving_fallback",
                &is_empty(&stored.values[Shared::CURRENT]),
            )
            .field("connector", &shared.connector)
            .field("engine", &self.engine)
            .finish()
    }
}
