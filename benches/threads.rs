//! One and two threads checking at once (group `threads`): the floor, which shares nothing, as
//! the control for what this machine's second processor gives, then the in-memory and derived
//! sources validating their current nonce.
//!
//! ```text
//! cargo bench --all-features --bench threads -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each figure is the wall time from the first thread's start to the last one's end, divided by
//! the number of threads: perfect scaling halves it on two threads. Each pair is also measured
//! back to back (see `common/paired.rs`).

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration as StdDuration, Instant};

use common::baseline::Baselines;
use common::{long_rotation, paired};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use dpop_nonce::{InMemoryNonceSource, NonceSource, NonceValidator};

/// Calls per thread in one back-to-back round: long enough (some 20 ms) that starting the
/// threads, and waking the second processor, is noise.
const THREAD_ITERS: u64 = 400_000;

/// Back-to-back rounds per pair.
const THREAD_ROUNDS: usize = 31;

/// `threads` threads each run `op` `iters` times, started together by a barrier. The time
/// returned is the wall time from the first start to the last finish, divided by the number of
/// threads: the time per operation of the whole machine, times `iters`.
fn concurrent(threads: u32, iters: u64, op: &(impl Fn() + Sync)) -> StdDuration {
    let barrier = Barrier::new(threads as usize);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first) / threads,
        _ => StdDuration::ZERO,
    }
}

/// One and two threads running `op`, in criterion (`{name}/{1,2}-thread`) and back to back
/// (written under `key`: time per operation on two threads over one).
fn bench_threads(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    key: &str,
    op: &(impl Fn() + Sync),
) {
    for threads in [1u32, 2] {
        group.bench_function(format!("{name}/{threads}-thread"), |b| {
            b.iter_custom(|iters| concurrent(threads, iters, op))
        });
    }
    let per_op = |threads| concurrent(threads, THREAD_ITERS, op).as_secs_f64();
    paired::measure_timed(key, THREAD_ROUNDS, || per_op(2), || per_op(1));
}

/// [`bench_threads`] for a validator checking its current nonce.
fn bench_validate_threads<S: NonceSource>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    key: &str,
    validator: &NonceValidator<S>,
) {
    let claim = validator.issue();
    let op = || {
        black_box(validator.validate(black_box(Some(claim.as_str()))).is_ok());
    };
    bench_threads(group, name, key, &op);
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("threads");

    let baselines = Baselines::new();
    bench_threads(&mut group, "floor", "threads-floor", &|| {
        black_box(baselines.floor.check(black_box(&baselines.claim)));
    });

    let memory = InMemoryNonceSource::builder()
        .rotation(long_rotation())
        .build()
        .expect("the longest rotation is valid");
    bench_validate_threads(
        &mut group,
        "memory",
        "threads-memory",
        &NonceValidator::new(memory),
    );

    #[cfg(feature = "derived")]
    {
        let derived = dpop_nonce::derived::DerivedNonceSource::builder("bench")
            .secret([0x5a; 32])
            .rotation(long_rotation())
            .build()
            .expect("the bench's derived source is valid");
        bench_validate_threads(
            &mut group,
            "derived",
            "threads-derived",
            &NonceValidator::new(derived),
        );
    }

    group.finish();
    criterion.final_summary();
}
