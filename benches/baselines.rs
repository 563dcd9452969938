//! The baselines alone: clock reads, the floor and the naive `Mutex` + `==` check, each timed by
//! criterion (group `baseline`). The sources are compared with the same baselines back to back
//! in `benches/sources.rs`; `scripts/bench_report.py` prints the ratios.
//!
//! ```text
//! cargo bench --all-features --bench baselines -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use common::baseline::Baselines;
use criterion::Criterion;
use dpop_nonce::{Clock, SystemClock};

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let Baselines {
        floor,
        naive,
        claim,
    } = Baselines::new();
    let claim = claim.as_str();

    let mut group = criterion.benchmark_group("baseline");
    group.bench_function("clock-read", |b| b.iter(|| black_box(SystemTime::now())));
    group.bench_function("clock-since-epoch", |b| {
        b.iter(|| black_box(SystemTime::now().duration_since(UNIX_EPOCH)))
    });
    group.bench_function("system-clock", |b| {
        b.iter(|| black_box(SystemClock.unix_time()))
    });
    group.bench_function("floor", |b| b.iter(|| floor.check(black_box(claim))));
    group.bench_function("floor-since-epoch", |b| {
        b.iter(|| floor.check_since_epoch(black_box(claim)))
    });
    group.bench_function("naive", |b| b.iter(|| naive.check(black_box(claim))));
    group.finish();
    criterion.final_summary();
}
