//! One reused Redis connection behind a mutex, with bounded timeouts, a reconnect back-off and
//! a health record.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{RedisError, RedisResult};

use super::endpoint::{Link, RedisEndpoint};
use super::health::Health;
use crate::clock::ClockReading;
use crate::error::ConfigError;

/// The shortest interval between two re-reads of a cached value (see
/// [`ConnectorConfig::recheck_every`]).
const MIN_RECHECK: Duration = Duration::from_secs(1);

/// Timeouts and back-off shared by the Redis source and the Redis replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectorConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    /// Added to `io_timeout` for reads only: the longest a command may block on the server
    /// (the replay cache's `WAIT`). Zero by default.
    pub(crate) read_slack: Duration,
}

impl ConnectorConfig {
    pub(crate) const DEFAULT: Self = Self {
        connect_timeout: Duration::from_millis(250),
        io_timeout: Duration::from_millis(100),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        read_slack: Duration::ZERO,
    };

    /// Rejects zero timeouts (which the standard library refuses as socket timeouts) and a
    /// back-off whose bounds are reversed.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::NonPositiveTimeout { which: "connect" });
        }
        if self.io_timeout.is_zero() {
            return Err(ConfigError::NonPositiveTimeout {
                which: "read/write",
            });
        }
        if self.backoff_min > self.backoff_max {
            return Err(ConfigError::BackoffReversed);
        }
        Ok(())
    }

    /// How often a user of the connection re-reads what it cached from Redis: the back-off
    /// maximum (the longest a failing replica goes without trying Redis), at least one second.
    pub(crate) fn recheck_every(&self) -> Duration {
        self.backoff_max.max(MIN_RECHECK)
    }

    /// The longest one call can take once it holds the connection: a stale connection's write
    /// and read, a reconnect, and the retried write and read.
    pub(crate) fn call_budget(&self) -> Duration {
        self.connect_timeout
            .saturating_add(self.io_timeout.saturating_mul(4))
            .saturating_add(self.read_slack.saturating_mul(2))
    }

    /// The read timeout of a connection: `io_timeout` plus the read slack.
    pub(crate) fn read_timeout(&self) -> Duration {
        self.io_timeout.saturating_add(self.read_slack)
    }
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The connection setters of every Redis builder (a field `connector: ConnectorConfig`), written
/// once. Durations are `time::Duration`, as everywhere in the crate's API; a negative one counts
/// as zero, which `build` refuses.
macro_rules! connector_setters {
    () => {
        $crate::source::redis::connection::connector_setters!(connector);
    };
    ($($field:ident).+) => {
        /// Sets the timeout for opening a connection, including its handshake (default 250 ms).
        pub fn connect_timeout(mut self, timeout: ::time::Duration) -> Self {
            self.$($field).+.connect_timeout = $crate::source::redis::connection::to_std(timeout);
            self
        }

        /// Sets the timeout of each socket read and write (default 100 ms).
        pub fn io_timeout(mut self, timeout: ::time::Duration) -> Self {
            self.$($field).+.io_timeout = $crate::source::redis::connection::to_std(timeout);
            self
        }

        /// Sets the reconnect back-off: after a failure, Redis is not tried again for `min`,
        /// doubling per further failure up to `max` (default 100 ms to 2 s).
        pub fn backoff(mut self, min: ::time::Duration, max: ::time::Duration) -> Self {
            self.$($field).+.backoff_min = $crate::source::redis::connection::to_std(min);
            self.$($field).+.backoff_max = $crate::source::redis::connection::to_std(max);
            self
        }
    };
}
pub(crate) use connector_setters;

/// `duration` as a standard one; zero when negative.
pub(crate) fn to_std(duration: time::Duration) -> Duration {
    Duration::try_from(duration).unwrap_or(Duration::ZERO)
}

/// How long a caller is willing to wait for the connection while another thread uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Give up at once if the connection is busy.
    No,
    /// Wait at most one call budget.
    Bounded,
}

/// Whether a call honours the reconnect back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    /// Fail fast while the back-off runs.
    Respect,
    /// Try anyway (an explicit refresh, or the first attempt of a new window).
    Ignore,
}

/// Why a call did not reach Redis or did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Another thread held the connection for longer than the caller would wait.
    Busy,
    /// A recent failure started a back-off that has not run out yet.
    BackingOff,
    /// Redis (or the network) failed, or answered something unusable.
    Redis(RedisError),
}

/// A lazily (re)connected Redis connection, reused across calls.
pub(crate) struct Connector {
    endpoint: RedisEndpoint,
    config: ConnectorConfig,
    connection: Mutex<Option<Link>>,
    record: Record,
    /// When the user of the connection next re-reads what it cached (the nonce source; the
    /// replay cache caches nothing and leaves it alone).
    pub(crate) recheck: Schedule,
}

impl Connector {
    pub(crate) fn new(endpoint: RedisEndpoint, config: ConnectorConfig) -> Self {
        Self {
            endpoint,
            config,
            connection: Mutex::new(None),
            record: Record::new(config),
            recheck: Schedule::new(),
        }
    }

    /// The timeouts and back-off the connector was made with.
    pub(crate) fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// When the last call succeeded; `None` before the first success.
    pub(crate) fn last_contact(&self) -> Option<Instant> {
        self.record.last_contact()
    }

    /// `true` while a back-off runs. One atomic load and one monotonic clock read.
    pub(crate) fn backing_off(&self) -> bool {
        self.record.backing_off()
    }

    /// `true` when the last call succeeded (or none failed yet).
    pub(crate) fn is_healthy(&self) -> bool {
        self.record.is_healthy()
    }

    /// The health record: the outcome of the last call that reached for Redis.
    pub(crate) fn health(&self) -> Health {
        self.record.health()
    }

    /// Runs `op` on the shared connection, connecting first if needed.
    ///
    /// A connection that fails is dropped, never reused: after a timeout its stream may still
    /// carry a late reply. When a reused connection turns out to be dead (the server restarted,
    /// say), one fresh connection is tried at once.
    pub(crate) fn call<T>(
        &self,
        wait: Wait,
        backoff: Backoff,
        mut op: impl FnMut(&mut Link) -> RedisResult<T>,
    ) -> Result<T, CallError> {
        if backoff == Backoff::Respect && self.backing_off() {
            return Err(CallError::BackingOff);
        }
        let guard = match wait {
            Wait::No => self.connection.try_lock(),
            Wait::Bounded => self.connection.try_lock_for(self.config.call_budget()),
        };
        let Some(mut slot) = guard else {
            return Err(CallError::Busy);
        };
        // A thread that held the lock before us may have just failed and started a back-off.
        if backoff == Backoff::Respect && self.backing_off() {
            return Err(CallError::BackingOff);
        }
        let outcome = self.call_locked(&mut slot, &mut op);
        drop(slot);
        match outcome {
            Ok(value) => {
                self.record.success();
                Ok(value)
            }
            Err(err) => {
                self.record.failure(&err);
                Err(CallError::Redis(err))
            }
        }
    }

    fn call_locked<T>(
        &self,
        slot: &mut Option<Link>,
        op: &mut impl FnMut(&mut Link) -> RedisResult<T>,
    ) -> RedisResult<T> {
        if let Some(connection) = slot.as_mut() {
            match op(connection) {
                Ok(value) => return Ok(value),
                Err(err) => {
                    *slot = None;
                    if err.is_timeout() || !err.is_connection_dropped() {
                        return Err(err);
                    }
                }
            }
        }
        let mut connection = self.connect()?;
        let value = op(&mut connection)?;
        *slot = Some(connection);
        Ok(value)
    }

    fn connect(&self) -> RedisResult<Link> {
        self.endpoint.connect(
            self.config.connect_timeout,
            self.config.io_timeout,
            self.config.read_timeout(),
        )
    }
}

/// The outcome of the calls to one Redis server: the back-off, the health record and when a
/// call last succeeded. Kept by the synchronous connector and by the async replay cache.
pub(crate) struct Record {
    config: ConnectorConfig,
    /// Reference point for the monotonic times below.
    epoch: Instant,
    /// Nanoseconds after `epoch` before which calls that respect the back-off fail fast.
    retry_at: AtomicU64,
    failures: AtomicU32,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Nanoseconds after `epoch` when the last call succeeded (at least 1); 0 before any.
    last_success: AtomicU64,
}

impl Record {
    pub(crate) fn new(config: ConnectorConfig) -> Self {
        Self {
            config,
            epoch: Instant::now(),
            retry_at: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            last_success: AtomicU64::new(0),
        }
    }

    /// When the last call succeeded; `None` before the first success.
    pub(crate) fn last_contact(&self) -> Option<Instant> {
        match self.last_success.load(Ordering::Acquire) {
            0 => None,
            nanos => self.epoch.checked_add(Duration::from_nanos(nanos)),
        }
    }

    /// `true` while a back-off runs. One atomic load and one monotonic clock read.
    pub(crate) fn backing_off(&self) -> bool {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        retry_at != 0 && self.elapsed_nanos() < retry_at
    }

    /// `true` when the last call succeeded (or none failed yet).
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// The health record: the outcome of the last call that reached for Redis.
    pub(crate) fn health(&self) -> Health {
        if self.is_healthy() {
            return Health::Healthy;
        }
        let last_error = self
            .last_error
            .lock()
            .clone()
            .unwrap_or_else(|| "unknown Redis error".to_owned());
        Health::Unavailable {
            consecutive_failures: self.failures.load(Ordering::Acquire),
            last_error,
        }
    }

    /// A call succeeded: healthy again, no back-off.
    pub(crate) fn success(&self) {
        self.last_success
            .fetch_max(self.elapsed_nanos().max(1), Ordering::AcqRel);
        self.failures.store(0, Ordering::Release);
        self.retry_at.store(0, Ordering::Release);
        self.healthy.store(true, Ordering::Release);
    }

    /// A call failed with `err`: unhealthy, and the back-off grows.
    pub(crate) fn failure(&self, err: &dyn std::fmt::Display) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let delay = backoff_delay(&self.config, failures);
        let retry_at = self
            .elapsed_nanos()
            .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX))
            .max(1);
        *self.last_error.lock() = Some(err.to_string());
        self.retry_at.store(retry_at, Ordering::Release);
        self.healthy.store(false, Ordering::Release);
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

/// A deadline on the caller's clock that one caller at a time claims once it has passed: when a
/// nonce source next re-reads the value it cached. Kept in whole milliseconds since the UNIX
/// epoch; `0` until the first claim arms it.
pub(crate) struct Schedule {
    at_ms: AtomicI64,
}

impl Schedule {
    const UNARMED: i64 = 0;

    fn new() -> Self {
        Self {
            at_ms: AtomicI64::new(Self::UNARMED),
        }
    }

    /// `true` for exactly one caller once the deadline has passed at `now`; that caller moves
    /// it to `every` after `now`. The first call only arms the schedule (the value was just
    /// fetched). A reading more than one `every` before the deadline was set means the clock
    /// stepped back; that counts as passed, so a clock step never stops the schedule. One
    /// atomic load and two comparisons when nothing is due.
    #[inline]
    pub(crate) fn claim(&self, now: ClockReading, every: Duration) -> bool {
        let at_ms = self.at_ms.load(Ordering::Acquire);
        if !Self::passed(at_ms, now, every) {
            return false;
        }
        self.claim_from(at_ms, now, every)
    }

    /// Whether a [`claim`](Self::claim) at `now` could succeed (or would arm the schedule),
    /// without claiming anything. One atomic load.
    #[inline]
    pub(crate) fn is_due(&self, now: ClockReading, every: Duration) -> bool {
        Self::passed(self.at_ms.load(Ordering::Acquire), now, every)
    }

    /// `true` unless the deadline `at_ms` is armed and `now` is before it (and not so far
    /// before that the clock must have stepped back).
    #[inline]
    fn passed(at_ms: i64, now: ClockReading, every: Duration) -> bool {
        let at = time::Duration::milliseconds(at_ms);
        let every = to_time(every);
        let stepped_back_before = at.saturating_sub(every).saturating_sub(every);
        at_ms == Self::UNARMED || now.marks_reached(&[stepped_back_before, at]) != 1
    }

    #[cold]
    fn claim_from(&self, seen: i64, now: ClockReading, every: Duration) -> bool {
        let next = deadline_ms(now, every);
        self.at_ms
            .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && seen != Self::UNARMED
    }

    /// Moves the deadline to `every` after `now`, whatever it was: a re-read was just made.
    pub(crate) fn push(&self, now: ClockReading, every: Duration) {
        self.at_ms.store(deadline_ms(now, every), Ordering::Release);
    }
}

/// `every` after `now`, in whole milliseconds since the UNIX epoch (never the unarmed mark).
fn deadline_ms(now: ClockReading, every: Duration) -> i64 {
    let at = now.unix_time().saturating_add(to_time(every));
    let ms = i64::try_from(at.whole_milliseconds()).unwrap_or(i64::MAX);
    if ms == Schedule::UNARMED { 1 } else { ms }
}

/// A standard duration as a `time` one, saturating.
fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// The back-off after `failures` consecutive failures: the minimum, doubled per further
/// failure, capped at the maximum.
fn backoff_delay(config: &ConnectorConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    config
        .backoff_min
        .saturating_mul(1u32 << doublings)
        .min(config.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let config = ConnectorConfig::DEFAULT;
        assert_eq!(backoff_delay(&config, 1), Duration::from_millis(100));
        assert_eq!(backoff_delay(&config, 2), Duration::from_millis(200));
        assert_eq!(backoff_delay(&config, 5), Duration::from_millis(1600));
        assert_eq!(backoff_delay(&config, 6), Duration::from_secs(2));
        assert_eq!(backoff_delay(&config, u32::MAX), Duration::from_secs(2));
    }

    fn at(seconds: f64) -> ClockReading {
        ClockReading::since_epoch(time::Duration::seconds_f64(seconds))
    }

    #[test]
    fn the_schedule_arms_then_fires_once_per_interval() {
        let every = Duration::from_secs(2);
        let schedule = Schedule::new();
        assert!(
            !schedule.claim(at(1000.0), every),
            "the first call only arms it"
        );
        assert!(!schedule.claim(at(1001.9), every));
        assert!(schedule.claim(at(1002.0), every), "due after one interval");
        assert!(
            !schedule.claim(at(1002.0), every),
            "claimed by one caller only"
        );
        assert!(!schedule.claim(at(1003.5), every));
        assert!(schedule.claim(at(1010.0), every));
        schedule.push(at(1011.0), every);
        assert!(!schedule.claim(at(1012.5), every), "pushed by a re-read");
        assert!(schedule.claim(at(1013.0), every));
    }

    #[test]
    fn a_clock_that_steps_back_does_not_stop_the_schedule() {
        let every = Duration::from_secs(2);
        let schedule = Schedule::new();
        assert!(!schedule.claim(at(5000.0), every));
        assert!(
            !schedule.claim(at(4999.0), every),
            "a small step back waits"
        );
        assert!(
            schedule.claim(at(4000.0), every),
            "a step back of an hour is due"
        );
        assert!(!schedule.claim(at(4000.5), every));
        assert!(schedule.claim(at(4002.0), every));
    }

    #[test]
    fn the_recheck_interval_follows_the_backoff_with_a_floor() {
        assert_eq!(
            ConnectorConfig::DEFAULT.recheck_every(),
            Duration::from_secs(2)
        );
        let short = ConnectorConfig {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            ..ConnectorConfig::DEFAULT
        };
        assert_eq!(short.recheck_every(), Duration::from_secs(1));
    }

    #[test]
    fn config_validation() {
        assert!(ConnectorConfig::DEFAULT.validate().is_ok());
        let zero = ConnectorConfig {
            io_timeout: Duration::ZERO,
            ..ConnectorConfig::DEFAULT
        };
        assert!(zero.validate().is_err());
        let reversed = ConnectorConfig {
            backoff_min: Duration::from_secs(3),
            ..ConnectorConfig::DEFAULT
        };
        assert!(reversed.validate().is_err());
    }
}
