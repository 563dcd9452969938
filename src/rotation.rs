//! [`Rotation`]: time cut into fixed windows aligned on the UNIX epoch.

use time::Duration;

use crate::error::ConfigError;

/// A rotation interval, and the arithmetic that maps a time to its window.
///
/// Time is cut into windows of one interval each, aligned on the UNIX epoch: window `w` runs
/// from `w * interval` (inclusive) to `(w + 1) * interval` (exclusive) after 1970-01-01T00:00:00Z.
/// A nonce made for window `w` is *current* while `w` runs and *previous* during `w + 1`, so it
/// is accepted for at least one and at most two intervals ([`Rotation::max_nonce_lifetime`]).
/// Replicas whose clocks agree therefore agree on the window with no coordination.
///
/// ```
/// use dpop_nonce::Rotation;
/// use time::Duration;
///
/// let rotation = Rotation::new(Duration::minutes(5))?;
/// assert_eq!(rotation.window_of(Duration::minutes(12)), 2);
/// assert_eq!(rotation.window_start(2), Duration::minutes(10));
/// assert_eq!(rotation.max_nonce_lifetime(), Duration::minutes(10));
/// # Ok::<(), dpop_nonce::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rotation {
    nanos: i128,
}

impl Rotation {
    /// The default interval: 5 minutes, so a nonce lives 5 to 10 minutes.
    ///
    /// Why 5 minutes: a stash of pre-computed proofs is worthless after at most 10 minutes, yet a
    /// client that calls every few minutes never needs a retry, because a request carrying the
    /// previous nonce succeeds and is handed the current one (RFC 9449 §8.2). It is also longer
    /// than the usual 60-second `iat` acceptance window, so nonce expiry, not `iat`, bounds proof
    /// reuse only where it should.
    pub const DEFAULT: Self = Self {
        nanos: 5 * 60 * 1_000_000_000,
    };

    /// The longest interval accepted: 100 years. Longer windows would defeat the point of a nonce
    /// and push window arithmetic towards overflow.
    pub const MAX: Duration = Duration::days(36_525);

    /// A rotation of `interval`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NonPositiveRotation`] for zero or negative intervals,
    /// [`ConfigError::RotationTooLong`] beyond [`Rotation::MAX`].
    pub fn new(interval: Duration) -> Result<Self, ConfigError> {
        if !interval.is_positive() {
            return Err(ConfigError::NonPositiveRotation);
        }
        if interval > Self::MAX {
            return Err(ConfigError::RotationTooLong);
        }
        Ok(Self {
            nanos: interval.whole_nanoseconds(),
        })
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        duration_from_nanos(self.nanos)
    }

    /// The longest time a nonce is accepted: two intervals (current, then previous). Use it as
    /// the lifetime of replay-cache entries (RFC 9449 §11.1).
    pub fn max_nonce_lifetime(&self) -> Duration {
        duration_from_nanos(self.nanos.saturating_mul(2))
    }

    /// The window that contains `unix_time` (time since the UNIX epoch, as read from a
    /// [`Clock`](crate::Clock)).
    pub fn window_of(&self, unix_time: Duration) -> i64 {
        let window = unix_time.whole_nanoseconds().div_euclid(self.nanos);
        i64::try_from(window).unwrap_or(if window < 0 { i64::MIN } else { i64::MAX })
    }

    /// The window that contains `unix_time`, when its number and those of the two windows on
    /// either side fit in an `i64`; `None` otherwise (only with intervals under about one
    /// second, far outside the years 1677 to 2262). The sources accept nothing at such a time.
    pub(crate) fn checked_window_of(&self, unix_time: Duration) -> Option<i64> {
        let window = unix_time.whole_nanoseconds().div_euclid(self.nanos);
        let window = i64::try_from(window).ok()?;
        (window > i64::MIN + 1 && window < i64::MAX - 1).then_some(window)
    }

    /// When window `window` starts, as time since the UNIX epoch.
    pub fn window_start(&self, window: i64) -> Duration {
        duration_from_nanos(i128::from(window).saturating_mul(self.nanos))
    }

    /// `true` when `unix_time` falls inside `window`. Cheaper than [`Rotation::window_of`]: two
    /// multiplications and no division, which keeps it off the cost of every check.
    #[inline]
    pub fn contains(&self, window: i64, unix_time: Duration) -> bool {
        let now = unix_time.whole_nanoseconds();
        let start = i128::from(window).saturating_mul(self.nanos);
        now >= start && now - start < self.nanos
    }
}

impl Default for Rotation {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn duration_from_nanos(nanos: i128) -> Duration {
    let seconds = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    match i64::try_from(seconds) {
        // `sub` is below one billion, so it fits in an i32.
        Ok(seconds) => Duration::new(seconds, sub as i32),
        Err(_) if nanos < 0 => Duration::MIN,
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_on_the_epoch_including_before_it() {
        let r = Rotation::new(Duration::seconds(10)).unwrap();
        assert_eq!(r.window_of(Duration::ZERO), 0);
        assert_eq!(r.window_of(Duration::seconds(9)), 0);
        assert_eq!(r.window_of(Duration::seconds(10)), 1);
        assert_eq!(r.window_of(Duration::seconds(-1)), -1);
        assert_eq!(r.window_start(-1), Duration::seconds(-10));
        assert!(r.contains(1, Duration::seconds(10)));
        assert!(r.contains(1, Duration::nanoseconds(19_999_999_999)));
        assert!(!r.contains(1, Duration::seconds(20)));
        assert!(!r.contains(1, Duration::nanoseconds(9_999_999_999)));
    }

    #[test]
    fn extreme_times_saturate_instead_of_overflowing() {
        let r = Rotation::new(Duration::nanoseconds(1)).unwrap();
        assert_eq!(r.window_of(Duration::MAX), i64::MAX);
        assert_eq!(r.window_of(Duration::MIN), i64::MIN);
        let _ = r.window_start(i64::MAX);
        assert!(!r.contains(i64::MIN, Duration::MAX));
        assert_eq!(r.checked_window_of(Duration::MAX), None);
        assert_eq!(r.checked_window_of(Duration::MIN), None);
        assert_eq!(
            r.checked_window_of(Duration::seconds(1)),
            Some(1_000_000_000)
        );
        let edge = Duration::nanoseconds(i64::MAX - 2);
        assert_eq!(r.checked_window_of(edge), Some(i64::MAX - 2));
        assert_eq!(r.checked_window_of(edge + Duration::nanoseconds(1)), None);
        let slow = Rotation::new(Duration::seconds(2)).unwrap();
        assert!(slow.checked_window_of(Duration::MAX).is_some());
        assert!(slow.checked_window_of(Duration::MIN).is_some());
    }

    #[test]
    fn bad_intervals_are_typed_errors() {
        assert_eq!(
            Rotation::new(Duration::ZERO),
            Err(ConfigError::NonPositiveRotation)
        );
        assert_eq!(
            Rotation::new(Duration::seconds(-1)),
            Err(ConfigError::NonPositiveRotation)
        );
        assert_eq!(
            Rotation::new(Rotation::MAX + Duration::SECOND),
            Err(ConfigError::RotationTooLong)
        );
        assert_eq!(Rotation::default().interval(), Duration::minutes(5));
    }
}
