//! Wall-clock time, injectable so tests never sleep.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use time::{Duration, OffsetDateTime};

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

    /// How many of `marks` (times since the UNIX epoch, in ascending order) the clock has
    /// reached: `0` when it reads before the first, `marks.len()` when it reads at or after the
    /// last.
    ///
    /// Nonce sources call this on every check, with the bounds of their current window, so it is
    /// on the hot path. The provided implementation compares [`unix_time`](Clock::unix_time)
    /// with each mark; [`SystemClock`] overrides it to compare `SystemTime` values directly,
    /// which skips a conversion that costs more than the rest of a check.
    ///
    /// ```
    /// use dpop_nonce::{Clock, ManualClock};
    /// use time::Duration;
    ///
    /// let clock = ManualClock::at_unix(Duration::seconds(15));
    /// let marks = [Duration::seconds(10), Duration::seconds(15), Duration::seconds(20)];
    /// assert_eq!(clock.marks_passed(&marks), 2);
    /// ```
    #[inline]
    fn marks_passed(&self, marks: &[Duration]) -> usize {
        let now = self.unix_time();
        marks.iter().filter(|&&mark| mark <= now).count()
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
    fn marks_passed(&self, marks: &[Duration]) -> usize {
        let now = SystemTime::now();
        marks
            .iter()
            .filter(|&&mark| match std::time::Duration::try_from(mark) {
                Ok(after_epoch) => UNIX_EPOCH
                    .checked_add(after_epoch)
                    .is_some_and(|at| at <= now),
                // A mark before the epoch: compare the slow way (never on a sane system clock).
                Err(_) => mark <= self.unix_time(),
            })
            .count()
    }

    #[inline]
    fn unix_time(&self) -> Duration {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => Duration::try_from(after).unwrap_or(Duration::MAX),
            Err(before) => Duration::try_from(before.duration())
                .map(|d| -d)
                .unwrap_or(Duration::MIN),
        }
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
    fn marks_passed(&self, marks: &[Duration]) -> usize {
        (**self).marks_passed(marks)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn unix_time(&self) -> Duration {
        (**self).unix_time()
    }

    #[inline]
    fn marks_passed(&self, marks: &[Duration]) -> usize {
        (**self).marks_passed(marks)
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    #[inline]
    fn unix_time(&self) -> Duration {
        (**self).unix_time()
    }

    #[inline]
    fn marks_passed(&self, marks: &[Duration]) -> usize {
        (**self).marks_passed(marks)
    }
}
