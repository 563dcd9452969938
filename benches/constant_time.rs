//! A dudect-style statistical test of the check path (`dudect-bencher`).
//!
//! For every source, two classes of claims of the same length, randomly interleaved, are checked
//! against it:
//!
//! - left: the current nonce with only its *last* byte changed (a 42-byte common prefix);
//! - right: the current nonce with its *first* byte changed.
//!
//! Each bench holds many sources (`SECRETS`) and picks one at random per measurement, and each
//! claim is made afresh (the changed byte drawn at random), so the claims of both classes are
//! uniformly random strings: only their relation to the secret differs. (With a single secret,
//! the left claims would all share 42 fixed bytes and the right ones would not, and the public
//! handling of the claim's own bytes would show up as a difference that has nothing to do with
//! the secret.) Every claim is timed from the same buffer, reached by the same whole copy; see
//! `run` for why. Control benches, with both classes built alike, show the harness's own bias.
//!
//! A comparison that stops at the first difference takes longer on the left class. Welch's t
//! statistic over the two timing distributions (cropped at several percentiles, the largest |t|
//! reported) stays below 4.5 for a constant-time check. The naive `==` of `str` is measured the
//! same way, to show that the test sees a leak on this machine when there is one.
//!
//! ```text
//! cargo bench --all-features --bench constant_time
//! DUDECT_MEASUREMENTS=4000000 cargo bench --all-features --bench constant_time -- --filter memory
//! ```
//!
//! Not run in CI: timing statistics need a quiet machine.

use std::path::PathBuf;
use std::sync::OnceLock;

use dpop_nonce::{InMemoryNonceSource, Nonce, NonceSource, NonceValidator, Rotation};
use dudect_bencher::ctbench::{BenchMetadata, BenchName, BenchOpts, run_benches_console};
use dudect_bencher::rand::RngExt;
use dudect_bencher::{BenchRng, Class, CtRunner};

/// Measurements per bench when run by `cargo bench`; `DUDECT_MEASUREMENTS` overrides it.
const DEFAULT_MEASUREMENTS: usize = 2_000_000;

/// Measurements per bench when run as a smoke test (`cargo test --benches`).
const SMOKE_MEASUREMENTS: usize = 20_000;

/// Secrets (sources, stored values) per bench. Every measurement picks one at random, so that
/// in both classes every byte of the claim is uniformly distributed: the classes differ only in
/// *where the claim differs from the secret*, not in the claim's own bytes, whose handling
/// (the grammar check, for one) is public and may take data-dependent time.
const SECRETS: usize = 512;

/// Length of the long value the naive baseline is shown with.
const LONG: usize = 4_096;

static MEASUREMENTS: OnceLock<usize> = OnceLock::new();

fn measurements() -> usize {
    *MEASUREMENTS.get().unwrap_or(&SMOKE_MEASUREMENTS)
}

/// Base64url characters: every one is an NQCHAR, so both classes stay well formed and take the
/// same (mismatch) path through the validator.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A base64url character other than `not`.
fn other_char(rng: &mut BenchRng, not: u8) -> u8 {
    loop {
        let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
        if c != not {
            return c;
        }
    }
}

/// A random base64url string of `len` characters.
fn random_value(rng: &mut BenchRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Which byte each class changes.
#[derive(Clone, Copy)]
enum Design {
    /// Left: the last byte (a long common prefix); right: the first byte.
    PrefixVsFirst,
    /// Both classes change the first byte: a control, whose |t| shows the harness's own bias.
    Control,
}

impl Design {
    /// The byte of a `len`-byte secret that a claim of `class` changes.
    fn changed_byte(self, class: Class, len: usize) -> usize {
        match (self, class) {
            (Self::PrefixVsFirst, Class::Left) => len - 1,
            _ => 0,
        }
    }
}

/// Measurements whose claims are made together, ahead of timing them.
const BATCH: usize = 4_096;

/// Times `check(k, claim)` on the two classes, interleaved at random, over the secrets
/// `values` (`k` indexes them).
///
/// Every claim is made afresh: the secret `k` (drawn at random) with one byte changed to a random
/// other character. So the two classes differ only in where the claim differs from the secret,
/// never in the claim's own bytes. Two details keep the harness itself from telling the classes
/// apart:
///
/// - Every claim is timed from one buffer, the same for every measurement. (A fixed set of
///   claims at fixed addresses gives each claim a cost of its own, which a random split into
///   classes turns into a difference that more measurements only make more significant.)
/// - Claims are made in batches, ahead of timing, and each reaches the buffer by one whole copy:
///   the same stores for both classes. (Changing a byte of the claim right before timing leaves
///   a one-byte store at a place that depends on the class, and how the processor serves the
///   loads that follow from it depends on where they overlap.)
fn run<T>(
    runner: &mut CtRunner,
    rng: &mut BenchRng,
    values: &[String],
    design: Design,
    check: impl Fn(usize, &str) -> T,
) {
    let len = values.first().map_or(0, String::len);
    let mut batch: Vec<(Class, usize)> = Vec::with_capacity(BATCH);
    let mut claims = vec![0u8; BATCH * len];
    let mut buffer = vec![0u8; len];
    let mut remaining = measurements();
    while remaining > 0 {
        batch.clear();
        for draft in claims
            .chunks_exact_mut(len.max(1))
            .take(remaining.min(BATCH))
        {
            let class = if rng.random::<bool>() {
                Class::Left
            } else {
                Class::Right
            };
            let k = rng.random_range(0..values.len());
            let at = design.changed_byte(class, len);
            draft.copy_from_slice(values[k].as_bytes());
            draft[at] = other_char(rng, draft[at]);
            batch.push((class, k));
        }
        for (&(class, k), draft) in batch.iter().zip(claims.chunks_exact(len.max(1))) {
            buffer.copy_from_slice(draft);
            let claim = std::str::from_utf8(&buffer).unwrap_or_default();
            runner.run_one(class, || check(k, claim));
        }
        remaining -= batch.len();
    }
}

/// A source that never rotates during the run (the longest rotation), on the system clock.
fn memory_source() -> InMemoryNonceSource {
    InMemoryNonceSource::builder()
        .rotation(Rotation::MAX)
        .build()
        .unwrap_or_default()
}

/// `SECRETS` validators over in-memory sources, and their current nonces.
fn memory_validators() -> (Vec<NonceValidator<InMemoryNonceSource>>, Vec<String>) {
    let validators: Vec<_> = (0..SECRETS)
        .map(|_| NonceValidator::new(memory_source()))
        .collect();
    let values = validators.iter().map(|v| v.issue().to_string()).collect();
    (validators, values)
}

fn memory_check(runner: &mut CtRunner, rng: &mut BenchRng) {
    let (validators, values) = memory_validators();
    run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
        validators[k].source().check(claim)
    });
}

fn memory_validate(runner: &mut CtRunner, rng: &mut BenchRng) {
    let (validators, values) = memory_validators();
    run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
        validators[k].validate(Some(claim)).is_ok()
    });
}

/// The harness's own bias: both classes alike.
fn control_memory_validate(runner: &mut CtRunner, rng: &mut BenchRng) {
    let (validators, values) = memory_validators();
    run(runner, rng, &values, Design::Control, |k, claim| {
        validators[k].validate(Some(claim)).is_ok()
    });
}

/// The harness's own bias on the smallest operation: both classes alike.
fn control_nonce_eq(runner: &mut CtRunner, rng: &mut BenchRng) {
    let stored: Vec<Nonce> = (0..SECRETS).map(|_| Nonce::generate()).collect();
    let values: Vec<String> = stored.iter().map(Nonce::to_string).collect();
    run(runner, rng, &values, Design::Control, |k, claim| {
        stored[k] == claim
    });
}

/// `Nonce`'s own `==`, which users are told to use in hand-written sources.
fn nonce_eq(runner: &mut CtRunner, rng: &mut BenchRng) {
    let stored: Vec<Nonce> = (0..SECRETS).map(|_| Nonce::generate()).collect();
    let values: Vec<String> = stored.iter().map(Nonce::to_string).collect();
    run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
        stored[k] == claim
    });
}

/// The naive baseline on a generated-length value: `str`'s `==`.
fn naive_eq_43(runner: &mut CtRunner, rng: &mut BenchRng) {
    let values: Vec<String> = (0..SECRETS)
        .map(|_| random_value(rng, Nonce::GENERATED_LEN))
        .collect();
    let stored = values.clone();
    run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
        stored[k] == claim
    });
}

/// The naive baseline on a long value, where an early exit is many nanoseconds.
fn naive_eq_4096(runner: &mut CtRunner, rng: &mut BenchRng) {
    let values: Vec<String> = (0..SECRETS / 8).map(|_| random_value(rng, LONG)).collect();
    let stored = values.clone();
    run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
        stored[k] == claim
    });
}

/// The sources behind features; empty lists when a feature is off.
mod extra {
    #[allow(unused_imports)]
    use super::*;

    #[cfg(feature = "derived")]
    fn derived_validators(
        rng: &mut BenchRng,
    ) -> (
        Vec<NonceValidator<dpop_nonce::derived::DerivedNonceSource>>,
        Vec<String>,
    ) {
        let validators: Vec<_> = (0..SECRETS)
            .filter_map(|_| {
                let secret: [u8; 32] = rng.random();
                dpop_nonce::derived::DerivedNonceSource::builder("bench")
                    .secret(secret)
                    .rotation(Rotation::MAX)
                    .build()
                    .ok()
                    .map(NonceValidator::new)
            })
            .collect();
        let values = validators.iter().map(|v| v.issue().to_string()).collect();
        (validators, values)
    }

    #[cfg(feature = "derived")]
    fn derived_check(runner: &mut CtRunner, rng: &mut BenchRng) {
        let (validators, values) = derived_validators(rng);
        run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
            validators[k].source().check(claim)
        });
    }

    #[cfg(feature = "derived")]
    fn derived_validate(runner: &mut CtRunner, rng: &mut BenchRng) {
        let (validators, values) = derived_validators(rng);
        run(runner, rng, &values, Design::PrefixVsFirst, |k, claim| {
            validators[k].validate(Some(claim)).is_ok()
        });
    }

    pub(super) fn benches() -> Vec<BenchMetadata> {
        #[allow(unused_mut)]
        let mut benches = Vec::new();
        #[cfg(feature = "derived")]
        {
            benches.push(bench("derived_check", derived_check));
            benches.push(bench("derived_validate", derived_validate));
        }
        benches
    }
}

fn bench(name: &'static str, benchfn: fn(&mut CtRunner, &mut BenchRng)) -> BenchMetadata {
    BenchMetadata {
        name: BenchName(name),
        seed: None,
        benchfn,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and gets a short smoke run.
    let mut args = std::env::args().skip(1);
    let mut opts = BenchOpts::default();
    let mut full = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => full = true,
            "--filter" => opts.filter = args.next(),
            "--out" => opts.file_out = args.next().map(PathBuf::from),
            _ => {}
        }
    }
    let n = std::env::var("DUDECT_MEASUREMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full {
            DEFAULT_MEASUREMENTS
        } else {
            SMOKE_MEASUREMENTS
        });
    let _ = MEASUREMENTS.set(n);
    println!("{n} measurements per bench; |max t| < 4.5 means no leak was found");

    let mut benches = vec![
        bench("memory_check", memory_check),
        bench("memory_validate", memory_validate),
        bench("control_memory_validate", control_memory_validate),
        bench("nonce_eq", nonce_eq),
        bench("control_nonce_eq", control_nonce_eq),
        bench("naive_eq_43", naive_eq_43),
        bench("naive_eq_4096", naive_eq_4096),
    ];
    benches.extend(extra::benches());
    if let Err(err) = run_benches_console(opts, benches) {
        eprintln!("constant_time: {err}");
        std::process::exit(1);
    }
}
