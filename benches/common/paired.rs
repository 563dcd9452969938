//! Ratios timed back to back, so that a drift in the machine's speed between two benches does
//! not enter the ratio.
//!
//! On a shared machine, criterion's medians of the *same* operation, taken a minute apart, can
//! differ by 40 %. So every target ratio is also measured here: in each round, both sides run
//! `ITERS` calls back to back (in alternating order), and the round gives one ratio; the result
//! is the median over the rounds, with the quartiles as its spread. Each result is written to
//! `{criterion home}/back-to-back/{key}.json`, where `scripts/bench_report.py` reads it.

use std::hint::black_box;
use std::time::Instant;

/// Rounds per ratio of [`measure`]; odd, so the median is one round's ratio.
const ROUNDS: usize = 301;

/// Calls per side and round: long enough to dwarf the cost of reading the clock, short enough
/// that the machine's speed does not change within a round.
const ITERS: u32 = 4_000;

/// Whether ratios are measured in this run: only in a full run (`cargo bench`), not in the
/// smoke run of `cargo test --benches`.
fn enabled() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Measures `numerator / denominator` back to back, each side timed over `ITERS` calls, and
/// writes it under `key`.
pub fn measure<A, B>(
    key: &str,
    mut numerator: impl FnMut() -> A,
    mut denominator: impl FnMut() -> B,
) {
    measure_timed(
        key,
        ROUNDS,
        || time(&mut numerator),
        || time(&mut denominator),
    );
}

/// Measures `numerator / denominator` back to back over `rounds` rounds, where each side times
/// itself and returns the time it took (in any unit, the same for both), and writes it under
/// `key`.
pub fn measure_timed(
    key: &str,
    rounds: usize,
    mut numerator: impl FnMut() -> f64,
    mut denominator: impl FnMut() -> f64,
) {
    if !enabled() {
        return;
    }
    // One untimed round to warm caches and predictors.
    numerator();
    denominator();
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|round| {
            let (n, d) = if round % 2 == 0 {
                let n = numerator();
                (n, denominator())
            } else {
                let d = denominator();
                (numerator(), d)
            };
            n / d
        })
        .filter(|ratio| ratio.is_finite())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ratios
            .get(((ratios.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    if let (Some(median), Some(q1), Some(q3)) = (at(0.5), at(0.25), at(0.75)) {
        write(key, median, q1, q3, ratios.len());
    }
}

/// Writes one result as a small JSON object; a failure to write is reported, not fatal.
fn write(key: &str, median: f64, q1: f64, q3: f64, rounds: usize) {
    let dir = super::criterion_home().join("back-to-back");
    let json = format!(
        "{{\"key\":\"{key}\",\"median\":{median},\"q1\":{q1},\"q3\":{q3},\"rounds\":{rounds}}}\n"
    );
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{key}.json")), json));
    match written {
        Ok(()) => println!("back to back {key}: {median:.3} [{q1:.3}, {q3:.3}]"),
        Err(err) => println!("back to back {key}: {median:.3} (not written: {err})"),
    }
}

/// Seconds taken by `ITERS` calls of `f`, each result kept from the optimiser as criterion's
/// `iter` does. Generic, so `f` is inlined into the loop as in criterion's own loop: a call
/// through a pointer would add the same cost to both sides and pull every ratio towards 1.
fn time<T>(f: &mut impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERS {
        black_box(f());
    }
    start.elapsed().as_secs_f64()
}
