//! Redis dies, restarts, or is not there at all: the source and the replay cache keep their
//! promises (no panic, nothing unverifiable accepted, usable nonces, convergence).
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use dpop_nonce::redis::{Health, RedisNonceSource, RedisSourceError};
use dpop_nonce::replay::RedisReplayCache;
use dpop_nonce::replay::{ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use dpop_nonce::{ManualClock, Nonce, NonceCheck, NonceSource};
use redis_server::RedisServer;
use time::Duration;

const ROTATION: Duration = Duration::minutes(1);
const MID_WINDOW: Duration = Duration::seconds(29_000_000 * 60 + 20);
const SHORT_BACKOFF: time::Duration = time::Duration::milliseconds(20);

type Source = RedisNonceSource<Arc<ManualClock>>;

fn replica(client: redis::Client, clock: &Arc<ManualClock>) -> Source {
    RedisNonceSource::builder(client, "as")
        .rotation(ROTATION)
        .clock(Arc::clone(clock))
        .backoff(SHORT_BACKOFF, SHORT_BACKOFF * 4)
        .build_with_fallback()
        .unwrap()
}

/// Hammers `source` with random claims (which must never pass) and its own nonces (which must)
/// until told to stop; returns how many checks it made.
fn checker(
    source: Arc<Source>,
    stop: Arc<AtomicBool>,
    checks: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..50 {
                let random = Nonce::generate();
                assert_eq!(
                    source.check(random.as_str()),
                    NonceCheck::Unknown,
                    "a random claim was accepted"
                );
                assert_eq!(source.check("short-claim"), NonceCheck::Unknown);
                let own = source.issue();
                assert!(
                    source.check(own.as_str()).is_accepted(),
                    "a nonce just issued is refused by the same replica"
                );
            }
            checks.fetch_add(150, Ordering::Relaxed);
        }
    })
}

#[test]
fn redis_killed_mid_run_then_restarted() {
    let Some(mut server) = RedisServer::start_or_skip("redis_killed_mid_run_then_restarted") else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let a = Arc::new(replica(server.client(), &clock));
    let b = Arc::new(replica(server.client(), &clock));
    assert_eq!(a.issue(), b.issue());
    let shared_before = a.issue();

    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let workers = [
        checker(Arc::clone(&a), Arc::clone(&stop), Arc::clone(&checks)),
        checker(Arc::clone(&b), Arc::clone(&stop), Arc::clone(&checks)),
    ];
    thread::sleep(StdDuration::from_millis(100));

    // Redis dies mid-run. Within the window nothing changes: the values are cached.
    server.stop();
    thread::sleep(StdDuration::from_millis(100));
    assert_eq!(a.check(shared_before.as_str()), NonceCheck::Current);

    // The next window starts while Redis is down: each replica falls back to its own nonce.
    clock.advance(ROTATION);
    let fallback_a = a.issue();
    let fallback_b = b.issue();
    assert!(a.is_serving_fallback() && b.is_serving_fallback());
    assert!(
        matches!(a.health(), Health::Unavailable { .. }),
        "{:?}",
        a.health()
    );
    assert!(!b.is_healthy());
    assert_ne!(fallback_a, fallback_b);
    assert_eq!(
        a.check(fallback_a.as_str()),
        NonceCheck::Current,
        "usable on the same replica"
    );
    assert_eq!(b.check(fallback_b.as_str()), NonceCheck::Current);
    assert_eq!(
        a.check(fallback_b.as_str()),
        NonceCheck::Unknown,
        "never accept the unverifiable"
    );
    assert_eq!(b.check(fallback_a.as_str()), NonceCheck::Unknown);
    assert_eq!(a.check(shared_before.as_str()), NonceCheck::Previous);
    assert!(a.refresh().is_err(), "refresh reports the outage");
    thread::sleep(StdDuration::from_millis(200));

    // Redis comes back (empty). Within one window both replicas agree again.
    server.restart();
    thread::sleep(StdDuration::from_millis(100));
    clock.advance(ROTATION);
    let converged = a.issue();
    assert_eq!(
        b.issue(),
        converged,
        "both replicas hand out the shared value again"
    );
    assert_eq!(b.check(converged.as_str()), NonceCheck::Current);
    assert_eq!(a.check(converged.as_str()), NonceCheck::Current);
    assert!(!a.is_serving_fallback() && !b.is_serving_fallback());
    assert!(a.is_healthy() && b.is_healthy(), "{:?}", a.health());
    // Fallback nonces of the outage window stay good (as previous) on their own replica only.
    assert_eq!(a.check(fallback_a.as_str()), NonceCheck::Previous);
    assert_eq!(b.check(fallback_a.as_str()), NonceCheck::Unknown);

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("no checker panicked");
    }
    assert!(checks.load(Ordering::Relaxed) > 0);
}

#[test]
fn convergence_within_the_same_window_once_the_backoff_runs_out() {
    let Some(mut server) =
        RedisServer::start_or_skip("convergence_within_the_same_window_once_the_backoff_runs_out")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let a = replica(server.client(), &clock);
    server.stop();
    clock.advance(ROTATION);
    let fallback = a.issue();
    assert!(a.is_serving_fallback());

    // During the back-off, calls serve the fallback without touching Redis, and fast.
    let started = Instant::now();
    for _ in 0..10_000 {
        assert_eq!(a.check(fallback.as_str()), NonceCheck::Current);
    }
    assert!(started.elapsed() < StdDuration::from_secs(5));

    server.restart();
    let deadline = Instant::now() + StdDuration::from_secs(5);
    while a.is_serving_fallback() {
        assert!(
            Instant::now() < deadline,
            "no convergence: {:?}",
            a.health()
        );
        let _ = a.issue();
        thread::sleep(StdDuration::from_millis(5));
    }
    let shared = a.issue();
    assert_ne!(shared, fallback);
    assert_eq!(
        a.check(fallback.as_str()),
        NonceCheck::Previous,
        "moved over, not cut off"
    );
    let b = replica(server.client(), &clock);
    assert_eq!(b.issue(), shared);
}

#[test]
fn unreachable_at_start_up_is_a_typed_error_or_the_fallback() {
    let Some(mut server) =
        RedisServer::start_or_skip("unreachable_at_start_up_is_a_typed_error_or_the_fallback")
    else {
        return;
    };
    let client = server.client();
    server.stop();
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));

    let started = Instant::now();
    let strict = RedisNonceSource::builder(client.clone(), "as")
        .rotation(ROTATION)
        .clock(Arc::clone(&clock))
        .build();
    assert!(
        matches!(strict, Err(RedisSourceError::Unreachable(_))),
        "{strict:?}"
    );
    assert!(started.elapsed() < StdDuration::from_secs(2));

    let lenient = replica(client, &clock);
    assert!(lenient.is_serving_fallback());
    assert!(!lenient.is_healthy());
    let fallback = lenient.issue();
    assert_eq!(lenient.check(fallback.as_str()), NonceCheck::Current);
    assert_eq!(
        lenient.check(Nonce::generate().as_str()),
        NonceCheck::Unknown
    );

    server.restart();
    clock.advance(ROTATION);
    let shared = lenient.issue();
    assert!(!lenient.is_serving_fallback());
    assert!(lenient.is_healthy());
    let other = replica(server.client(), &clock);
    assert_eq!(other.issue(), shared);
}

#[test]
fn replay_cache_fails_closed_while_redis_is_down() {
    let Some(mut server) =
        RedisServer::start_or_skip("replay_cache_fails_closed_while_redis_is_down")
    else {
        return;
    };
    let cache = RedisReplayCache::builder(server.client(), Duration::minutes(2))
        .backoff(SHORT_BACKOFF, SHORT_BACKOFF)
        .connections(2)
        .build()
        .unwrap();
    let first = ReplayKey::new("jkt", "before-outage").unwrap();
    assert_eq!(cache.insert(&first).unwrap(), ReplayCheck::Fresh);

    server.stop();
    for i in 0..20 {
        let key = ReplayKey::new("jkt", format!("during-outage-{i}")).unwrap();
        assert!(matches!(
            cache.insert(&key),
            Err(ReplayError::Unavailable(_))
        ));
    }
    assert!(!cache.is_healthy());
    assert!(!cache.health().is_healthy());

    server.restart();
    let fresh = ReplayKey::new("jkt", "after-outage").unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(5);
    let outcome = loop {
        match cache.insert(&fresh) {
            Ok(outcome) => break outcome,
            Err(_) => {
                assert!(Instant::now() < deadline, "the cache never came back");
                thread::sleep(StdDuration::from_millis(10));
            }
        }
    };
    assert_eq!(outcome, ReplayCheck::Fresh);
    assert_eq!(cache.insert(&fresh).unwrap(), ReplayCheck::Replayed);
}
