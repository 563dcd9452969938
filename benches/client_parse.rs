//! Criterion benches for reading `WWW-Authenticate` values on the client side, to show that the
//! cost per byte stays flat as the values grow.
//!
//! ```text
//! cargo bench --features client --bench client_parse
//! ```
//!
//! Two sets, in one group (`client_parse`):
//!
//! - `parser/<n>`: the challenge parser with its caps lifted, on one challenge of `n` distinct
//!   parameters (`p0=1, p1=1, ...`), the shape that used to take quadratic time.
//! - `check_response/<size>`: the public entry point, caps in force, on a 401 whose one
//!   `WWW-Authenticate` value holds up to `size` bytes of challenges (within the caps, so it is
//!   parsed in full), and on a 300 KB value of distinct parameters, which is refused unread.
//!
//! After the group has run, the bench prints the median time per value and per KiB.

use std::hint::black_box;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use dpop_nonce::client::{NonceAdvice, check_response};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, StatusCode};

/// The crate's challenge parser, compiled into the bench so that it can be run without its caps.
#[path = "../src/client/challenge.rs"]
#[allow(dead_code)]
mod challenge;

use challenge::{Limits, MAX_CHALLENGES, MAX_PARAMS, MAX_VALUE_LEN, parse_challenges_with};

/// The group every bench below belongs to.
const GROUP: &str = "client_parse";

/// No caps at all.
const UNBOUNDED: Limits = Limits {
    max_len: usize::MAX,
    max_challenges: usize::MAX,
    max_params: usize::MAX,
};

/// Per bench: its name, the length of its input, and the time per call of each sample.
type Samples = Vec<(String, usize, Vec<f64>)>;

static SAMPLES: Mutex<Samples> = Mutex::new(Vec::new());

/// `DPoP p0=1, p1=1, ...` with `count` parameters.
fn distinct_params(count: usize) -> String {
    let mut value = String::from("DPoP ");
    for i in 0..count {
        if i > 0 {
            value.push_str(", ");
        }
        value.push_str(&format!("p{i}=1"));
    }
    value
}

/// At most `size` bytes of challenges within the caps, ending with a `DPoP` challenge that asks
/// for a nonce: filler challenges `S<c>` of up to [`MAX_PARAMS`] parameters `p<i>="x...x"`.
fn within_caps(size: usize) -> String {
    let last = r#"DPoP error="use_dpop_nonce""#;
    let filler = "x".repeat(26);
    let param = |i: usize| format!("p{i}=\"{filler}\", ");
    let mut value = String::new();
    'challenges: for c in 0..MAX_CHALLENGES - 1 {
        let scheme = format!("S{c} ");
        if value.len() + scheme.len() + param(0).len() + last.len() > size {
            break;
        }
        value.push_str(&scheme);
        for i in 0..MAX_PARAMS {
            let param = param(i);
            if value.len() + param.len() + last.len() > size {
                break 'challenges;
            }
            value.push_str(&param);
        }
    }
    value.push_str(last);
    value
}

/// A 401 whose one `WWW-Authenticate` value is `value`, with a `DPoP-Nonce`.
fn response_headers(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    headers.insert("dpop-nonce", HeaderValue::from_static("n-1"));
    headers
}

/// Runs `call` as bench `id` over an input of `len` bytes, keeping each sample's time per call.
fn bench(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, len: usize, call: impl Fn()) {
    group.throughput(Throughput::Bytes(len as u64));
    let mut times = Vec::new();
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                call();
            }
            let elapsed = start.elapsed();
            times.push(elapsed.as_secs_f64() / iters.max(1) as f64);
            elapsed
        });
    });
    SAMPLES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id.to_owned(), len, times));
}

fn benches(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(GROUP);

    for count in [1_000, 3_000, 10_000, 30_000, 100_000] {
        let value = distinct_params(count);
        let parsed = parse_challenges_with(value.as_bytes(), UNBOUNDED);
        assert!(parsed.is_ok_and(|c| c.len() == 1), "parses in full");
        bench(&mut group, &format!("parser/{count}"), value.len(), || {
            let _ = black_box(parse_challenges_with(
                black_box(value.as_bytes()),
                UNBOUNDED,
            ));
        });
    }

    for size in [1024, 2048, 4096, 8192, MAX_VALUE_LEN] {
        let value = within_caps(size);
        let headers = response_headers(&value);
        let advice = check_response(StatusCode::UNAUTHORIZED, &headers, b"", None);
        assert!(advice.should_retry(), "{size}: parsed in full: {advice:?}");
        bench(
            &mut group,
            &format!("check_response/{size}"),
            value.len(),
            || {
                let _ = black_box(check_response(
                    StatusCode::UNAUTHORIZED,
                    black_box(&headers),
                    b"",
                    None,
                ));
            },
        );
    }

    let hostile = format!("{}, DPoP error=\"use_dpop_nonce\"", distinct_params(30_000));
    let headers = response_headers(&hostile);
    let advice = check_response(StatusCode::UNAUTHORIZED, &headers, b"", None);
    assert_eq!(advice, NonceAdvice::NotUseDpopNonce, "refused");
    bench(&mut group, "check_response/over_cap", hostile.len(), || {
        let _ = black_box(check_response(
            StatusCode::UNAUTHORIZED,
            black_box(&headers),
            b"",
            None,
        ));
    });

    group.finish();
}

/// The median of `times`, in seconds.
fn median(times: &mut [f64]) -> Option<f64> {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied()
}

fn report() {
    let mut samples = SAMPLES.lock().unwrap_or_else(PoisonError::into_inner);
    if samples.iter().all(|(_, _, times)| times.is_empty()) {
        return;
    }
    println!();
    println!(
        "{:<28} {:>10} {:>16} {:>16}",
        "bench", "bytes", "µs per value", "µs per KiB"
    );
    for (id, len, times) in samples.iter_mut() {
        let Some(seconds) = median(times) else {
            continue;
        };
        let per_kib = seconds / (*len as f64 / 1024.0);
        println!(
            "{id:<28} {len:>10} {:>16.3} {:>16.4}",
            seconds * 1e6,
            per_kib * 1e6
        );
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    report();
}
