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
//!   it is the next window; the same window changes nothing; an earlier window (a clock that
//!   stepped back) starts afresh, with no previous nonce;
//! - a clock reading whose window number does not fit accepts nothing;
//! - no nonce is accepted later than `max_nonce_lifetime()` after it was handed out.

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
    (-3, 0),
    (1_000_000, 0),
];

const STARTS: [Duration; 4] = [
    Duration::seconds(1_000),
    Duration::seconds(1_767_225_600),
    Duration::nanoseconds(i64::MAX - 1),
    Duration::MAX,
];

fn nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// The window of `t`, computed independently of the crate; `None` when it (or a window on either
/// side of it, up to two away) does not fit in an `i64`.
fn window(t: Duration, interval: Duration) -> Option<i64> {
    let w = t
        .whole_nanoseconds()
        .div_euclid(interval.whole_nanoseconds());
    let w = i64::try_from(w).ok()?;
    (w > i64::MIN + 1 && w < i64::MAX - 1).then_some(w)
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
    /// The window the source holds, once the model has seen one.
    window: Option<i64>,
    current: Option<Nonce>,
    previous: Option<Nonce>,
    /// The clock's reading has no window: nothing is accepted.
    dead: bool,
}

impl Model {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            window: None,
            current: None,
            previous: None,
            dead: false,
        }
    }

    /// Moves the model to the clock's time, learning the new current nonce from `issue`, and
    /// returns that nonce.
    fn observe<S: NonceSource>(&mut self, now: Duration, source: &S) -> Nonce {
        let issued = source.issue();
        let Some(target) = window(now, self.interval) else {
            // The source keeps what it held; the nonce handed out is never stored.
            self.dead = true;
            assert!(self.current.as_ref() != Some(&issued));
            return issued;
        };
        self.dead = false;
        match (self.window, self.current.take()) {
            (Some(held), Some(current)) if held == target => {
                assert!(issued == current, "no rotation within the stored window");
                self.current = Some(current);
                return issued;
            }
            (Some(held), Some(current)) => {
                assert!(issued != current, "a rotation makes a new nonce");
                self.previous = (held.checked_add(1) == Some(target)).then_some(current);
            }
            _ => self.previous = None,
        }
        self.window = Some(target);
        self.current = Some(issued.clone());
        issued
    }
}

fn check_outcome<S: NonceSource>(
    validator: &NonceValidator<S>,
    model: &Model,
    claim: Option<&str>,
    requirement: Requirement,
) {
    let outcome = validator.validate(claim);
    let (Some(current), false) = (model.current.as_ref(), model.dead) else {
        assert_nothing_accepted(outcome, claim, requirement);
        return;
    };
    let previous = model.previous.as_ref();
    assert_outcome(outcome, claim, requirement, current, |claim| {
        (
            *current == claim,
            previous.is_some_and(|p| *p == claim),
        )
    });
}

/// Checks an outcome of `validate` at a time that has no window: every claim is refused with a
/// nonce other than the claim.
fn assert_nothing_accepted(
    outcome: Result<Accepted, UseDpopNonce>,
    claim: Option<&str>,
    requirement: Requirement,
) {
    match (claim, requirement, outcome) {
        (None, Requirement::Optional, Ok(accepted)) => assert!(accepted.refresh().is_some()),
        (None, Requirement::Required, Err(refused)) => {
            assert_eq!(refused.reason(), RejectReason::Missing)
        }
        (Some(claim), _, Err(refused)) => assert!(refused.nonce().as_str() != claim),
        (claim, requirement, outcome) => {
            panic!("{claim:?} at a time with no window ({requirement:?}) gave {outcome:?}")
        }
    }
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
    let validator = NonceValidator::new(source).with_requirement(requirement);
    let lifetime = validator.source().max_nonce_lifetime();
    let mut model = Model::new(interval);
    let first_at = clock.unix_time();
    let first = model.observe(first_at, validator.source());
    clock.advance(
        interval
            .saturating_mul(units)
            .saturating_add(Duration::nanoseconds(nanos)),
    );
    let current = model.observe(clock.unix_time(), validator.source());
    // The lifetime bound: the first nonce is refused once it is older than the lifetime.
    if clock
        .unix_time()
        .checked_sub(first_at)
        .is_some_and(|age| age > lifetime)
    {
        assert!(
            !validator.source().check(first.as_str()).is_accepted(),
            "a nonce outlived max_nonce_lifetime()"
        );
    }

    let claim = match control & 3 {
        0 => Some(String::from_utf8_lossy(rest).into_owned()),
        1 => Some(edited(&current, rest)),
        2 => Some(edited(&first, rest)),
        _ => None,
    };
    check_outcome(&validator, &model, claim.as_deref(), requirement);

    // The same claim against a source on the real clock: never accepted unless issued.
    let real = NonceValidator::new(InMemoryNonceSource::new()).with_requirement(requirement);
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
/// the last `lead` of `w`; after a step back, no window below the floor counts (see `floor`).
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
        let lead = source.lead();
        let validator = NonceValidator::new(source).with_requirement(requirement);
        let first = validator.issue();
        clock.advance(
            interval
                .saturating_mul(units)
                .saturating_add(Duration::nanoseconds(nanos)),
        );
        let now = clock.unix_time();
        // Times with no window accept nothing; the in-memory model covers that.
        let (Some(w), Some(s)) = (window(now, interval), window(start, interval)) else {
            return;
        };
        // The floor: no shared value of a window more than one behind the latest window seen
        // counts again, and after a longer step back none up to that window does.
        let floor = if w < s - 1 { s + 1 } else { (s - 1).max(w - 1) };
        let w = i128::from(w);
        let floor = i128::from(floor);
        let (Some(current), Some(previous), Some(next)) = (
            nonce_of(interval, w),
            nonce_of(interval, w - 1),
            nonce_of(interval, w + 1),
        ) else {
            return;
        };
        let issued = validator.issue();
        if w < floor {
            // No shared value counts: a fresh local nonce is handed out and accepted alone.
            assert!(issued != current && issued != previous && issued != next);
            let claim = match control & 3 {
                0 => Some(String::from_utf8_lossy(rest).into_owned()),
                1 => Some(edited(&issued, rest)),
                2 => Some(edited(&first, rest)),
                _ => None,
            };
            let outcome = validator.validate(claim.as_deref());
            assert_outcome(outcome, claim.as_deref(), requirement, &issued, |claim| {
                (issued == claim, false)
            });
            return;
        }
        assert!(issued == current, "issues the current window's nonce");
        let next_start = (w + 1) * interval.whole_nanoseconds();
        let near_end = now.whole_nanoseconds() >= next_start - lead.whole_nanoseconds();

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
                w - 1 >= floor && previous == claim,
            )
        });
    }
}
