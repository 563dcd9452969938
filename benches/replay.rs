//! Replay (`jti`) cache inserts (group `replay`): the key derivation alone, an insert into the
//! in-memory cache at capacity, a replayed insert, and one insert into the Redis cache (one
//! round trip over a unix socket to a private `redis-server`, skipped with a loud line when it
//! is not on `PATH`).
//!
//! ```text
//! cargo bench --all-features --bench replay -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayKey};
use time::Duration;

/// 32 well-mixed bytes from a counter, so keys spread over the cache's shards as real
/// SHA-256 keys do, without paying for SHA-256 in the insert bench.
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
fn bench_inserts(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, cache: &impl ReplayCache) {
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

fn run(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("replay");
    group.bench_function("key", |b| {
        b.iter(|| {
            ReplayKey::new(
                black_box("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
                black_box("e1j3V_bKic8-LAEB"),
            )
        })
    });

    // Steady state at capacity: entries live 10 ms, so every insert finds expired entries
    // to drop, as a full cache does in production.
    let cache = InMemoryReplayCache::builder(Duration::milliseconds(10))
        .build()
        .expect("a 10 ms lifetime is valid");
    let long = InMemoryReplayCache::builder(Duration::minutes(10))
        .build()
        .expect("a 10-minute lifetime is valid");
    bench_inserts(&mut group, "insert", &cache);
    let seen = ReplayKey::from_bytes(key_bytes(u64::MAX));
    let _ = long.insert(&seen);
    group.bench_function("insert-replayed", |b| {
        b.iter(|| long.insert(black_box(&seen)).is_ok())
    });

    redis(&mut group);
    group.finish();
}

#[cfg(feature = "redis")]
fn redis(group: &mut BenchmarkGroup<'_, WallTime>) {
    use dpop_nonce::replay::RedisReplayCache;

    let Some(server) = common::RedisServer::start() else {
        common::skipped("redis replay bench", "no `redis-server` could be started");
        return;
    };
    let Some(client) = server.client() else {
        common::skipped("redis replay bench", "no client for the unix socket");
        return;
    };
    match RedisReplayCache::builder(client, Duration::minutes(10)).build() {
        // One round trip per insert, over the unix socket.
        Ok(cache) => bench_inserts(group, "redis-insert", &cache),
        Err(err) => common::skipped(
            "redis replay bench",
            &format!("the cache did not build: {err}"),
        ),
    }
    drop(server);
}

#[cfg(not(feature = "redis"))]
fn redis(_group: &mut BenchmarkGroup<'_, WallTime>) {
    println!("redis replay bench: skipped (build with --features redis or --all-features)");
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    run(&mut criterion);
    criterion.final_summary();
}
