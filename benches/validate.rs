//! Criterion benches for the check path, in one group (`validate`) so that every ratio is taken
//! from one run.
//!
//! Run with (see BENCHMARKS.md):
//!
//! ```text
//! cargo bench --all-features --bench validate -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! After the group has run, the bench prints a table of medians and the ratios the project's
//! targets are stated in, read back from criterion's own estimates.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use dpop_nonce::{
    Clock, InMemoryNonceSource, ManualClock, Nonce, NonceSource, NonceValidator, Rotation,
    SystemClock,
};
use subtle::BlackBox;
use time::Duration;

#[path = "validate/paired.rs"]
mod paired;

/// The group every bench below belongs to.
const GROUP: &str = "validate";

/// Length of the nonces the crate generates.
const LEN: usize = Nonce::GENERATED_LEN;

/// A 43-byte value padded into whole words.
type Words = [u64; LEN.div_ceil(8)];

// ---------------------------------------------------------------------------------------------
// Baselines, written here and independent of the crate's code.
// ---------------------------------------------------------------------------------------------

/// Packs a 43-byte value into little-endian words, zero padded; `None` for other lengths.
#[inline(always)]
fn words_of(bytes: &[u8]) -> Option<Words> {
    if bytes.len() != LEN {
        return None;
    }
    let mut padded = [0u8; LEN.div_ceil(8) * 8];
    padded[..LEN].copy_from_slice(bytes);
    let mut words = [0u64; LEN.div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
    }
    Some(words)
}

/// The floor: one `SystemTime::now()`, then the claim compared with two stored values by
/// XOR-accumulating whole words, with a single `subtle` barrier over both results at the end.
/// No lock, no window arithmetic: the least any constant-time check on the real clock can cost.
struct Floor {
    stored: [Words; 2],
}

impl Floor {
    #[inline(never)]
    fn check(&self, claim: &str) -> u8 {
        black_box(SystemTime::now());
        self.compare(claim)
    }

    /// The floor with the time turned into a duration since the UNIX epoch, which any check
    /// that computes a window from `SystemTime` needs.
    #[inline(never)]
    fn check_since_epoch(&self, claim: &str) -> u8 {
        black_box(SystemTime::now().duration_since(UNIX_EPOCH).ok());
        self.compare(claim)
    }

    #[inline(always)]
    fn compare(&self, claim: &str) -> u8 {
        let Some(claim) = words_of(claim.as_bytes()) else {
            return 0;
        };
        let mut current = 0u64;
        let mut previous = 0u64;
        for ((c, a), b) in claim.iter().zip(&self.stored[0]).zip(&self.stored[1]) {
            current |= c ^ a;
            previous |= c ^ b;
        }
        // One barrier over both results, as the sources do: one bit per value, set when it
        // differs, computed with no branch.
        let differs = ((current | current.wrapping_neg()) >> 63)
            | (((previous | previous.wrapping_neg()) >> 63) << 1);
        let differs = BlackBox::new(differs).get();
        (!differs & 3) as u8
    }
}

/// The naive baseline: a mutex around the current and previous values, one clock read (a naive
/// source must also notice when to rotate) and `str`'s `==`, which stops at the first difference.
struct Naive {
    pair: Mutex<(String, String)>,
}

impl Naive {
    #[inline(never)]
    fn check(&self, claim: &str) -> u8 {
        black_box(SystemTime::now());
        let pair = self.pair.lock().unwrap_or_else(PoisonError::into_inner);
        if pair.0 == claim {
            1
        } else if pair.1 == claim {
            2
        } else {
            0
        }
    }
}

/// The baselines every source is measured against, and the claim they check.
struct Baselines {
    floor: Floor,
    naive: Naive,
    claim: String,
}

/// Names of the targets measured for each source: its `validate` of a current nonce against
/// the floor and against the naive baseline, and a 1 MiB claim against a current one.
struct SourceTargets {
    vs_floor: &'static str,
    vs_naive: &'static str,
    huge_vs_current: &'static str,
}

/// Measures a source's targets back to back (see `paired`).
fn pair_with_baselines<S: NonceSource>(
    targets: &SourceTargets,
    validator: &NonceValidator<S>,
    baselines: &Baselines,
) {
    let current = validator.issue();
    let current = current.as_str();
    let huge = huge_claim();
    let validate = |claim: &str| validator.validate(black_box(Some(claim))).is_ok();
    paired::measure(
        targets.vs_floor,
        || validate(current),
        || baselines.floor.check(black_box(&baselines.claim)),
    );
    paired::measure(
        targets.vs_naive,
        || validate(current),
        || baselines.naive.check(black_box(&baselines.claim)),
    );
    paired::measure(
        targets.huge_vs_current,
        || validate(&huge),
        || validate(current),
    );
}

// ---------------------------------------------------------------------------------------------
// Clocks.
// ---------------------------------------------------------------------------------------------

/// The system clock moved by an offset. Only used to put the source one window ahead, so that a
/// nonce it issued becomes its previous one while the check still reads the real clock.
#[derive(Debug, Default)]
struct ShiftedSystemClock {
    offset_seconds: AtomicI64,
}

impl ShiftedSystemClock {
    fn shift(&self, by: Duration) {
        self.offset_seconds
            .fetch_add(by.whole_seconds(), Ordering::Relaxed);
    }
}

impl Clock for ShiftedSystemClock {
    #[inline]
    fn unix_time(&self) -> Duration {
        SystemClock.unix_time().saturating_add(Duration::seconds(
            self.offset_seconds.load(Ordering::Relaxed),
        ))
    }
}

/// The rotation used on the system clock: the longest one, so that no window boundary falls in
/// the middle of a measurement (which would turn "current" into "previous"). The cost of a check
/// does not depend on the interval.
fn long_rotation() -> Duration {
    Rotation::MAX
}

// ---------------------------------------------------------------------------------------------
// Claims.
// ---------------------------------------------------------------------------------------------

/// A claim of the right length and grammar that no source issued: `nonce` with its first byte
/// changed to another base64url character.
fn unknown_like(nonce: &Nonce) -> String {
    let mut bytes = nonce.as_bytes().to_vec();
    bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

/// A 43-byte claim that breaks the grammar (a space in the middle).
fn malformed_claim() -> String {
    let mut claim = "x".repeat(LEN);
    claim.replace_range(20..21, " ");
    claim
}

/// A claim of one mebibyte.
fn huge_claim() -> String {
    "A".repeat(1 << 20)
}

/// Runs the five claim shapes (current, previous, unknown, malformed, 1 MiB) and `issue` against
/// `validator`. The previous-nonce case runs against `previous`, a validator whose source has
/// moved one window on since it issued `previous_claim`.
fn bench_claims<S: NonceSource, P: NonceSource>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
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

    group.bench_function(format!("{name}/current"), |b| {
        b.iter(|| validator.validate(black_box(Some(current))).is_ok())
    });
    group.bench_function(format!("{name}/check-current"), |b| {
        b.iter(|| validator.source().check(black_box(current)))
    });
    group.bench_function(format!("{name}/previous"), |b| {
        b.iter(|| previous.validate(black_box(Some(previous_claim))).is_ok())
    });
    group.bench_function(format!("{name}/unknown"), |b| {
        b.iter(|| {
            validator
                .validate(black_box(Some(unknown.as_str())))
                .is_ok()
        })
    });
    group.bench_function(format!("{name}/malformed"), |b| {
        b.iter(|| {
            validator
                .validate(black_box(Some(malformed.as_str())))
                .is_ok()
        })
    });
    group.bench_function(format!("{name}/1MiB"), |b| {
        b.iter(|| validator.validate(black_box(Some(huge.as_str()))).is_ok())
    });
    group.bench_function(format!("{name}/issue"), |b| b.iter(|| validator.issue()));
}

/// `threads` threads each run `op` `iters` times, started together by a barrier. The time
/// returned is the wall time from the first start to the last finish, divided by the number of
/// threads: the time per operation of the whole machine, times `iters`. Perfect scaling halves
/// it on two threads.
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

/// Calls per thread in one back-to-back round of the thread benches: long enough (some 20 ms)
/// that starting the threads, and waking the second processor, is noise.
const THREAD_ITERS: u64 = 400_000;

/// Back-to-back rounds of the thread benches.
const THREAD_ROUNDS: usize = 31;

/// One and two threads running `op`, in criterion (`{name}/{1,2}-thread`) and back to back
/// (recorded under `target`).
fn bench_threads(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    target: &'static str,
    op: &(impl Fn() + Sync),
) {
    for threads in [1u32, 2] {
        group.bench_function(format!("{name}/{threads}-thread"), |b| {
            b.iter_custom(|iters| concurrent(threads, iters, op))
        });
    }
    let per_op = |threads| concurrent(threads, THREAD_ITERS, op).as_secs_f64();
    paired::measure_timed(target, THREAD_ROUNDS, || per_op(2), || per_op(1));
}

/// [`bench_threads`] for a validator checking its current nonce.
fn bench_validate_threads<S: NonceSource>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    target: &'static str,
    validator: &NonceValidator<S>,
) {
    let claim = validator.issue();
    let op = || {
        black_box(validator.validate(black_box(Some(claim.as_str()))).is_ok());
    };
    bench_threads(group, &format!("{name}/current"), target, &op);
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);

    // Baselines.
    let stored = [Nonce::generate(), Nonce::generate()];
    let baselines = Baselines {
        floor: Floor {
            stored: [
                words_of(stored[0].as_bytes()).unwrap_or_default(),
                words_of(stored[1].as_bytes()).unwrap_or_default(),
            ],
        },
        naive: Naive {
            pair: Mutex::new((stored[0].to_string(), stored[1].to_string())),
        },
        claim: stored[0].to_string(),
    };
    let (floor, naive, claim) = (&baselines.floor, &baselines.naive, &baselines.claim);
    group.bench_function("baseline/clock-read", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    group.bench_function("baseline/clock-since-epoch", |b| {
        b.iter(|| black_box(SystemTime::now().duration_since(UNIX_EPOCH)))
    });
    group.bench_function("baseline/system-clock", |b| {
        b.iter(|| black_box(SystemClock.unix_time()))
    });
    group.bench_function("baseline/floor-since-epoch", |b| {
        b.iter(|| floor.check_since_epoch(black_box(claim.as_str())))
    });
    group.bench_function("baseline/floor", |b| {
        b.iter(|| floor.check(black_box(claim.as_str())))
    });
    group.bench_function("baseline/naive", |b| {
        b.iter(|| naive.check(black_box(claim.as_str())))
    });

    // The in-memory source on the system clock.
    let memory = NonceValidator::new(
        InMemoryNonceSource::builder()
            .rotation(long_rotation())
            .build()
            .unwrap_or_default(),
    );
    let shifted = Arc::new(ShiftedSystemClock::default());
    let memory_previous = NonceValidator::new(
        InMemoryNonceSource::builder()
            .rotation(long_rotation())
            .clock(Arc::clone(&shifted))
            .build()
            .unwrap_or_else(|_| {
                InMemoryNonceSource::builder()
                    .clock(Arc::clone(&shifted))
                    .build()
                    .unwrap()
            }),
    );
    let old = memory_previous.issue();
    shifted.shift(long_rotation());
    let _ = memory_previous.issue();
    bench_claims(
        &mut group,
        "memory",
        &memory,
        &memory_previous,
        old.as_str(),
    );
    pair_with_baselines(&MEMORY_TARGETS, &memory, &baselines);
    {
        let current = memory.issue();
        let unknown = unknown_like(&current);
        let huge = huge_claim();
        let validate = |claim: &str| memory.validate(black_box(Some(claim))).is_ok();
        paired::measure(
            MEMORY_VS_FLOOR_SINCE_EPOCH,
            || validate(current.as_str()),
            || floor.check_since_epoch(black_box(claim)),
        );
        paired::measure(
            MEMORY_HUGE_VS_UNKNOWN,
            || validate(&huge),
            || validate(&unknown),
        );
    }

    // A forced rotation: the clock moves one window before every issue.
    let manual = Arc::new(ManualClock::default());
    let rotating = InMemoryNonceSource::builder()
        .rotation(Duration::minutes(5))
        .clock(Arc::clone(&manual))
        .build()
        .unwrap_or_else(|_| {
            InMemoryNonceSource::builder()
                .clock(Arc::clone(&manual))
                .build()
                .unwrap()
        });
    group.bench_function("memory/rotation", |b| {
        b.iter(|| {
            manual.advance(Duration::minutes(5));
            rotating.issue()
        })
    });

    extra::derived(&mut group, &baselines);
    extra::redis(&mut group, &memory);
    extra::replay(&mut group);

    // The floor on one and two threads: how well an operation that shares nothing scales on
    // this machine at this moment, the control for the sources' figures.
    bench_threads(&mut group, "baseline/floor", FLOOR_THREADS, &|| {
        black_box(floor.check(black_box(claim)));
    });
    bench_validate_threads(&mut group, "memory", MEMORY_THREADS, &memory);
    extra::derived_threads(&mut group);

    group.finish();
}

/// Benches of the sources and caches behind features. Each function does nothing when its
/// feature is off, so the group keeps one shape.
mod extra {
    #[allow(unused_imports)]
    use super::*;

    /// The derived source's secret in the benches: any 32 bytes will do.
    #[cfg(feature = "derived")]
    const SECRET: [u8; 32] = [0x5a; 32];

    #[cfg(feature = "derived")]
    fn derived_on<C: Clock>(clock: C) -> dpop_nonce::derived::DerivedNonceSource<C> {
        let built = dpop_nonce::derived::DerivedNonceSource::builder("bench")
            .secret(SECRET)
            .rotation(long_rotation())
            .clock(clock)
            .build();
        match built {
            Ok(source) => source,
            Err(err) => panic!("the bench's derived source is valid: {err}"),
        }
    }

    #[cfg(feature = "derived")]
    pub(super) fn derived(group: &mut BenchmarkGroup<'_, WallTime>, baselines: &Baselines) {
        let validator = NonceValidator::new(derived_on(SystemClock));
        let shifted = Arc::new(ShiftedSystemClock::default());
        let previous = NonceValidator::new(derived_on(Arc::clone(&shifted)));
        let old = previous.issue();
        shifted.shift(long_rotation());
        let _ = previous.issue();
        bench_claims(group, "derived", &validator, &previous, old.as_str());
        pair_with_baselines(&DERIVED_TARGETS, &validator, baselines);

        // A forced rotation: every issue lands in a new window and derives its values.
        let manual = Arc::new(ManualClock::default());
        let rotating = match dpop_nonce::derived::DerivedNonceSource::builder("bench")
            .secret(SECRET)
            .rotation(Duration::minutes(5))
            .clock(Arc::clone(&manual))
            .build()
        {
            Ok(source) => source,
            Err(err) => panic!("the bench's derived source is valid: {err}"),
        };
        group.bench_function("derived/rotation", |b| {
            b.iter(|| {
                manual.advance(Duration::minutes(5));
                rotating.issue()
            })
        });
    }

    #[cfg(not(feature = "derived"))]
    pub(super) fn derived(_group: &mut BenchmarkGroup<'_, WallTime>, _baselines: &Baselines) {}

    #[cfg(feature = "derived")]
    pub(super) fn derived_threads(group: &mut BenchmarkGroup<'_, WallTime>) {
        bench_validate_threads(
            group,
            "derived",
            DERIVED_THREADS,
            &NonceValidator::new(derived_on(SystemClock)),
        );
    }

    #[cfg(not(feature = "derived"))]
    pub(super) fn derived_threads(_group: &mut BenchmarkGroup<'_, WallTime>) {}

    /// A private `redis-server` on a unix socket in a temporary directory, stopped on drop.
    #[cfg(feature = "redis")]
    struct RedisServer {
        child: std::process::Child,
        dir: PathBuf,
    }

    #[cfg(feature = "redis")]
    impl RedisServer {
        fn start() -> Option<Self> {
            let dir = std::env::temp_dir().join(format!("dpop-nonce-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            let socket = dir.join("redis.sock");
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--unixsocket",
                ])
                .arg(&socket)
                .arg("--dir")
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let server = Self { child, dir };
            for _ in 0..200 {
                if socket.exists() {
                    return Some(server);
                }
                std::thread::sleep(StdDuration::from_millis(10));
            }
            None
        }

        fn client(&self) -> Option<redis::Client> {
            let socket = self.dir.join("redis.sock");
            redis::Client::open(format!("redis+unix://{}", socket.display())).ok()
        }
    }

    #[cfg(feature = "redis")]
    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[cfg(feature = "redis")]
    pub(super) fn redis(
        group: &mut BenchmarkGroup<'_, WallTime>,
        memory: &NonceValidator<InMemoryNonceSource>,
    ) {
        use dpop_nonce::redis::RedisNonceSource;
        use dpop_nonce::replay::RedisReplayCache;

        let Some(server) = RedisServer::start() else {
            println!();
            println!("!!!! SKIPPED redis benches: no `redis-server` could be started !!!!");
            println!();
            return;
        };
        let Some(client) = server.client() else {
            println!("!!!! SKIPPED redis benches: no client for the unix socket !!!!");
            return;
        };
        let builder = |rotation: Duration| {
            RedisNonceSource::builder(client.clone(), "bench").rotation(rotation)
        };
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
                println!("!!!! SKIPPED redis benches: the source did not start: {err} !!!!");
                return;
            }
        };
        let validator = NonceValidator::new(source);
        let previous = NonceValidator::new(previous);
        let old = previous.issue();
        shifted.shift(long_rotation());
        let _ = previous.issue();
        // Steady state: the window's value is cached, so the checks make no Redis call.
        bench_claims(group, "redis", &validator, &previous, old.as_str());
        // A forced rotation: every issue lands in a new window, one round trip to Redis.
        group.bench_function("redis/rotation", |b| {
            b.iter(|| {
                manual.advance(Duration::minutes(5));
                rotating.issue()
            })
        });
        let current = validator.issue();
        let memory_current = memory.issue();
        paired::measure(
            REDIS_VS_MEMORY,
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

        // One round trip per insert, over the unix socket.
        if let Ok(cache) = RedisReplayCache::builder(client, Duration::minutes(10)).build() {
            bench_inserts(group, "redis/replay-insert", &cache);
        }
        drop(server);
    }

    #[cfg(not(feature = "redis"))]
    pub(super) fn redis(
        _group: &mut BenchmarkGroup<'_, WallTime>,
        _memory: &NonceValidator<InMemoryNonceSource>,
    ) {
        println!("redis benches: skipped (build with --features redis or --all-features)");
    }

    /// 32 well-mixed bytes from a counter, so keys spread over the cache's shards as real
    /// SHA-256 keys do, without paying for SHA-256 in the insert bench.
    #[cfg(feature = "replay")]
    fn key_bytes(counter: u64) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        let mut x = counter;
        for chunk in bytes.chunks_exact_mut(8) {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        bytes
    }

    /// Inserts of distinct keys into `cache`, as bench `name`.
    #[cfg(feature = "replay")]
    fn bench_inserts(
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        cache: &impl dpop_nonce::replay::ReplayCache,
    ) {
        use dpop_nonce::replay::ReplayKey;

        let mut counter = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                counter += 1;
                cache
                    .insert(&ReplayKey::from_bytes(key_bytes(counter)))
                    .is_ok()
            })
        });
    }

    #[cfg(feature = "replay")]
    pub(super) fn replay(group: &mut BenchmarkGroup<'_, WallTime>) {
        use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayKey};

        group.bench_function("replay/key", |b| {
            b.iter(|| {
                ReplayKey::new(
                    black_box("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
                    black_box("e1j3V_bKic8-LAEB"),
                )
            })
        });

        // Steady state at capacity: entries live 10 ms on the system clock, so every insert
        // finds expired entries to drop, as a full cache does in production.
        let (Ok(cache), Ok(long)) = (
            InMemoryReplayCache::builder(Duration::milliseconds(10)).build(),
            InMemoryReplayCache::builder(Duration::minutes(10)).build(),
        ) else {
            println!("!!!! SKIPPED replay benches: the cache did not build !!!!");
            return;
        };
        bench_inserts(group, "replay/insert", &cache);
        let seen = ReplayKey::from_bytes(key_bytes(u64::MAX));
        let _ = long.insert(&seen);
        group.bench_function("replay/insert-replayed", |b| {
            b.iter(|| long.insert(black_box(&seen)).is_ok())
        });
    }

    #[cfg(not(feature = "replay"))]
    pub(super) fn replay(_group: &mut BenchmarkGroup<'_, WallTime>) {}
}

// ---------------------------------------------------------------------------------------------
// The report: medians and ratios, read back from criterion's estimates.
// ---------------------------------------------------------------------------------------------

/// Where criterion keeps its results, found the way criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let output = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(PathBuf::from(metadata.get("target_directory")?.as_str()?))
    });
    from_metadata
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// The median of bench `id` in nanoseconds, from the run that just finished.
fn median(id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(GROUP)
        .join(id.replace('/', "_"))
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates.get("median")?.get("point_estimate")?.as_f64()
}

/// One target: `numerator / denominator` must be at most `limit`.
struct Target {
    what: &'static str,
    numerator: &'static str,
    denominator: &'static str,
    limit: f64,
}

const MEMORY_TARGETS: SourceTargets = SourceTargets {
    vs_floor: "in-memory current vs floor",
    vs_naive: "in-memory current vs naive",
    huge_vs_current: "in-memory 1 MiB claim vs current",
};
const MEMORY_VS_FLOOR_SINCE_EPOCH: &str = "in-memory current vs floor with the epoch conversion";
const MEMORY_HUGE_VS_UNKNOWN: &str = "in-memory 1 MiB claim vs unknown";
const DERIVED_TARGETS: SourceTargets = SourceTargets {
    vs_floor: "derived current vs floor",
    vs_naive: "derived current vs naive",
    huge_vs_current: "derived 1 MiB claim vs current",
};
const REDIS_VS_MEMORY: &str = "redis steady-state current vs in-memory";
const MEMORY_THREADS: &str = "in-memory 2 threads vs 1 (time per op; 1/1.7 = 0.588)";
const FLOOR_THREADS: &str = "control: floor 2 threads vs 1 (time per op)";
const DERIVED_THREADS: &str = "derived 2 threads vs 1 (time per op; 1/1.7 = 0.588)";

const TARGETS: &[Target] = &[
    Target {
        what: MEMORY_TARGETS.vs_floor,
        numerator: "memory/current",
        denominator: "baseline/floor",
        limit: 1.25,
    },
    Target {
        what: MEMORY_VS_FLOOR_SINCE_EPOCH,
        numerator: "memory/current",
        denominator: "baseline/floor-since-epoch",
        limit: 1.25,
    },
    Target {
        what: MEMORY_TARGETS.vs_naive,
        numerator: "memory/current",
        denominator: "baseline/naive",
        limit: 1.0,
    },
    Target {
        what: MEMORY_TARGETS.huge_vs_current,
        numerator: "memory/1MiB",
        denominator: "memory/current",
        limit: 2.0,
    },
    Target {
        what: MEMORY_HUGE_VS_UNKNOWN,
        numerator: "memory/1MiB",
        denominator: "memory/unknown",
        limit: 2.0,
    },
    Target {
        what: FLOOR_THREADS,
        numerator: "baseline/floor/2-thread",
        denominator: "baseline/floor/1-thread",
        limit: 1.0 / 1.7,
    },
    Target {
        what: MEMORY_THREADS,
        numerator: "memory/current/2-thread",
        denominator: "memory/current/1-thread",
        limit: 1.0 / 1.7,
    },
    Target {
        what: DERIVED_TARGETS.vs_floor,
        numerator: "derived/current",
        denominator: "baseline/floor",
        limit: 1.25,
    },
    Target {
        what: DERIVED_TARGETS.vs_naive,
        numerator: "derived/current",
        denominator: "baseline/naive",
        limit: 1.0,
    },
    Target {
        what: DERIVED_TARGETS.huge_vs_current,
        numerator: "derived/1MiB",
        denominator: "derived/current",
        limit: 2.0,
    },
    Target {
        what: DERIVED_THREADS,
        numerator: "derived/current/2-thread",
        denominator: "derived/current/1-thread",
        limit: 1.0 / 1.7,
    },
    Target {
        what: REDIS_VS_MEMORY,
        numerator: "redis/current",
        denominator: "memory/current",
        limit: 2.0,
    },
];

fn report() {
    let ids = std::fs::read_dir(criterion_home().join(GROUP))
        .map(|dir| {
            let mut ids: Vec<String> = dir
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name != "report")
                .collect();
            ids.sort();
            ids
        })
        .unwrap_or_default();
    let floor = median("baseline/floor");
    println!();
    println!(
        "{:<36} {:>12} {:>9}",
        "bench (group validate)", "median", "/ floor"
    );
    for id in &ids {
        let Some(value) = median(id) else { continue };
        let ratio = floor.map_or(String::new(), |f| format!("{:.2}x", value / f));
        println!(
            "{:<36} {:>9.1} ns {:>9}",
            id.replace('_', "/"),
            value,
            ratio
        );
    }
    println!();
    println!(
        "Targets. \"medians\": criterion's medians, taken up to minutes apart; \"back to back\":"
    );
    println!("the median and quartiles of per-round ratios, both sides timed in each round (the");
    println!("verdict uses these where measured).");
    println!();
    println!(
        "{:<56} {:>8} {:>22} {:>6}  verdict",
        "target", "medians", "back to back [q1, q3]", "limit"
    );
    for target in TARGETS {
        let from_medians = median(target.numerator)
            .zip(median(target.denominator))
            .map(|(n, d)| n / d);
        let paired = paired::result(target.what);
        let Some(ratio) = paired.map(|p| p.median).or(from_medians) else {
            continue;
        };
        let verdict = if ratio <= target.limit {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "{:<56} {:>8} {:>22} {:>6.3}  {verdict}",
            target.what,
            from_medians.map_or("-".to_owned(), |r| format!("{r:.3}")),
            paired.map_or("-".to_owned(), |p| format!(
                "{:.3} [{:.3}, {:.3}]",
                p.median, p.low, p.high
            )),
            target.limit
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) criterion only runs
    // each bench once, so there is nothing to report.
    if std::env::args().any(|arg| arg == "--bench") {
        report();
    }
}
