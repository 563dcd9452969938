//! Property test: the in-memory source against a simple model of windows.
//!
//! The model: a nonce issued in window `w` is `Current` while the clock is in `w`, `Previous`
//! in `w + 1`, and `Unknown` afterwards; a value that was never issued is never accepted.

use std::sync::Arc;

use dpop_nonce::{
    Clock, InMemoryNonceSource, ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator,
    Rotation,
};
use proptest::prelude::*;
use time::Duration;

const ROTATION_SECONDS: i64 = 60;

#[derive(Debug, Clone)]
enum Step {
    /// Move the clock forward by this many milliseconds.
    Advance(i64),
    /// Ask for the current nonce and remember it with its window.
    Issue,
    /// Check a previously issued nonce (index modulo the number issued).
    CheckIssued(usize),
    /// Check a value that was never issued.
    CheckForeign,
    /// Check a previously issued nonce with one character changed.
    CheckTampered(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop_oneof![
            0..2_000i64,
            0..(ROTATION_SECONDS * 1_000),
            (ROTATION_SECONDS * 1_000 - 10)..(ROTATION_SECONDS * 1_000 + 10),
            0..(ROTATION_SECONDS * 5_000),
        ]
        .prop_map(Step::Advance),
        2 => Just(Step::Issue),
        4 => any::<usize>().prop_map(Step::CheckIssued),
        1 => Just(Step::CheckForeign),
        1 => (any::<usize>(), 0..Nonce::GENERATED_LEN).prop_map(|(i, at)| Step::CheckTampered(i, at)),
    ]
}

fn expected(issued_in: i64, now: i64) -> NonceCheck {
    match now - issued_in {
        0 => NonceCheck::Current,
        1 => NonceCheck::Previous,
        _ => NonceCheck::Unknown,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn source_matches_the_window_model(
        start_ms in -10_000_000_000i64..10_000_000_000_000,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let rotation = Rotation::new(Duration::seconds(ROTATION_SECONDS)).unwrap();
        let clock = Arc::new(ManualClock::at_unix(Duration::milliseconds(start_ms)));
        let source = InMemoryNonceSource::builder().rotation(rotation.interval()).clock(Arc::clone(&clock)).build().unwrap();
        let validator = NonceValidator::new(&source);
        let mut issued: Vec<(Nonce, i64)> = Vec::new();

        for step in steps {
            let now = rotation.window_of(clock.unix_time());
            match step {
                Step::Advance(ms) => clock.advance(Duration::milliseconds(ms)),
                Step::Issue => issued.push((source.issue(), now)),
                Step::CheckIssued(i) if !issued.is_empty() => {
                    let (nonce, window) = &issued[i % issued.len()];
                    let want = expected(*window, now);
                    prop_assert_eq!(source.check(nonce.as_str()), want);
                    let outcome = validator.validate(Some(nonce.as_str()));
                    prop_assert_eq!(outcome.is_ok(), want.is_accepted());
                    match outcome {
                        Ok(accepted) => prop_assert_eq!(
                            accepted.refresh().is_some(),
                            want == NonceCheck::Previous
                        ),
                        Err(refused) => prop_assert_ne!(refused.nonce(), nonce),
                    }
                }
                Step::CheckIssued(_) => {}
                Step::CheckForeign => {
                    let foreign = Nonce::generate();
                    prop_assert_eq!(source.check(foreign.as_str()), NonceCheck::Unknown);
                    prop_assert!(validator.validate(Some(foreign.as_str())).is_err());
                }
                Step::CheckTampered(i, at) if !issued.is_empty() => {
                    let (nonce, _) = &issued[i % issued.len()];
                    let mut bytes = nonce.as_str().as_bytes().to_vec();
                    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                    let tampered = String::from_utf8(bytes).unwrap();
                    prop_assert_eq!(source.check(&tampered), NonceCheck::Unknown);
                }
                Step::CheckTampered(..) => {}
            }
        }
    }
}
