//! The check path of every source on the system clock, one criterion group per source
//! (`memory`, `derived`, `redis`), and each source's target ratios against the baselines
//! (`common/baseline.rs`) measured back to back.
//!
//! ```text
//! cargo bench --all-features --bench sources -- --warm-up-time 1 --measurement-time 3
//! python3 scripts/bench_report.py
//! ```
//!
//! The Redis benches start a private `redis-server` on a unix socket and are skipped, with a
//! loud line, when it is not on `PATH`.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use common::baseline::Baselines;
use common::{
    ShiftedSystemClock, huge_claim, long_rotation, malformed_claim, paired, unknown_like,
};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource, NonceValidator};
use time::Duration;

/// Runs the five claim shapes (current, previous, unknown, malformed, 1 MiB) and `issue` against
/// `validator`. The previous-nonce case runs against `previous`, a validator whose source has
/// moved one window on since it issued `previous_claim`.
fn bench_claims<S: NonceSource, P: NonceSource>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    validator: &NonceValidator<S>,
    previous: &NonceValidator<P>,
    previous_claim: &str,
) {
    let current = validator.issue();
    let current = current.as_str();
    let unknown = unknown_like(&validator.issue());
    let malformed = malformed_claim();
    let huge = huge_claim();

    // Sanity: every claim takes the path it is named after.
    debug_assert!(matches!(validator.validate(Some(current)), Ok(a) if a.refresh().is_none()));
    debug_assert!(
        matches!(previous.validate(Some(previous_claim)), Ok(a) if a.refresh().is_some())
    );

    group.bench_function("current", |b| {
        b.iter(|| validator.validate(black_box(Some(current))).is_ok())
    });
    group.bench_function("check-current", |b| {
        b.iter(|| validator.source().check(black_box(current)))
    });
    group.bench_function("previous", |b| {
        b.iter(|| previous.validate(black_box(Some(previous_claim))).is_ok())
    });
    group.bench_function("unknown", |b| {
        b.iter(|| {
            validator
                .validate(black_box(Some(unknown.as_str())))
                .is_ok()
        })
    });
    group.bench_function("malformed", |b| {
        b.iter(|| {
            validator
                .validate(black_box(Some(malformed.as_str())))
                .is_ok()
        })
    });
    group.bench_function("1MiB", |b| {
        b.iter(|| validator.validate(black_box(Some(huge.as_str()))).is_ok())
    });
    group.bench_function("issue", |b| b.iter(|| validator.issue()));
}

/// A forced rotation: the clock moves one window before every `issue`.
fn bench_rotation<S: NonceSource>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    clock: &ManualClock,
    source: &S,
) {
    group.bench_function("rotation", |b| {
        b.iter(|| {
            clock.advance(Duration::minutes(5));
            source.issue()
        })
    });
}

/// A source's `validate` of its current nonce against the floor and the naive baseline, and a
/// 1 MiB claim against a current one, back to back, written under `{prefix}-vs-floor`,
/// `{prefix}-vs-naive` and `{prefix}-1mib-vs-current`.
fn pair_with_baselines<S: NonceSource>(
    prefix: &str,
    validator: &NonceValidator<S>,
    baselines: &Baselines,
) {
    let current = validator.issue();
    let current = current.as_str();
    let huge = huge_claim();
    let claim = baselines.claim.as_str();
    let validate = |claim: &str| validator.validate(black_box(Some(claim))).is_ok();
    paired::measure(
        &format!("{prefix}-vs-floor"),
        || validate(current),
        || baselines.floor.check(black_box(claim)),
    );
    paired::measure(
        &format!("{prefix}-vs-naive"),
        || validate(current),
        || baselines.naive.check(black_box(claim)),
    );
    paired::measure(
        &format!("{prefix}-1mib-vs-current"),
        || validate(&huge),
        || validate(current),
    );
}

/// The in-memory source; returns its validator, the reference for the Redis source.
fn memory(criterion: &mut Criterion, baselines: &Baselines) -> NonceValidator<InMemoryNonceSource> {
    let validator = NonceValidator::new(
        InMemoryNonceSource::builder()
            .rotation(long_rotation())
            .build()
            .expect("the longest rotation is valid"),
    );
    let shifted = Arc::new(ShiftedSystemClock::default());
    let previous = NonceValidator::new(
        InMemoryNonceSource::builder()
            .rotation(long_rotation())
            .clock(Arc::clone(&shifted))
            .build()
            .expect("the longest rotation is valid"),
    );
    let old = previous.issue();
    shifted.shift(long_rotation());
    let _ = previous.issue();

    let manual = Arc::new(ManualClock::default());
    let rotating = InMemoryNonceSource::builder()
        .rotation(Duration::minutes(5))
        .clock(Arc::clone(&manual))
        .build()
        .expect("a 5-minute rotation is valid");

    let mut group = criterion.benchmark_group("memory");
    bench_claims(&mut group, &validator, &previous, old.as_str());
    bench_rotation(&mut group, &manual, &rotating);
    group.finish();

    pair_with_baselines("memory", &validator, baselines);
    let current = validator.issue();
    let unknown = unknown_like(&current);
    let huge = huge_claim();
    let claim = baselines.claim.as_str();
    let validate = |claim: &str| validator.validate(black_box(Some(claim))).is_ok();
    paired::measure(
        "memory-vs-floor-since-epoch",
        || validate(current.as_str()),
        || baselines.floor.check_since_epoch(black_box(claim)),
    );
    paired::measure(
        "memory-1mib-vs-unknown",
        || validate(&huge),
        || validate(&unknown),
    );
    validator
}

#[cfg(feature = "derived")]
fn derived(criterion: &mut Criterion, baselines: &Baselines) {
    use dpop_nonce::Clock;
    use dpop_nonce::derived::DerivedNonceSource;

    fn on<C: Clock>(clock: C, rotation: Duration) -> DerivedNonceSource<C> {
        DerivedNonceSource::builder("bench")
            .secret([0x5a; 32])
            .rotation(rotation)
            .clock(clock)
            .build()
            .expect("the bench's derived source is valid")
    }

    let validator = NonceValidator::new(on(dpop_nonce::SystemClock, long_rotation()));
    let shifted = Arc::new(ShiftedSystemClock::default());
    let previous = NonceValidator::new(on(Arc::clone(&shifted), long_rotation()));
    let old = previous.issue();
    shifted.shift(long_rotation());
    let _ = previous.issue();
    // Every issue of `rotating` lands in a new window and derives its values.
    let manual = Arc::new(ManualClock::default());
    let rotating = on(Arc::clone(&manual), Duration::minutes(5));

    let mut group = criterion.benchmark_group("derived");
    bench_claims(&mut group, &validator, &previous, old.as_str());
    bench_rotation(&mut group, &manual, &rotating);
    group.finish();

    pair_with_baselines("derived", &validator, baselines);
}

#[cfg(not(feature = "derived"))]
fn derived(_criterion: &mut Criterion, _baselines: &Baselines) {
    println!("derived benches: skipped (build with --features derived or --all-features)");
}

#[cfg(feature = "redis")]
fn redis(criterion: &mut Criterion, memory: &NonceValidator<InMemoryNonceSource>) {
    use dpop_nonce::redis::RedisNonceSource;

    let Some(server) = common::RedisServer::start() else {
        common::skipped("redis benches", "no `redis-server` could be started");
        return;
    };
    let Some(client) = server.client() else {
        common::skipped("redis benches", "no client for the unix socket");
        return;
    };
    let builder =
        |rotation: Duration| RedisNonceSource::builder(client.clone(), "bench").rotation(rotation);
    let shifted = Arc::new(ShiftedSystemClock::default());
    let manual = Arc::new(ManualClock::default());
    let built = (
        builder(long_rotation()).build(),
        builder(long_rotation()).clock(Arc::clone(&shifted)).build(),
        builder(Duration::minutes(5))
            .clock(Arc::clone(&manual))
            .build(),
    );
    let (source, previous, rotating) = match built {
        (Ok(source), Ok(previous), Ok(rotating)) => (source, previous, rotating),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            common::skipped("redis benches", &format!("the source did not start: {err}"));
            return;
        }
    };
    let validator = NonceValidator::new(source);
    let previous = NonceValidator::new(previous);
    let old = previous.issue();
    shifted.shift(long_rotation());
    let _ = previous.issue();

    let mut group = criterion.benchmark_group("redis");
    // Steady state: the window's value is cached, so the checks make no Redis call.
    bench_claims(&mut group, &validator, &previous, old.as_str());
    // Every issue lands in a new window: one round trip to Redis.
    bench_rotation(&mut group, &manual, &rotating);
    group.finish();

    let current = validator.issue();
    let memory_current = memory.issue();
    paired::measure(
        "redis-vs-memory",
        || {
            validator
                .validate(black_box(Some(current.as_str())))
                .is_ok()
        },
        || {
            memory
                .validate(black_box(Some(memory_current.as_str())))
                .is_ok()
        },
    );
    drop(server);
}

#[cfg(not(feature = "redis"))]
fn redis(_criterion: &mut Criterion, _memory: &NonceValidator<InMemoryNonceSource>) {
    println!("redis benches: skipped (build with --features redis or --all-features)");
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let baselines = Baselines::new();
    let memory = memory(&mut criterion, &baselines);
    derived(&mut criterion, &baselines);
    redis(&mut criterion, &memory);
    criterion.final_summary();
}
