//! The async replay caches against a real `redis-server` started by the tests, on a
//! current-thread tokio runtime.
#![cfg(feature = "tokio")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Instant;

use dpop_nonce::InMemoryNonceSource;
use dpop_nonce::replay::{
    AsyncRedisReplayCache, AsyncReplayCache, InMemoryReplayCache, RedisReplayCache, ReplayCache,
    ReplayCheck, ReplayError, ReplayKey,
};
use redis_server::RedisServer;
use time::Duration;

const LIFETIME: Duration = Duration::minutes(10);

/// Generous timeouts: these tests are about atomicity, not about a loaded machine's latency.
fn patient_cache(server: &RedisServer) -> AsyncRedisReplayCache {
    AsyncRedisReplayCache::builder(server.client(), LIFETIME)
        .connect_timeout(Duration::seconds(2))
        .io_timeout(Duration::seconds(1))
        .build()
        .expect("a valid configuration")
}

/// Counts of `Fresh`, `Replayed` and errors among `results`.
fn tally(results: &[Result<ReplayCheck, ReplayError>]) -> (usize, usize, usize) {
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Ok(ReplayCheck::Fresh)))
        .count();
    let replayed = results
        .iter()
        .filter(|r| matches!(r, Ok(ReplayCheck::Replayed)))
        .count();
    (fresh, replayed, results.len() - fresh - replayed)
}

/// `tasks` spawned tasks insert `key` into `cache` at once.
async fn race<C: AsyncReplayCache + 'static>(
    cache: &Arc<C>,
    key: ReplayKey,
    tasks: usize,
) -> Vec<Result<ReplayCheck, ReplayError>> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let cache = Arc::clone(cache);
            tokio::spawn(async move { cache.insert(&key).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks);
    for handle in handles {
        results.push(handle.await.expect("the task does not panic"));
    }
    results
}

#[tokio::test(flavor = "current_thread")]
async fn racing_tasks_get_exactly_one_fresh() {
    let Some(server) = RedisServer::start_or_skip("racing_tasks_get_exactly_one_fresh") else {
        return;
    };
    let cache = Arc::new(patient_cache(&server));
    for round in 0..5 {
        let key = ReplayKey::new("jkt", format!("jti-{round}")).unwrap();
        let (fresh, replayed, failed) = tally(&race(&cache, key, 200).await);
        assert_eq!((fresh, replayed, failed), (1, 199, 0), "round {round}");
    }
    assert!(cache.is_healthy());
    assert!(cache.last_contact().is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn racing_replicas_get_exactly_one_fresh() {
    let Some(server) = RedisServer::start_or_skip("racing_replicas_get_exactly_one_fresh") else {
        return;
    };
    // Two replicas: two caches, two clients, two connections.
    let a = Arc::new(patient_cache(&server));
    let b = Arc::new(patient_cache(&server));
    for round in 0..5 {
        let key = ReplayKey::new("jkt", format!("shared-{round}")).unwrap();
        let (from_a, from_b) = tokio::join!(race(&a, key, 100), race(&b, key, 100));
        let (fresh_a, replayed_a, failed_a) = tally(&from_a);
        let (fresh_b, replayed_b, failed_b) = tally(&from_b);
        assert_eq!((failed_a, failed_b), (0, 0));
        assert_eq!(fresh_a + fresh_b, 1, "round {round}");
        assert_eq!(replayed_a + replayed_b, 199);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sync_and_async_caches_see_each_others_entries() {
    let Some(server) = RedisServer::start_or_skip("sync_and_async_caches_see_each_others_entries")
    else {
        return;
    };
    let asynchronous = patient_cache(&server);
    let synchronous = RedisReplayCache::builder(server.client(), LIFETIME)
        .connect_timeout(Duration::seconds(2))
        .io_timeout(Duration::seconds(1))
        .build()
        .unwrap();

    let from_sync = ReplayKey::new("jkt", "written-by-sync").unwrap();
    let from_async = ReplayKey::new("jkt", "written-by-async").unwrap();
    assert_eq!(
        asynchronous.redis_key(&from_sync),
        synchronous.redis_key(&from_sync)
    );

    assert_eq!(synchronous.insert(&from_sync).unwrap(), ReplayCheck::Fresh);
    assert_eq!(
        asynchronous.insert(&from_sync).await.unwrap(),
        ReplayCheck::Replayed
    );
    assert_eq!(
        asynchronous.insert(&from_async).await.unwrap(),
        ReplayCheck::Fresh
    );
    assert_eq!(
        synchronous.insert(&from_async).unwrap(),
        ReplayCheck::Replayed
    );
}

#[tokio::test(flavor = "current_thread")]
async fn entries_live_the_lifetime_in_redis() {
    let Some(server) = RedisServer::start_or_skip("entries_live_the_lifetime_in_redis") else {
        return;
    };
    let source = InMemoryNonceSource::new();
    let cache = AsyncRedisReplayCache::for_source(server.client(), &source)
        .prefix("ttl-test")
        .build()
        .unwrap();
    assert_eq!(AsyncReplayCache::lifetime(&cache), source_lifetime(&source));
    let key = ReplayKey::new("jkt", "jti").unwrap();
    assert_eq!(cache.insert(&key).await.unwrap(), ReplayCheck::Fresh);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(cache.redis_key(&key))
        .query(&mut server.admin())
        .unwrap();
    let lifetime_ms = i64::try_from(source_lifetime(&source).whole_milliseconds()).unwrap();
    assert!(
        pttl > lifetime_ms - 5_000 && pttl <= lifetime_ms,
        "PTTL {pttl} against a lifetime of {lifetime_ms} ms"
    );
}

fn source_lifetime(source: &InMemoryNonceSource) -> Duration {
    dpop_nonce::NonceSource::max_nonce_lifetime(source)
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_redis_fails_closed_and_fast() {
    let dir = std::env::temp_dir().join(format!("dpop-async-nowhere-{}", std::process::id()));
    let client = redis::Client::open(format!("redis+unix://{}/none.sock", dir.display())).unwrap();
    let cache = AsyncRedisReplayCache::builder(client, LIFETIME)
        .build()
        .unwrap();
    let key = ReplayKey::new("jkt", "jti").unwrap();
    let started = Instant::now();
    assert!(matches!(
        cache.insert(&key).await,
        Err(ReplayError::Unavailable(_))
    ));
    // The back-off now answers at once, without trying Redis.
    assert!(matches!(
        cache.insert(&key).await,
        Err(ReplayError::Unavailable(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_millis(450));
    assert!(!cache.is_healthy());
    assert!(cache.last_contact().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_paused_redis_fails_closed_within_the_budget() {
    let Some(server) = RedisServer::start_or_skip("a_paused_redis_fails_closed_within_the_budget")
    else {
        return;
    };
    let cache = AsyncRedisReplayCache::builder(server.client(), LIFETIME)
        .connect_timeout(Duration::milliseconds(250))
        .io_timeout(Duration::milliseconds(100))
        .build()
        .unwrap();
    let warm = ReplayKey::new("jkt", "warm").unwrap();
    assert_eq!(cache.insert(&warm).await.unwrap(), ReplayCheck::Fresh);

    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1_000)
        .arg("ALL")
        .query(&mut server.admin())
        .unwrap();
    let key = ReplayKey::new("jkt", "during-the-pause").unwrap();
    let started = Instant::now();
    let during = cache.insert(&key).await;
    let took = started.elapsed();
    assert!(
        matches!(during, Err(ReplayError::Unavailable(_))),
        "{during:?}"
    );
    // The budget is 250 ms + 2 × 100 ms; a little slack for a loaded machine.
    assert!(took < std::time::Duration::from_millis(600), "{took:?}");

    // Once Redis answers again, the cache does too; the key was never accepted twice.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        match cache.insert(&key).await {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => panic!("Redis did not come back: {err}"),
        }
    };
    // The timed-out SET may have run once the pause ended: then the key is already there.
    assert!(matches!(after, ReplayCheck::Fresh | ReplayCheck::Replayed));
    assert_eq!(cache.insert(&key).await.unwrap(), ReplayCheck::Replayed);
    assert!(cache.is_healthy());
}

#[tokio::test(flavor = "current_thread")]
async fn the_cache_reconnects_after_a_restart() {
    let Some(mut server) = RedisServer::start_or_skip("the_cache_reconnects_after_a_restart")
    else {
        return;
    };
    let cache = patient_cache(&server);
    let key = ReplayKey::new("jkt", "before").unwrap();
    assert_eq!(cache.insert(&key).await.unwrap(), ReplayCheck::Fresh);
    server.restart();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let fresh = ReplayKey::new("jkt", "after").unwrap();
    loop {
        match cache.insert(&fresh).await {
            Ok(answer) => {
                assert_eq!(answer, ReplayCheck::Fresh);
                break;
            }
            Err(ReplayError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => panic!("no reconnect: {err}"),
        }
    }
    assert_eq!(cache.insert(&fresh).await.unwrap(), ReplayCheck::Replayed);
}

#[tokio::test(flavor = "current_thread")]
async fn an_insert_no_replica_acknowledged_is_refused() {
    let Some(server) = RedisServer::start_or_skip("an_insert_no_replica_acknowledged_is_refused")
    else {
        return;
    };
    // The test server has no replica: `WAIT 1` counts none.
    let waiting = AsyncRedisReplayCache::builder(server.client(), LIFETIME)
        .connect_timeout(Duration::seconds(2))
        .io_timeout(Duration::seconds(1))
        .wait_for_replicas(1, Duration::milliseconds(50))
        .build()
        .expect("a valid configuration");
    let key = ReplayKey::new("jkt", "unreplicated").unwrap();
    let outcome = waiting.insert(&key).await;
    assert!(
        matches!(&outcome, Err(ReplayError::Unavailable(reason)) if reason.to_string().contains("replicas")),
        "{outcome:?}"
    );
    // The entry was written all the same: the proof stays refused everywhere.
    assert_eq!(
        patient_cache(&server).insert(&key).await.unwrap(),
        ReplayCheck::Replayed
    );
    let settings = AsyncRedisReplayCache::builder(server.client(), LIFETIME)
        .wait_for_replicas(0, Duration::milliseconds(50))
        .build();
    assert!(settings.is_err(), "waiting for no replica is refused");
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_reply_drops_the_connection() {
    let Some(server) = RedisServer::start_or_skip("an_error_reply_drops_the_connection") else {
        return;
    };
    let connections = || -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut server.admin())
            .expect("INFO stats");
        info.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .and_then(|count| count.trim().parse().ok())
            .expect("a connection count")
    };
    let cache = AsyncRedisReplayCache::builder(server.client(), LIFETIME)
        .connect_timeout(Duration::seconds(2))
        .io_timeout(Duration::seconds(1))
        .backoff(Duration::milliseconds(1), Duration::milliseconds(1))
        .build()
        .expect("a valid configuration");
    let first = ReplayKey::new("jkt", "first").unwrap();
    assert_eq!(cache.insert(&first).await.unwrap(), ReplayCheck::Fresh);

    // The server turns into a replica (of nothing that answers), as a demoted primary does:
    // writes get `READONLY`.
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(1)
        .query(&mut server.admin())
        .expect("REPLICAOF");
    let key = ReplayKey::new("jkt", "while-read-only").unwrap();
    assert!(
        cache.insert(&key).await.is_err(),
        "READONLY refuses the proof"
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut server.admin())
        .expect("REPLICAOF NO ONE");

    let before = connections();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(cache.insert(&key).await.unwrap(), ReplayCheck::Fresh);
    // The admin connection of the count itself, and the cache's new one.
    assert!(
        connections() >= before + 2,
        "the cache kept the connection that answered READONLY"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_in_memory_cache_is_an_async_cache_too() {
    let cache = Arc::new(
        InMemoryReplayCache::builder(LIFETIME)
            .capacity(1_000)
            .build()
            .unwrap(),
    );
    assert_eq!(AsyncReplayCache::lifetime(&cache), LIFETIME);
    let key = ReplayKey::new("jkt", "jti").unwrap();
    let (fresh, replayed, failed) = tally(&race(&cache, key, 100).await);
    assert_eq!((fresh, replayed, failed), (1, 99, 0));
    // The sync face sees the entry the async one recorded.
    assert_eq!(
        ReplayCache::insert(&*cache, &key).unwrap(),
        ReplayCheck::Replayed
    );
}
