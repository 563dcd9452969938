//! Many threads issue and validate while time moves across many rotations. Bounded by
//! iteration counts, never by wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use dpop_nonce::{
    Clock, InMemoryNonceSource, ManualClock, NonceValidator, RejectReason, Rotation, SystemClock,
};
use time::Duration;

const WORKERS: usize = 4;
const ROUNDS_PER_WORKER: usize = 20_000;

/// Issues, then validates, and checks the outcome against the windows read around it: a nonce
/// validated no later than the window after the one in which the worker started must be accepted.
fn run_worker<C: Clock>(validator: &NonceValidator<InMemoryNonceSource<C>>, clock: &C) -> u64 {
    let rotation = validator.source().rotation();
    let mut refusals_allowed = 0;
    for round in 0..ROUNDS_PER_WORKER {
        let before = rotation.window_of(clock.unix_time());
        let nonce = validator.issue();
        let outcome = validator.validate(Some(nonce.as_str()));
        let after = rotation.window_of(clock.unix_time());
        match outcome {
            Ok(_) => {}
            Err(refused) => {
                assert!(
                    after >= before + 2,
                    "round {round}: nonce from window >= {before} refused in window {after}"
                );
                assert_eq!(refused.reason(), RejectReason::Mismatch);
                assert_ne!(refused.nonce(), &nonce);
                refusals_allowed += 1;
            }
        }
        // A value that was never issued is never accepted, whatever the timing.
        let foreign = dpop_nonce::Nonce::generate();
        assert!(validator.validate(Some(foreign.as_str())).is_err());
    }
    refusals_allowed
}

#[test]
fn concurrent_issue_and_validate_across_manual_rotations() {
    let clock = Arc::new(ManualClock::at_unix(Duration::days(19_000)));
    let source = InMemoryNonceSource::builder()
        .rotation(Rotation::new(Duration::seconds(10)).unwrap().interval())
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let validator = Arc::new(NonceValidator::new(source));
    let done = Arc::new(AtomicBool::new(false));
    let advances = Arc::new(AtomicU64::new(0));

    let ticker = {
        let (clock, done, advances) =
            (Arc::clone(&clock), Arc::clone(&done), Arc::clone(&advances));
        thread::spawn(move || {
            // Bounded: at most this many steps, each a third of a window.
            for _ in 0..2_000_000u32 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                clock.advance(Duration::milliseconds(3_333));
                advances.fetch_add(1, Ordering::Relaxed);
                thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (validator, clock) = (Arc::clone(&validator), Arc::clone(&clock));
            thread::spawn(move || run_worker(&validator, &clock))
        })
        .collect();
    for worker in workers {
        worker.join().expect("no worker panicked");
    }
    done.store(true, Ordering::Relaxed);
    ticker.join().expect("the ticker did not panic");
    let rotations = advances.load(Ordering::Relaxed) / 3;
    assert!(rotations >= 10, "only {rotations} rotations happened");
}

#[test]
fn concurrent_issue_and_validate_on_the_system_clock_with_fast_rotation() {
    // A 200 µs rotation makes real rotations race with readers on the real clock.
    let source = InMemoryNonceSource::builder()
        .rotation(
            Rotation::new(Duration::microseconds(200))
                .unwrap()
                .interval(),
        )
        .clock(SystemClock)
        .build()
        .unwrap();
    let validator = Arc::new(NonceValidator::new(source));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let validator = Arc::clone(&validator);
            thread::spawn(move || run_worker(&validator, &SystemClock))
        })
        .collect();
    for worker in workers {
        worker.join().expect("no worker panicked");
    }
}
