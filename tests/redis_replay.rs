//! The Redis replay cache against a real `redis-server`: atomic across threads and replicas,
//! entries that expire, keys that carry the prefix.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use dpop_nonce::redis::RedisNonceSource;
use dpop_nonce::replay::RedisReplayCache;
use dpop_nonce::replay::{ReplayCache, ReplayCheck, ReplayKey};
use dpop_nonce::{ConfigError, ManualClock, NonceSource};
use redis_server::RedisServer;
use time::Duration;

fn cache(server: &RedisServer, lifetime: Duration) -> RedisReplayCache {
    RedisReplayCache::builder(server.client(), lifetime)
        .prefix("test")
        .build()
        .unwrap()
}

#[test]
fn racing_threads_on_two_replicas_exactly_one_wins() {
    let Some(server) =
        RedisServer::start_or_skip("racing_threads_on_two_replicas_exactly_one_wins")
    else {
        return;
    };
    const ROUNDS: usize = 500;
    const THREADS_PER_REPLICA: usize = 2;
    let replicas = [
        Arc::new(cache(&server, Duration::minutes(10))),
        Arc::new(cache(&server, Duration::minutes(10))),
    ];
    let threads = replicas.len() * THREADS_PER_REPLICA;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cache = Arc::clone(&replicas[t % replicas.len()]);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut wins = Vec::with_capacity(ROUNDS);
                for round in 0..ROUNDS {
                    let key = ReplayKey::new("thumbprint", format!("jti-{round}")).unwrap();
                    barrier.wait();
                    let outcome = cache.insert(&key).expect("Redis answers");
                    wins.push(outcome == ReplayCheck::Fresh);
                }
                wins
            })
        })
        .collect();
    let results: Vec<Vec<bool>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for round in 0..ROUNDS {
        let winners = results.iter().filter(|wins| wins[round]).count();
        assert_eq!(winners, 1, "round {round}: {winners} inserts won");
    }
}

#[test]
fn entries_expire_with_the_lifetime() {
    let Some(server) = RedisServer::start_or_skip("entries_expire_with_the_lifetime") else {
        return;
    };
    let mut admin = server.admin();

    // The lifetime is set on the key: read it back rather than wait ten minutes.
    let long = cache(&server, Duration::minutes(10));
    let key = ReplayKey::new("client-1", "jti-long").unwrap();
    assert_eq!(long.insert(&key).unwrap(), ReplayCheck::Fresh);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(long.redis_key(&key))
        .query(&mut admin)
        .unwrap();
    assert!((590_000..=600_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(long.insert(&key).unwrap(), ReplayCheck::Replayed);

    // A short lifetime really expires: poll PTTL until the key is gone (bounded).
    let short = cache(&server, Duration::milliseconds(50));
    let key = ReplayKey::new("client-1", "jti-short").unwrap();
    assert_eq!(short.insert(&key).unwrap(), ReplayCheck::Fresh);
    assert_eq!(short.insert(&key).unwrap(), ReplayCheck::Replayed);
    let deadline = Instant::now() + StdDuration::from_secs(5);
    loop {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(short.redis_key(&key))
            .query(&mut admin)
            .unwrap();
        assert!(pttl <= 50, "PTTL {pttl} beyond the lifetime");
        if pttl == -2 {
            break;
        }
        assert!(Instant::now() < deadline, "the entry never expired");
        thread::sleep(StdDuration::from_millis(5));
    }
    assert_eq!(short.insert(&key).unwrap(), ReplayCheck::Fresh);
}

#[test]
fn keys_carry_the_prefix_and_scopes_stay_apart() {
    let Some(server) = RedisServer::start_or_skip("keys_carry_the_prefix_and_scopes_stay_apart")
    else {
        return;
    };
    let mut admin = server.admin();
    let one = cache(&server, Duration::minutes(1));
    let other = RedisReplayCache::builder(server.client(), Duration::minutes(1))
        .prefix("elsewhere")
        .build()
        .unwrap();
    let key = ReplayKey::new("thumbprint-A", "jti").unwrap();
    assert_eq!(one.insert(&key).unwrap(), ReplayCheck::Fresh);
    assert_eq!(
        other.insert(&key).unwrap(),
        ReplayCheck::Fresh,
        "prefixes isolate"
    );
    let other_scope = ReplayKey::new("thumbprint-B", "jti").unwrap();
    assert_eq!(
        one.insert(&other_scope).unwrap(),
        ReplayCheck::Fresh,
        "scopes isolate"
    );

    let name = one.redis_key(&key);
    assert_eq!(name, format!("test:replay:{key}"));
    let exists: i64 = redis::cmd("EXISTS").arg(&name).query(&mut admin).unwrap();
    assert_eq!(exists, 1);
}

#[test]
fn lifetime_comes_from_the_source_and_settings_are_checked() {
    let Some(server) =
        RedisServer::start_or_skip("lifetime_comes_from_the_source_and_settings_are_checked")
    else {
        return;
    };
    let source = RedisNonceSource::builder(server.client(), "as")
        .rotation(Duration::minutes(5))
        .clock(ManualClock::at_unix(Duration::hours(500_000)))
        .build()
        .unwrap();
    assert_eq!(
        source.max_nonce_lifetime(),
        Duration::minutes(10) + Duration::seconds(5)
    );
    let replay = RedisReplayCache::builder(server.client(), source.max_nonce_lifetime())
        .build()
        .unwrap();
    assert_eq!(replay.lifetime(), Duration::seconds(605));

    let minute = || RedisReplayCache::builder(server.client(), Duration::minutes(1));
    assert!(matches!(
        RedisReplayCache::builder(server.client(), Duration::ZERO).build(),
        Err(ConfigError::LifetimeTooShort { .. })
    ));
    assert!(matches!(
        minute().connections(0).build(),
        Err(ConfigError::CountOutOfRange {
            min: 1,
            max: 64,
            ..
        })
    ));
    assert!(matches!(
        minute().prefix("").build(),
        Err(ConfigError::InvalidPrefix { max: 128 })
    ));
}
