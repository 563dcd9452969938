//! Wall-clock time, injectable so tests never sleep.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use time::{Duration, OffsetDateTime};

mod reading;

pub use reading::ClockReading;
use reading::unix_time_of;

/// A source of wall-clock time.
///
/// Every nonce source reads time through a `Clock`, so rotation is computed, never driven by a
/// timer: there is no background thread to stall on a frozen host. Production code uses
/// [`SystemClock`]; tests use [`ManualClock`] and move time by hand.
///
/// The one required method returns time since the UNIX epoch as a [`time::Duration`], because
/// that is what window arithmetic needs and it is cheap to read; [`Clock::now`] gives the same
/// instant as an [`OffsetDateTime`].
///
/// ```
/// use dpop_nonce::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
/// clock.advance(Duration::minutes(5));
/// assert_eq!(clock.now(), datetime!(2026-01-01 00:05 UTC));
/// ```
pub trait Clock: Send + Sync + Debug {
    /// Time elapsed since 1970-01-01T00:00:00Z (negative before it).
    fn unix_time(&self) -> Duration;

    /// Reads the clock, for comparing with window bounds afterwards (see [`ClockReading`]).
    ///
    /// Nonce sources call this on every check, so it is on the hot path. The provided
    /// implementation wraps [`unix_time`](Clock::unix_time); [`SystemClock`] overrides it to
    /// keep the `SystemTime`, which skips a conversion that costs more than the rest of a check.
    ///
    /// ```
    /// use dpop_nonce::{Clock, ManualClock};
    /// use time::Duration;
    ///
    /// let clock = ManualClock::at_unix(Duration::seconds(15));
    /// assert_eq!(clock.read().unix_time(), Duration::seconds(15));
    /// ```
    #[inline]
    fn read(&self) -> ClockReading {
        ClockReading::since_epoch(self.unix_time())
    }

    /// The current instant as a UTC date and time. Saturates at the bounds of
    /// [`OffsetDateTime`] instead of panicking.
    fn now(&self) -> OffsetDateTime {
        let since = self.unix_time();
        OffsetDateTime::UNIX_EPOCH
            .checked_add(since)
            .unwrap_or(if since.is_negative() {
                time::PrimitiveDateTime::MIN.assume_utc()
            } else {
                time::PrimitiveDateTime::MAX.assume_utc()
            })
    }
}

/// The operating system's wall clock ([`SystemTime::now`]).
///
/// ```
/// use dpop_nonce::{Clock, SystemClock};
///
/// assert!(SystemClock.unix_time().is_positive());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn read(&self) -> ClockReading {
        ClockReading::system(SystemTime::now())
    }

    #[inline]
    fn unix_time(&self) -> Duration {
        unix_time_of(SystemTime::now())
    }
}

/// A clock that stands still until told to move. For tests, examples and simulations.
///
/// It is thread-safe, so one clock can be shared (for example through an [`Arc`]) between a
/// nonce source and the test that drives it. Time may also be set backwards, to test how a
/// source copes with a clock step.
///
/// ```
/// use std::sync::Arc;
/// use dpop_nonce::{Clock, ManualClock};
/// use time::Duration;
///
/// let clock = Arc::new(ManualClock::at_unix(Duration::seconds(1_000)));
/// let shared = Arc::clone(&clock);
/// clock.advance(Duration::seconds(30));
/// assert_eq!(shared.unix_time(), Duration::seconds(1_030));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    unix_time: Mutex<Duration>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self::at_unix(at - OffsetDateTime::UNIX_EPOCH)
    }

    /// A clock showing `since_epoch` after 1970-01-01T00:00:00Z.
    pub fn at_unix(since_epoch: Duration) -> Self {
        Self {
            unix_time: Mutex::new(since_epoch),
        }
    }

    /// Moves the clock to `at`, forwards or backwards.
    pub fn set(&self, at: OffsetDateTime) {
        *self.unix_time.lock() = at - OffsetDateTime::UNIX_EPOCH;
    }

    /// Moves the clock by `by` (negative moves it back). Saturates instead of overflowing.
    pub fn advance(&self, by: Duration) {
        let mut now = self.unix_time.lock();
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn unix_time(&self) -> Duration {
        *self.unix_time.lock()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn unix_time(&self) -> Duration {
        (**self).unix_time()
    }

    #[inline]
    fn read(&self) -> ClockReading {
        (**self).read()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn unix_time(&self) -> Duration {
        (**self).unix_time()
    }

    #[inline]
    fn read(&self) -> ClockReading {
        (**self).read()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    #[inline]
    fn unix_time(&self) -> Duration {
        (**self).unix_time()
    }

    #[inline]
    fn read(&self) -> ClockReading {
        (**self).read()
    }
}
