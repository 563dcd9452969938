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
use dpop_nonce::{Clock, ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator};
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

/// Time between two requests of the client in the convergence tests.
const STEP: Duration = Duration::milliseconds(250);

/// How long the alternating client of the convergence tests keeps going, on the source clock:
/// from 20 s into the window to 40 s, well before the prefetch lead.
const CLIENT_RUN: Duration = Duration::seconds(20);

/// A replica with the default timeouts and back-off (so the default recheck interval).
fn default_replica(client: redis::Client, clock: &Arc<ManualClock>) -> Source {
    RedisNonceSource::builder(client, "as")
        .rotation(ROTATION)
        .clock(Arc::clone(clock))
        .build()
        .expect("Redis answers")
}

/// A client that sends each request to the next replica in turn, starting with the first, and
/// always uses the last nonce it was given. Moves `clock` on by [`STEP`] after each request,
/// for [`CLIENT_RUN`]. Returns when the last refusal happened (time after the start), if any.
fn alternate(
    replicas: &[&Source],
    clock: &ManualClock,
    mut nonce: Option<Nonce>,
) -> Option<Duration> {
    let validators: Vec<_> = replicas.iter().map(|r| NonceValidator::new(*r)).collect();
    let started = clock.unix_time();
    let mut last_refusal = None;
    let mut turn = 0;
    while clock.unix_time() - started < CLIENT_RUN {
        let validator = &validators[turn % validators.len()];
        match validator.validate(nonce.as_ref().map(Nonce::as_str)) {
            Ok(accepted) => {
                if let Some(refresh) = accepted.into_refresh() {
                    nonce = Some(refresh);
                }
            }
            Err(refused) => {
                last_refusal = Some(clock.unix_time() - started);
                nonce = Some(refused.nonce().clone());
            }
        }
        turn += 1;
        clock.advance(STEP);
    }
    last_refusal
}

/// An old replica caches the window's value, Redis loses it (`lose`), and a new replica stores
/// another one. A client going back and forth between the two is refused for at most about one
/// recheck interval, then never again; both end up on one value.
fn replicas_agree_again_after(test: &str, lose: impl FnOnce(&mut RedisServer)) {
    let Some(mut server) = RedisServer::start_or_skip(test) else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let old = default_replica(server.client(), &clock);
    let before = old.issue();
    assert_eq!(old.recheck_interval(), StdDuration::from_secs(2));

    lose(&mut server);
    let new = default_replica(server.client(), &clock);
    assert_ne!(new.issue(), before, "the new replica stored another value");

    let real = Instant::now();
    let last_refusal = alternate(&[&new, &old], &clock, Some(before.clone()));
    let real = real.elapsed();
    let bound = Duration::try_from(old.recheck_interval()).unwrap() + STEP;
    eprintln!(
        "{test}: last refusal {last_refusal:?} after the data loss (bound {bound}), \
         {real:?} of real time for {CLIENT_RUN} of requests"
    );
    let last_refusal = last_refusal.expect("the replicas disagreed at first");
    assert!(
        last_refusal <= bound,
        "refused until {last_refusal}, more than {bound} after the data loss"
    );
    let agreed = old.issue();
    assert_eq!(new.issue(), agreed);
    assert_eq!(old.check(agreed.as_str()), NonceCheck::Current);
    assert_eq!(new.check(agreed.as_str()), NonceCheck::Current);
    // The value the old replica handed out before is still good there, with a refresh.
    assert_eq!(old.check(before.as_str()), NonceCheck::Previous);
    assert!(old.is_healthy() && new.is_healthy());
    assert!(!old.is_serving_fallback() && !new.is_serving_fallback());
}

#[test]
fn replicas_agree_again_within_seconds_after_a_flushall() {
    replicas_agree_again_after(
        "replicas_agree_again_within_seconds_after_a_flushall",
        |server| {
            let _: () = redis::cmd("FLUSHALL").query(&mut server.admin()).unwrap();
        },
    );
}

#[test]
fn replicas_agree_again_within_seconds_after_a_restart_without_persistence() {
    replicas_agree_again_after(
        "replicas_agree_again_within_seconds_after_a_restart_without_persistence",
        RedisServer::restart,
    );
}

#[test]
fn the_first_replica_to_recheck_puts_the_lost_value_back() {
    let Some(mut server) =
        RedisServer::start_or_skip("the_first_replica_to_recheck_puts_the_lost_value_back")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let a = default_replica(server.client(), &clock);
    let b = default_replica(server.client(), &clock);
    let shared = a.issue();
    assert_eq!(b.issue(), shared);

    server.restart();
    // The periodic refresh of one old replica re-reads the key and finds it gone.
    a.refresh().unwrap();
    let c = default_replica(server.client(), &clock);
    assert_eq!(c.issue(), shared, "the new replica finds the old value");
    assert_eq!(
        alternate(&[&a, &b, &c], &clock, Some(shared.clone())),
        None,
        "no client noticed the data loss"
    );

    // From the request path too: once the interval has run, an issue re-reads.
    let _: () = redis::cmd("FLUSHALL").query(&mut server.admin()).unwrap();
    clock.advance(Duration::try_from(b.recheck_interval()).unwrap());
    assert_eq!(b.issue(), shared);
    let d = default_replica(server.client(), &clock);
    assert_eq!(d.issue(), shared);
}

#[test]
fn with_the_system_clock_replicas_agree_again_within_the_recheck_interval() {
    let Some(server) = RedisServer::start_or_skip(
        "with_the_system_clock_replicas_agree_again_within_the_recheck_interval",
    ) else {
        return;
    };
    // A long rotation, so that the test practically never spans a window change (which would
    // make the replicas agree by itself).
    let build = || {
        RedisNonceSource::builder(server.client(), "as")
            .rotation(Duration::hours(6))
            .build()
            .expect("Redis answers")
    };
    let old = build();
    let before = old.issue();
    let _: () = redis::cmd("FLUSHALL").query(&mut server.admin()).unwrap();
    let lost = Instant::now();
    let new = build();
    let replicas = [NonceValidator::new(&new), NonceValidator::new(&old)];
    let mut nonce = Some(before);
    let mut last_refusal = None;
    let mut turn = 0usize;
    while lost.elapsed() < StdDuration::from_secs(4) {
        match replicas[turn % 2].validate(nonce.as_ref().map(Nonce::as_str)) {
            Ok(accepted) => {
                if let Some(refresh) = accepted.into_refresh() {
                    nonce = Some(refresh);
                }
            }
            Err(refused) => {
                last_refusal = Some(lost.elapsed());
                nonce = Some(refused.nonce().clone());
            }
        }
        turn += 1;
        thread::sleep(StdDuration::from_millis(20));
    }
    eprintln!("system clock: last refusal {last_refusal:?} after the FLUSHALL");
    let bound = old.recheck_interval() + StdDuration::from_millis(500);
    assert!(
        last_refusal.is_some_and(|at| at <= bound),
        "refused until {last_refusal:?}"
    );
    assert_eq!(old.issue(), new.issue());
}

#[test]
fn one_refresh_after_redis_died_reports_it() {
    let Some(mut server) = RedisServer::start_or_skip("one_refresh_after_redis_died_reports_it")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let source = default_replica(server.client(), &clock);
    // Current and next values cached: nothing left to fetch.
    source.refresh().unwrap();
    source.refresh().unwrap();
    assert!(source.health().is_healthy());

    server.stop();
    // Requests are served from the cache, and say nothing about Redis.
    let nonce = source.issue();
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Current);

    assert!(
        matches!(source.refresh(), Err(RedisSourceError::Unreachable(_))),
        "the refresh reaches for Redis"
    );
    assert!(
        matches!(source.health(), Health::Unavailable { .. }),
        "{:?}",
        source.health()
    );
    assert!(!source.is_healthy());
    // Still serving the cached value: an outage mid-window changes nothing for clients.
    assert_eq!(source.issue(), nonce);
    assert!(!source.is_serving_fallback());
}

#[test]
fn last_contact_is_the_time_of_the_last_answer() {
    let Some(mut server) =
        RedisServer::start_or_skip("last_contact_is_the_time_of_the_last_answer")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let started = Instant::now();
    let source = default_replica(server.client(), &clock);
    let first = source
        .last_contact()
        .expect("the build fetched the first value");
    assert!(first >= started);

    thread::sleep(StdDuration::from_millis(20));
    source.refresh().unwrap();
    let second = source.last_contact().unwrap();
    assert!(
        second >= first + StdDuration::from_millis(20),
        "refresh is a contact"
    );

    server.stop();
    assert!(source.refresh().is_err());
    thread::sleep(StdDuration::from_millis(20));
    assert_eq!(
        source.last_contact(),
        Some(second),
        "failures are no contact"
    );
    assert!(second.elapsed() >= StdDuration::from_millis(20));

    server.restart();
    source.refresh().unwrap();
    assert!(source.last_contact().unwrap() > second);
    assert!(source.is_healthy());

    let cache = RedisReplayCache::builder(server.client(), Duration::minutes(2))
        .build()
        .unwrap();
    assert_eq!(cache.last_contact(), None, "no call yet");
    let before_insert = Instant::now();
    let key = ReplayKey::new("jkt", "contact").unwrap();
    assert_eq!(cache.insert(&key).unwrap(), ReplayCheck::Fresh);
    assert!(cache.last_contact().is_some_and(|at| at >= before_insert));
}
