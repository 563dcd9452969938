//! Clock faults: extreme clocks and intervals, and jumps both ways. For every configuration that
//! builds and every clock reading, a nonce is accepted no longer than `max_nonce_lifetime()`
//! after it was handed out, and a step back never brings an old nonce back.

use std::sync::Arc;

use dpop_nonce::derived::DerivedNonceSource;
use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceCheck, NonceSource};
use proptest::prelude::*;
use time::Duration;

const SECRET: [u8; 32] = [0x42; 32];

/// Clock readings that matter: both ends of the range, around the epoch, around the ends of
/// the i64-nanosecond range (1677 and 2262), and the year 9999.
fn extreme_time() -> impl Strategy<Value = Duration> {
    let nanos_edge = Duration::nanoseconds(i64::MAX);
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::MIN),
        Just(Duration::ZERO),
        Just(nanos_edge),
        Just(-nanos_edge),
        Just(Duration::seconds(253_402_300_799)),
        (-1_000_000i64..1_000_000).prop_map(move |s| nanos_edge + Duration::seconds(s)),
        (-1_000_000i64..1_000_000).prop_map(move |s| -nanos_edge + Duration::seconds(s)),
        any::<i64>().prop_map(Duration::seconds),
        (i64::MIN / 2..i64::MAX / 2).prop_map(Duration::nanoseconds),
    ]
}

/// Intervals from 1 ns (the shortest accepted) to the longest, with the short ones that
/// saturated window numbers most likely.
fn interval() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1i64..1_000).prop_map(Duration::nanoseconds),
        (1i64..2_000_000_000).prop_map(Duration::nanoseconds),
        (1i64..100_000).prop_map(Duration::seconds),
        Just(dpop_nonce::Rotation::MAX),
    ]
}

/// Forward steps of the clock, as multiples of the interval plus a remainder.
fn steps() -> impl Strategy<Value = Vec<(u8, u32)>> {
    proptest::collection::vec((0u8..4, any::<u32>()), 1..12)
}

/// Drives `source` on `clock` forward by `steps` and checks the lifetime bound after each.
fn assert_lifetime_bound(
    source: &dyn NonceSource,
    clock: &ManualClock,
    interval: Duration,
    steps: &[(u8, u32)],
) -> Result<(), TestCaseError> {
    let lifetime = source.max_nonce_lifetime();
    let mut issued: Vec<(String, Duration)> = Vec::new();
    for &(windows, remainder) in steps {
        let now = clock_now(clock);
        let nonce = source.issue();
        issued.push((nonce.as_str().to_owned(), now));
        let step = interval
            .checked_mul(i32::from(windows))
            .and_then(|d| {
                d.checked_add(interval.checked_div(i32::try_from(remainder % 7 + 1).ok()?)?)
            })
            .unwrap_or(interval);
        if clock_now(clock).checked_add(step).is_none() {
            break;
        }
        clock.advance(step);
        let now = clock_now(clock);
        for (value, at) in &issued {
            let age = now.checked_sub(*at);
            let accepted = source.check(value).is_accepted();
            let too_old = age.is_none_or(|age| age > lifetime);
            prop_assert!(
                !(accepted && too_old),
                "a nonce issued at {at:?} is still accepted at {now:?} (lifetime {lifetime:?}, interval {interval:?})"
            );
        }
    }
    Ok(())
}

fn clock_now(clock: &ManualClock) -> Duration {
    dpop_nonce::Clock::unix_time(clock)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn in_memory_nonces_never_outlive_their_lifetime(
        start in extreme_time(),
        interval in interval(),
        steps in steps(),
    ) {
        let clock = Arc::new(ManualClock::at_unix(start));
        let source = InMemoryNonceSource::builder()
            .rotation(interval)
            .clock(Arc::clone(&clock))
            .build()
            .unwrap();
        assert_lifetime_bound(&source, &clock, interval, &steps)?;
    }

    #[test]
    fn derived_nonces_never_outlive_their_lifetime(
        start in extreme_time(),
        interval in interval(),
        steps in steps(),
    ) {
        let clock = Arc::new(ManualClock::at_unix(start));
        let source = DerivedNonceSource::builder("rs")
            .secret(SECRET)
            .rotation(interval)
            .clock(Arc::clone(&clock))
            .build()
            .unwrap();
        assert_lifetime_bound(&source, &clock, interval, &steps)?;
    }

    #[test]
    fn after_a_step_back_no_nonce_handed_out_before_it_is_accepted_again(
        start in (-1_000_000_000i64..1_000_000_000).prop_map(Duration::seconds),
        back_windows in 2i32..1_000,
        derived in any::<bool>(),
    ) {
        let interval = Duration::minutes(1);
        let clock = Arc::new(ManualClock::at_unix(start));
        let source: Box<dyn NonceSource> = if derived {
            Box::new(DerivedNonceSource::builder("rs").secret(SECRET).rotation(interval).clock(Arc::clone(&clock)).build().unwrap())
        } else {
            Box::new(InMemoryNonceSource::builder().rotation(interval).clock(Arc::clone(&clock)).build().unwrap())
        };
        let mut before = Vec::new();
        for _ in 0..3 {
            before.push(source.issue());
            clock.advance(interval);
        }
        // The source sees the latest window before the clock steps back by more than one.
        before.push(source.issue());
        clock.advance(-interval * back_windows);
        for _ in 0..4 {
            for old in &before {
                prop_assert_eq!(source.check(old.as_str()), NonceCheck::Unknown);
            }
            let fresh = source.issue();
            prop_assert!(source.check(fresh.as_str()).is_accepted());
            clock.advance(interval);
        }
    }
}

#[test]
fn a_one_nanosecond_rotation_far_from_1970_accepts_nothing_rather_than_freezing() {
    // Year 2300: window numbers of a 1 ns rotation do not fit in an i64.
    let clock = Arc::new(ManualClock::at_unix(Duration::days(365 * 330)));
    let source = InMemoryNonceSource::builder()
        .rotation(Duration::nanoseconds(1))
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let nonce = source.issue();
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Unknown);
    clock.advance(Duration::days(365));
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Unknown);
    assert_ne!(source.issue(), nonce);
}
