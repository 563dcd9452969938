//! Async replay inserts over a unix socket against `redis-benchmark -t set` on the same server,
//! in the same run.
//!
//! `cargo bench --features tokio --bench async_replay` starts its own `redis-server`, runs
//! `redis-benchmark -t set -P 1 -c 64 -n 100000 -q` against it, then 100,000 inserts of distinct
//! keys from 64 concurrent tasks on one `AsyncRedisReplayCache` (a current-thread runtime), and
//! prints both rates and their ratio.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dpop_nonce::replay::{AsyncRedisReplayCache, AsyncReplayCache, ReplayCheck, ReplayKey};
use redis_server::RedisServer;
use time::Duration;

const TASKS: u64 = 64;
const INSERTS: u64 = 100_000;

fn main() {
    let Some(server) = RedisServer::start_or_skip("benches/async_replay") else {
        return;
    };
    let baseline = redis_benchmark(&server);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // A warm-up round, then the measured one (fresh keys in each).
    let _ = runtime.block_on(inserts(&server, "warm-up", INSERTS / 10));
    let ours = runtime.block_on(inserts(&server, "measured", INSERTS));
    println!("redis-benchmark SET -P 1 -c 64:  {baseline:>10.0} requests/s");
    println!("AsyncRedisReplayCache, 64 tasks: {ours:>10.0} inserts/s");
    println!("ratio: {:.2}", ours / baseline);
}

/// `redis-benchmark`'s SET rate over the server's socket, in requests per second.
fn redis_benchmark(server: &RedisServer) -> f64 {
    let output = Command::new("redis-benchmark")
        .arg("-s")
        .arg(server.socket())
        .args(["-t", "set", "-P", "1", "-c", "64", "-n", "100000", "-q"])
        .output()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    // The last line reads "SET: 123456.79 requests per second, p50=0.255 msec"; earlier ones
    // are progress lines ending in carriage returns.
    let rate = text
        .rsplit(['\r', '\n'])
        .filter_map(|line| line.trim().strip_prefix("SET: "))
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
    rate.unwrap_or_else(|| panic!("no SET rate in redis-benchmark's output: {text:?}"))
}

/// Inserts `count` distinct keys from [`TASKS`] tasks; the rate in inserts per second.
async fn inserts(server: &RedisServer, run: &str, count: u64) -> f64 {
    let cache = Arc::new(
        AsyncRedisReplayCache::builder(server.client(), Duration::minutes(10))
            .prefix(format!("bench:{run}"))
            .connect_timeout(Duration::seconds(2))
            .io_timeout(Duration::seconds(1))
            .build()
            .expect("a valid configuration"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, next) = (Arc::clone(&cache), Arc::clone(&next));
            tokio::spawn(async move {
                let mut failed = 0u64;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return failed;
                    }
                    let key = ReplayKey::from_bytes(key_bytes(n));
                    if cache.insert(&key).await.ok() != Some(ReplayCheck::Fresh) {
                        failed += 1;
                    }
                }
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        failed += task.await.expect("a bench task does not panic");
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "every insert of a distinct key is fresh");
    count as f64 / elapsed
}

/// A distinct 32-byte key per number.
fn key_bytes(n: u64) -> [u8; ReplayKey::LEN] {
    let mut bytes = [0u8; ReplayKey::LEN];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}
