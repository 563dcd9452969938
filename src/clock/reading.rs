//! `ClockReading`: one reading of a clock, compared with window bounds afterwards. Internal: the
//! sources' hot path, not part of the public API.

use std::time::{SystemTime, UNIX_EPOCH};

use time::Duration;

/// One reading of a [`Clock`](crate::Clock), kept to be compared with times since the UNIX
/// epoch (the bounds of a rotation window, for example).
///
/// Nonce sources read the clock *first* on every check and compare the claim while the clock is
/// still being read; only then do they look at the reading. The processor overlaps the two, which
/// hides most of the comparison's cost behind the clock read.
///
/// A reading of the system clock keeps the `SystemTime` itself, so comparing it with a mark
/// costs one addition and no conversion of the reading into a `Duration` (which costs more than
/// the rest of a check).
///
/// The type is reachable from [`Clock`](crate::Clock)'s hidden `read` method only, and cannot be
/// named or built outside the crate.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading(Reading);

#[derive(Debug, Clone, Copy)]
enum Reading {
    SinceEpoch(Duration),
    System(SystemTime),
}

impl ClockReading {
    /// A reading of `since_epoch` after the UNIX epoch (negative before it).
    pub(crate) const fn since_epoch(since_epoch: Duration) -> Self {
        Self(Reading::SinceEpoch(since_epoch))
    }

    /// A reading of a `SystemTime`, kept as it is.
    pub(crate) const fn system(at: SystemTime) -> Self {
        Self(Reading::System(at))
    }

    /// The reading as time since the UNIX epoch (negative before it), saturating at the bounds
    /// of [`Duration`]. Only the Redis source needs it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn unix_time(&self) -> Duration {
        match self.0 {
            Reading::SinceEpoch(since) => since,
            Reading::System(at) => unix_time_of(at),
        }
    }

    /// Whether the clock had reached `mark` (time since the UNIX epoch) when it was read.
    #[inline]
    pub(crate) fn has_reached(&self, mark: Duration) -> bool {
        match self.0 {
            Reading::SinceEpoch(now) => mark <= now,
            Reading::System(now) => match std::time::Duration::try_from(mark) {
                Ok(after_epoch) => UNIX_EPOCH
                    .checked_add(after_epoch)
                    .is_some_and(|at| at <= now),
                // A mark before the epoch: compare the slow way (never on a sane system clock).
                // A mark too far ahead for a `SystemTime` makes `checked_add` fail above: not
                // reached.
                Err(_) => mark <= unix_time_of(now),
            },
        }
    }

    /// How many of `marks` the clock had reached when it was read. With marks in ascending
    /// order: `0` when it read before the first, `marks.len()` at or after the last.
    #[inline]
    pub(crate) fn marks_reached(&self, marks: &[Duration]) -> usize {
        marks.iter().filter(|&&mark| self.has_reached(mark)).count()
    }
}

/// `at` as time since the UNIX epoch, saturating.
pub(crate) fn unix_time_of(at: SystemTime) -> Duration {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => Duration::try_from(after).unwrap_or(Duration::MAX),
        Err(before) => Duration::try_from(before.duration())
            .map(|d| -d)
            .unwrap_or(Duration::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_reading_agree_on_every_mark() {
        let now = SystemTime::now();
        let system = ClockReading::system(now);
        let since = ClockReading::since_epoch(unix_time_of(now));
        assert_eq!(system.unix_time(), since.unix_time());
        let at = since.unix_time();
        let marks = [
            Duration::MIN,
            Duration::seconds(-1),
            Duration::ZERO,
            at - Duration::nanoseconds(1),
            at,
            at + Duration::nanoseconds(1),
            at + Duration::days(365),
            Duration::MAX,
        ];
        for mark in marks {
            assert_eq!(
                system.has_reached(mark),
                since.has_reached(mark),
                "{mark:?}"
            );
            assert_eq!(since.has_reached(mark), mark <= at, "{mark:?}");
        }
        assert_eq!(system.marks_reached(&marks), 5);
    }

    #[test]
    fn a_system_time_before_the_epoch_reads_negative() {
        let before = UNIX_EPOCH - std::time::Duration::from_secs(90);
        let reading = ClockReading::system(before);
        assert_eq!(reading.unix_time(), Duration::seconds(-90));
        assert!(reading.has_reached(Duration::seconds(-91)));
        assert!(!reading.has_reached(Duration::seconds(-89)));
        assert!(!reading.has_reached(Duration::ZERO));
    }
}
