//! Rotation of the in-memory source, driven by a manual clock.

use std::sync::Arc;

use dpop_nonce::{
    ConfigError, InMemoryNonceSource, ManualClock, NonceCheck, NonceSource, NonceValidator,
    RejectReason, Rotation,
};
use time::Duration;
use time::macros::datetime;

const ROTATION: Duration = Duration::minutes(5);

fn source_at(start: Duration) -> (Arc<ManualClock>, InMemoryNonceSource<Arc<ManualClock>>) {
    let clock = Arc::new(ManualClock::at_unix(start));
    let source = InMemoryNonceSource::builder()
        .rotation(ROTATION)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    (clock, source)
}

#[test]
fn current_then_previous_with_refresh_then_refused() {
    let (clock, source) = source_at(Duration::minutes(50) + Duration::seconds(3));
    let validator = NonceValidator::new(&source);
    let first = validator.issue();

    let accepted = validator.validate(Some(first.as_str())).unwrap();
    assert_eq!(accepted.refresh(), None, "a current nonce needs no refresh");

    clock.advance(ROTATION);
    let accepted = validator.validate(Some(first.as_str())).unwrap();
    let second = accepted
        .refresh()
        .cloned()
        .expect("previous nonce gets a refresh");
    assert_ne!(second, first);
    assert_eq!(source.check(second.as_str()), NonceCheck::Current);
    assert_eq!(validator.issue(), second);

    clock.advance(ROTATION);
    let refused = validator.validate(Some(first.as_str())).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
    assert_ne!(refused.nonce(), &first);
    assert_eq!(source.check(second.as_str()), NonceCheck::Previous);
}

#[test]
fn windows_are_aligned_on_the_epoch() {
    // 12:04:59 and 12:05:00 lie in different 5-minute windows, one second apart.
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 12:04:59 UTC)));
    let source = InMemoryNonceSource::builder()
        .rotation(ROTATION)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let before = source.issue();
    clock.advance(Duration::seconds(1));
    let after = source.issue();
    assert_ne!(before, after, "the boundary at 12:05:00 rotates");
    clock.advance(ROTATION - Duration::nanoseconds(1));
    assert_eq!(
        source.issue(),
        after,
        "12:09:59.999999999 is still the same window"
    );
    assert_eq!(source.check(before.as_str()), NonceCheck::Previous);
}

#[test]
fn a_long_idle_gap_drops_both_nonces() {
    let (clock, source) = source_at(Duration::ZERO);
    let old_previous = source.issue();
    clock.advance(ROTATION);
    let old_current = source.issue();
    assert_eq!(source.check(old_previous.as_str()), NonceCheck::Previous);

    clock.advance(ROTATION * 2);
    assert_eq!(source.check(old_current.as_str()), NonceCheck::Unknown);
    assert_eq!(source.check(old_previous.as_str()), NonceCheck::Unknown);

    clock.advance(Duration::days(400));
    let fresh = source.issue();
    assert_ne!(fresh, old_current);
    assert_eq!(source.check(fresh.as_str()), NonceCheck::Current);
    assert_eq!(source.check(old_current.as_str()), NonceCheck::Unknown);
}

#[test]
fn exactly_two_windows_drops_the_previous_one() {
    let (clock, source) = source_at(Duration::ZERO);
    let first = source.issue();
    clock.advance(ROTATION * 2);
    assert_eq!(source.check(first.as_str()), NonceCheck::Unknown);
    let current = source.issue();
    clock.advance(ROTATION);
    assert_eq!(source.check(current.as_str()), NonceCheck::Previous);
}

#[test]
fn a_clock_stepping_back_starts_the_window_afresh_and_never_resurrects_a_nonce() {
    let (clock, source) = source_at(Duration::minutes(10));
    let first = source.issue();
    clock.advance(ROTATION);
    let second = source.issue();
    clock.advance(-ROTATION * 3);
    let fresh = source.issue();
    assert!(
        fresh != first && fresh != second,
        "a fresh value for the clock's window"
    );
    assert_eq!(source.check(fresh.as_str()), NonceCheck::Current);
    assert_eq!(source.check(second.as_str()), NonceCheck::Unknown);
    assert_eq!(source.check(first.as_str()), NonceCheck::Unknown);
    // Rotation goes on every interval from there.
    clock.advance(ROTATION);
    assert_eq!(source.check(fresh.as_str()), NonceCheck::Previous);
    let next = source.issue();
    assert_ne!(next, fresh);
    clock.advance(ROTATION * 2);
    assert_eq!(source.check(second.as_str()), NonceCheck::Unknown);
    assert_eq!(source.check(next.as_str()), NonceCheck::Unknown);
}

#[test]
fn a_forward_jump_then_a_step_back_does_not_freeze_rotation() {
    let (clock, source) = source_at(Duration::minutes(10));
    clock.step(Duration::days(365));
    let during_jump = source.issue();
    clock.step(-Duration::days(365));
    // Back at the real time: the nonce handed out during the jump is not current for a year.
    assert_eq!(source.check(during_jump.as_str()), NonceCheck::Unknown);
    let now = source.issue();
    clock.advance(ROTATION);
    assert_eq!(source.check(now.as_str()), NonceCheck::Previous);
    assert_ne!(source.issue(), now, "rotated after one interval");
    clock.advance(ROTATION);
    assert_eq!(source.check(now.as_str()), NonceCheck::Unknown);
}

#[test]
fn times_before_the_epoch_and_far_in_the_future_work() {
    let (clock, source) = source_at(Duration::days(-365));
    let before_epoch = source.issue();
    assert_eq!(source.check(before_epoch.as_str()), NonceCheck::Current);
    clock.set(datetime!(9999-12-31 23:59:59 UTC));
    let far = source.issue();
    assert_ne!(far, before_epoch);
    assert_eq!(source.check(far.as_str()), NonceCheck::Current);
    clock.advance(Duration::MAX);
    let _ = source.issue();
    assert_eq!(source.check(far.as_str()), NonceCheck::Unknown);
}

#[test]
fn rotation_interval_must_be_positive_and_bounded() {
    for bad in [Duration::ZERO, Duration::seconds(-5), Duration::MIN] {
        assert_eq!(
            InMemoryNonceSource::builder().rotation(bad).build().err(),
            Some(ConfigError::NonPositiveRotation)
        );
    }
    assert_eq!(
        InMemoryNonceSource::builder()
            .rotation(Duration::MAX)
            .build()
            .err(),
        Some(ConfigError::RotationTooLong)
    );
    let tiny = InMemoryNonceSource::builder()
        .rotation(Duration::nanoseconds(1))
        .build()
        .unwrap();
    assert_eq!(tiny.rotation().interval(), Duration::nanoseconds(1));
    assert_eq!(InMemoryNonceSource::new().rotation(), Rotation::DEFAULT);
}

#[test]
fn separate_sources_never_accept_each_others_nonces() {
    // RFC 9449 §9: the authorization server and the resource server keep their own nonces.
    let (_, authorization_server) = source_at(Duration::ZERO);
    let (_, resource_server) = source_at(Duration::ZERO);
    let as_nonce = authorization_server.issue();
    assert_eq!(
        resource_server.check(as_nonce.as_str()),
        NonceCheck::Unknown
    );
    let refused = NonceValidator::new(&resource_server)
        .validate(Some(as_nonce.as_str()))
        .unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
}

#[test]
fn debug_output_shows_state_not_nonces() {
    let (_, source) = source_at(Duration::ZERO);
    let nonce = source.issue();
    let debug = format!("{source:?}");
    assert!(debug.contains("InMemoryNonceSource"));
    assert!(!debug.contains(nonce.as_str()));
}
