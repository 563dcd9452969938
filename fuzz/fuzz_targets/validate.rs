//! `NonceValidator::validate` over arbitrary claims, against a model of the rotation rules.
//!
//! Input layout (so that seed files stay readable):
//!
//! - byte 0, bits 0-1: the claim: 0 = the remaining bytes as they are, 1 = the current nonce,
//!   2 = the nonce issued before the clock moved, 3 = no claim at all. For 1 and 2 the remaining
//!   bytes are edits, in pairs `(position, byte)`: a position inside the nonce overwrites that
//!   byte, 255 truncates to `byte` bytes, any other position appends `byte`.
//! - byte 0, bits 2-4: how far the clock moves between the first issue and the check (see
//!   `STEPS`); bit 5: `Requirement::Optional` instead of `Required`; bits 6-7: the start time.
//! - byte 1: the rotation interval (see `ROTATIONS`).
//!
//! Invariants checked on every input:
//!
//! - an accepted claim equals a nonce the source issued for the current or the previous window
//!   (learned through `issue`), and `Current`/`Previous` agree with the refresh nonce;
//! - a refusal's fresh nonce differs from the claim, parses as a `Nonce`, and is the current
//!   nonce; the reason follows the grammar (`Malformed`) or not (`Mismatch`), or the claim's
//!   absence (`Missing`);
//! - rotation follows the model: a later window rotates and keeps the previous nonce only when
//!   it is the next window; an earlier or the same window changes nothing.

#![no_main]

use std::sync::Arc;

use dpop_nonce::{
    Accepted, Clock, InMemoryNonceSource, ManualClock, Nonce, NonceSource, NonceValidator,
    RejectReason, Requirement, UseDpopNonce,
};
use libfuzzer_sys::fuzz_target;
use time::Duration;

const ROTATIONS: [Duration; 5] = [
    Duration::nanoseconds(1),
    Duration::seconds(1),
    Duration::minutes(5),
    Duration::days(1),
    Duration::days(36_525),
];

/// Clock moves, as multiples of the interval plus nanoseconds.
const STEPS: [(i32, i64); 8] = [
    (0, 0),
    (0, 1),
    (1, -1),
    (1, 0),
    (2, 0),
    (-1, 0),
    (1, 1),
    (1_000, 0),
];

const STARTS: [Duration; 4] = [
    Duration::seconds(1_000),
    Duration::seconds(1_767_225_600),
    Duration::seconds(-1_000_000_000),
    Duration::MAX,
];

fn nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// The window of `t`, computed independently of the crate, saturating at the bounds of `i64`.
fn window(t: Duration, interval: Duration) -> i64 {
    let w = t
        .whole_nanoseconds()
        .div_euclid(interval.whole_nanoseconds());
    i64::try_from(w).unwrap_or(if w < 0 { i64::MIN } else { i64::MAX })
}

fn edited(nonce: &Nonce, edits: &[u8]) -> String {
    let mut bytes = nonce.as_bytes().to_vec();
    for pair in edits.chunks(2) {
        let (&pos, &byte) = match pair {
            [pos, byte] => (pos, byte),
            _ => break,
        };
        match usize::from(pos) {
            p if p < bytes.len() => bytes[p] = byte,
            255 => bytes.truncate(usize::from(byte)),
            _ => bytes.push(byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the source holds, as the model sees it.
struct Model {
    interval: Duration,
    window: i64,
    current: Nonce,
    previous: Option<Nonce>,
}

impl Model {
    /// Moves the model to the clock's time, learning the new current nonce from `issue`.
    fn observe<S: NonceSource>(&mut self, now: Duration, source: &S) {
        let target = window(now, self.interval);
        let issued = source.issue();
        if target > self.window {
            self.previous =
                (self.window.checked_add(1) == Some(target)).then(|| self.current.clone());
            assert!(issued != self.current, "a rotation makes a new nonce");
            self.current = issued;
            self.window = target;
        } else {
            assert!(
                issued == self.current,
                "no rotation within or before the stored window"
            );
        }
    }
}

fn check_outcome<S: NonceSource>(
    validator: &NonceValidator<S>,
    model: &Model,
    claim: Option<&str>,
    requirement: Requirement,
) {
    let outcome = validator.validate(claim);
    let previous = model.previous.as_ref();
    assert_outcome(outcome, claim, requirement, &model.current, |claim| {
        (
            model.current == claim,
            previous.is_some_and(|p| *p == claim),
        )
    });
}

/// Checks an outcome of `validate` against what a model says: `current` is the nonce handed out
/// now, and `issued(claim)` tells whether the claim is accepted as current and as previous.
fn assert_outcome(
    outcome: Result<Accepted, UseDpopNonce>,
    claim: Option<&str>,
    requirement: Requirement,
    current: &Nonce,
    issued: impl Fn(&str) -> (bool, bool),
) {
    let Some(claim) = claim else {
        match (requirement, outcome) {
            (Requirement::Required, Err(refused)) => {
                assert_eq!(refused.reason(), RejectReason::Missing);
                assert!(refused.nonce() == current);
            }
            (Requirement::Optional, Ok(accepted)) => {
                assert!(accepted.refresh() == Some(current));
            }
            (requirement, outcome) => panic!("{requirement:?} and no claim gave {outcome:?}"),
        }
        return;
    };
    let (is_current, is_previous) = issued(claim);
    match outcome {
        Ok(accepted) => {
            assert!(
                is_current || is_previous,
                "accepted a claim never issued: {claim:?}"
            );
            if is_current {
                assert!(accepted.refresh().is_none());
            } else {
                assert!(accepted.refresh() == Some(current));
            }
        }
        Err(refused) => {
            assert!(
                !is_current && !is_previous,
                "refused an issued nonce: {claim:?}"
            );
            assert!(
                *refused.nonce() != *claim,
                "the fresh nonce repeats the claim"
            );
            assert!(refused.nonce().as_str() != claim);
            let reparsed = Nonce::parse(refused.nonce().as_str()).expect("the fresh nonce parses");
            assert!(reparsed == *current, "the fresh nonce is the current one");
            let well_formed =
                !claim.is_empty() && claim.len() <= Nonce::MAX_LEN && claim.bytes().all(nqchar);
            let expected = if well_formed {
                RejectReason::Mismatch
            } else {
                RejectReason::Malformed
            };
            assert_eq!(refused.reason(), expected, "claim {claim:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let control = data.first().copied().unwrap_or(3);
    let interval = ROTATIONS[usize::from(data.get(1).copied().unwrap_or(2)) % ROTATIONS.len()];
    let rest = data.get(2..).unwrap_or_default();
    let (units, nanos) = STEPS[usize::from((control >> 2) & 7)];
    let requirement = if control & 0x20 != 0 {
        Requirement::Optional
    } else {
        Requirement::Required
    };
    let start = STARTS[usize::from(control >> 6)];

    // The in-memory source on a clock the input drives.
    let clock = Arc::new(ManualClock::at_unix(start));
    let source = InMemoryNonceSource::builder()
        .rotation(interval)
        .clock(Arc::clone(&clock))
        .build()
        .expect("every interval in ROTATIONS is valid");
    let validator = NonceValidator::new(source).requirement(requirement);
    let first = validator.issue();
    let mut model = Model {
        interval,
        window: window(clock.unix_time(), interval),
        current: first.clone(),
        previous: None,
    };
    clock.advance(
        interval
            .saturating_mul(units)
            .saturating_add(Duration::nanoseconds(nanos)),
    );
    model.observe(clock.unix_time(), validator.source());

    let claim = match control & 3 {
        0 => Some(String::from_utf8_lossy(rest).into_owned()),
        1 => Some(edited(&model.current, rest)),
        2 => Some(edited(&first, rest)),
        _ => None,
    };
    check_outcome(&validator, &model, claim.as_deref(), requirement);

    // The same claim against a source on the real clock: never accepted unless issued.
    let real = NonceValidator::new(InMemoryNonceSource::new()).requirement(requirement);
    if let Some(claim) = claim.as_deref() {
        match real.validate(Some(claim)) {
            Ok(_) => assert!(real.issue() == claim, "accepted a claim never issued"),
            Err(refused) => assert!(*refused.nonce() != *claim),
        }
    }
    let own = real.issue();
    assert!(
        real.validate(Some(own.as_str())).is_ok(),
        "its own current nonce is accepted"
    );

    extra::run(data);
});

/// Sources behind features; nothing while they are off.
#[cfg(not(feature = "derived"))]
mod extra {
    pub(super) fn run(_data: &[u8]) {}
}

/// The derived source, against its own model: the nonce of window `w` is a function of the
/// secret and `w`, learned here from sources of the same secret whose clocks sit in `w - 1`,
/// `w` and `w + 1`. It accepts `w` (current) and `w - 1` (previous), and `w + 1` as current during
/// the last `skew` of `w`.
#[cfg(feature = "derived")]
mod extra {
    use super::*;
    use dpop_nonce::derived::DerivedNonceSource;

    const SECRET: [u8; 32] = [0x42; 32];

    fn source_at(interval: Duration, at: Duration) -> Option<DerivedNonceSource<ManualClock>> {
        DerivedNonceSource::builder("fuzz")
            .secret(SECRET)
            .rotation(interval)
            .clock(ManualClock::at_unix(at))
            .build()
            .ok()
    }

    /// The nonce of window `w`, or `None` when that window's start is out of range.
    fn nonce_of(interval: Duration, w: i128) -> Option<Nonce> {
        let nanos = w.checked_mul(interval.whole_nanoseconds())?;
        let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
        let sub = i32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
        Some(source_at(interval, Duration::new(secs, sub))?.issue())
    }

    pub(super) fn run(data: &[u8]) {
        let control = data.first().copied().unwrap_or(3);
        let interval = ROTATIONS[usize::from(data.get(1).copied().unwrap_or(2)) % ROTATIONS.len()];
        let rest = data.get(2..).unwrap_or_default();
        let (units, nanos) = STEPS[usize::from((control >> 2) & 7)];
        let start = STARTS[usize::from(control >> 6)];
        let requirement = if control & 0x20 != 0 {
            Requirement::Optional
        } else {
            Requirement::Required
        };

        let clock = Arc::new(ManualClock::at_unix(start));
        let Ok(source) = DerivedNonceSource::builder("fuzz")
            .secret(SECRET)
            .rotation(interval)
            .clock(Arc::clone(&clock))
            .build()
        else {
            return;
        };
        let skew = source.lead();
        let validator = NonceValidator::new(source).requirement(requirement);
        let first = validator.issue();
        clock.advance(
            interval
                .saturating_mul(units)
                .saturating_add(Duration::nanoseconds(nanos)),
        );
        let now = clock.unix_time();
        let w = i128::from(window(now, interval));
        // Windows at the very ends of the range saturate; the model does not cover them.
        if w <= i128::from(i64::MIN) + 1 || w >= i128::from(i64::MAX) - 1 {
            return;
        }
        let (Some(current), Some(previous), Some(next)) = (
            nonce_of(interval, w),
            nonce_of(interval, w - 1),
            nonce_of(interval, w + 1),
        ) else {
            return;
        };
        assert!(
            validator.issue() == current,
            "issues the current window's nonce"
        );
        let next_start = (w + 1) * interval.whole_nanoseconds();
        let near_end = now.whole_nanoseconds() >= next_start - skew.whole_nanoseconds();

        let claim = match control & 3 {
            0 => Some(String::from_utf8_lossy(rest).into_owned()),
            1 => Some(edited(&current, rest)),
            2 => Some(edited(&first, rest)),
            _ => None,
        };
        let outcome = validator.validate(claim.as_deref());
        assert_outcome(outcome, claim.as_deref(), requirement, &current, |claim| {
            (
                current == claim || (near_end && next == claim),
                previous == claim,
            )
        });
    }
}
