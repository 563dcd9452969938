//! Wall-clock time, injectable so tests never sleep.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use time::{Duration, OffsetDateTime};

mod reading;

pub(crate) use reading::ClockReading;
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

    /// Reads the clock for the nonce sources' hot path. Internal: its return type cannot be
    /// named outside the crate, so there is nothing to override it with; implement
    /// [`unix_time`](Clock::unix_time) instead.
    #[doc(hidden)]
    #[inline]
    fn read(&self) -> ClockReading {
        ClockReading::since_epoch(self.unix_time())
    }

    /// Time elapsed since an arbitrary origin, on a clock that never steps: what lifetimes
    /// measured in elapsed time (replay-cache entries) read, so that a wall clock that jumps
    /// neither stretches nor cuts them.
    ///
    /// [`SystemClock`] reads the operating system's monotonic clock ([`std::time::Instant`]);
    /// [`ManualClock`] keeps a second counter that only [`ManualClock::advance`] moves forward.
    /// The provided implementation returns [`unix_time`](Clock::unix_time): a custom clock that
    /// can step should override it.
    ///
    /// ```
    /// use dpop_nonce::{Clock, ManualClock};
    /// use time::Duration;
    ///
    /// let clock = ManualClock::at_unix(Duration::seconds(100));
    /// clock.step(Duration::days(365)); // the wall clock jumps; no time elapses
    /// clock.advance(Duration::seconds(5)); // time passes
    /// assert_eq!(clock.unix_time(), Duration::seconds(100) + Duration::days(365) + Duration::seconds(5));
    /// assert_eq!(clock.elapsed(), Duration::seconds(5));
    /// ```
    fn elapsed(&self) -> Duration {
        self.unix_time()
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

    fn elapsed(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        Duration::try_from(origin.elapsed()).unwrap_or(Duration::MAX)
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
    time: Mutex<ManualTime>,
}

/// What a [`ManualClock`] shows, and how much time has elapsed on it.
#[derive(Debug, Default, Clone, Copy)]
struct ManualTime {
    unix_time: Duration,
    elapsed: Duration,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self::at_unix(at - OffsetDateTime::UNIX_EPOCH)
    }

    /// A clock showing `since_epoch` after 1970-01-01T00:00:00Z.
    pub fn at_unix(since_epoch: Duration) -> Self {
        Self {
            time: Mutex::new(ManualTime {
                unix_time: since_epoch,
                elapsed: Duration::ZERO,
            }),
        }
    }

    /// Sets the wall clock to `at`, forwards or backwards, as an operator or NTP stepping the
    /// clock would: no time elapses ([`Clock::elapsed`] does not move).
    pub fn set(&self, at: OffsetDateTime) {
        self.time.lock().unix_time = at - OffsetDateTime::UNIX_EPOCH;
    }

    /// Lets time pass: moves the wall clock and the elapsed time by `by`. A negative `by`
    /// moves the wall clock back only, as [`step`](Self::step) does, since elapsed time never
    /// goes back. Saturates instead of overflowing.
    pub fn advance(&self, by: Duration) {
        let mut time = self.time.lock();
        time.unix_time = time.unix_time.saturating_add(by);
        if by.is_positive() {
            time.elapsed = time.elapsed.saturating_add(by);
        }
    }

    /// Steps the wall clock by `by` (either way) with no time elapsing. Saturates instead of
    /// overflowing.
    pub fn step(&self, by: Duration) {
        let mut time = self.time.lock();
        time.unix_time = time.unix_time.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn unix_time(&self) -> Duration {
        self.time.lock().unix_time
    }

    fn elapsed(&self) -> Duration {
        self.time.lock().elapsed
    }
}

/// `Clock` for every pointer to one: `&C`, `Arc<C>`, `Box<C>`.
macro_rules! forward_clock {
    ($($pointer:ty),+) => {$(
        impl<C: Clock + ?Sized> Clock for $pointer {
            #[inline]
            fn unix_time(&self) -> Duration {
                (**self).unix_time()
            }

            #[inline]
            fn read(&self) -> ClockReading {
                (**self).read()
            }

            #[inline]
            fn elapsed(&self) -> Duration {
                (**self).elapsed()
            }
        }
    )+};
}

forward_clock!(&C, Arc<C>, Box<C>);
