//! The Redis nonce source with its background refresher, on a current-thread tokio runtime,
//! against a real `redis-server` started by the tests: the request path never blocks the
//! runtime, even with Redis paused across a window change.
#![cfg(feature = "tokio")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant};

use dpop_nonce::redis::RedisNonceSource;
use dpop_nonce::replay::{AsyncRedisReplayCache, AsyncReplayCache, ReplayCheck, ReplayKey};
use dpop_nonce::{Clock, ManualClock, Nonce, NonceCheck, NonceSource, Rotation};
use redis_server::RedisServer;
use time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

const ROTATION: Duration = Duration::minutes(1);
/// A time in the middle of a window (window 29_000_000 of one minute, plus 20 s).
const MID_WINDOW: Duration = Duration::seconds(29_000_000 * 60 + 20);
/// How long Redis stays paused.
const PAUSE: StdDuration = StdDuration::from_millis(1_500);
/// The longest the runtime may go without running a ready task. A blocking Redis call on the
/// request path would stall it for at least one I/O timeout (400 ms here, see `builder`); the
/// margin below that absorbs the scheduling noise of a loaded machine (a 2-core machine busy
/// with other builds shows stalls of tens of milliseconds with no Redis call at all).
const MAX_STALL: StdDuration = StdDuration::from_millis(150);

fn builder(
    server: &RedisServer,
    clock: &Arc<ManualClock>,
) -> dpop_nonce::redis::RedisNonceSourceBuilder<Arc<ManualClock>> {
    RedisNonceSource::builder(server.client(), "as")
        .rotation(ROTATION)
        .clock(Arc::clone(clock))
        .connect_timeout(Duration::milliseconds(400))
        .io_timeout(Duration::milliseconds(400))
}

fn pause_redis(server: &RedisServer, for_ms: u128) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(u64::try_from(for_ms).unwrap())
        .arg("ALL")
        .query(&mut server.admin())
        .expect("CLIENT PAUSE");
}

/// The value Redis holds for `window` of the source labelled "as" (default prefix).
fn shared_value(server: &RedisServer, window: i64) -> Option<String> {
    redis::cmd("GET")
        .arg(format!("dpop-nonce:as:nonce:{window}"))
        .query(&mut server.admin())
        .expect("GET")
}

/// Calls of `SET` and `GET` the server has run (not counting the test's own `INFO`).
fn set_and_get_calls(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.admin())
        .expect("INFO commandstats");
    info.lines()
        .filter(|line| line.starts_with("cmdstat_set:") || line.starts_with("cmdstat_get:"))
        .filter_map(|line| {
            let calls = line.split_once("calls=")?.1;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Polls `done` every 10 ms (on the runtime, never blocking it) for at most `within`.
async fn eventually(within: StdDuration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    done()
}

/// A task that sleeps 1 ms in a loop and records how late it woke up: the longest time the
/// runtime spent without running it, i.e. how long any other task blocked the thread.
fn watchdog(stop: &Arc<AtomicBool>) -> JoinHandle<StdDuration> {
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut worst = StdDuration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let asked = StdDuration::from_millis(1);
            let started = Instant::now();
            tokio::time::sleep(asked).await;
            // The timer wheel rounds up to the next millisecond: count that as on time.
            let late = started.elapsed().saturating_sub(asked * 2);
            worst = worst.max(late);
        }
        worst
    })
}

/// What one request task saw.
#[derive(Default)]
struct Seen {
    /// The longest single `issue` or `check` call.
    slowest_call: StdDuration,
    /// Every nonce issued, and the verdict of checking it at once.
    issued: Vec<(Nonce, NonceCheck)>,
    /// Claims that must be refused, and what `check` said.
    unknown: Vec<NonceCheck>,
    /// Replay inserts of keys of its own: (answered before the pause surely ended, answer).
    own_inserts: Vec<(bool, Result<ReplayCheck, String>)>,
    /// Replay inserts of the one contested key.
    contested: Vec<Result<ReplayCheck, String>>,
}

#[tokio::test(flavor = "current_thread")]
async fn a_paused_redis_never_blocks_the_runtime_across_a_window_change() {
    let Some(server) = RedisServer::start_or_skip(
        "a_paused_redis_never_blocks_the_runtime_across_a_window_change",
    ) else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let rotation = Rotation::new(ROTATION).unwrap();
    let (source, refresher) = builder(&server, &clock)
        .refresh_every(Duration::milliseconds(20))
        .build_with_refresher(&Handle::current())
        .expect("a valid configuration");
    assert!(source.is_refreshed_in_background());
    assert!(
        eventually(StdDuration::from_secs(5), || !source.is_serving_fallback()).await,
        "the refresher fetches the first value"
    );
    let old_window = rotation.window_of(clock.unix_time());
    let old_shared = source.issue();
    assert_eq!(
        Some(old_shared.as_str().to_owned()),
        shared_value(&server, old_window)
    );
    let cache = Arc::new(
        AsyncRedisReplayCache::for_source(server.client(), &*source)
            .backoff(Duration::milliseconds(100), Duration::milliseconds(400))
            .build()
            .unwrap(),
    );
    let contested = ReplayKey::new("jkt", "contested").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watchdog = watchdog(&stop);
    tokio::time::sleep(StdDuration::from_millis(20)).await;

    // Redis stops answering, and the clock jumps two windows: the new window's value was not
    // prefetched, so the source needs Redis for it, and must not wait for it.
    let paused_at = Instant::now();
    pause_redis(&server, PAUSE.as_millis());
    let surely_paused_until = paused_at + PAUSE - StdDuration::from_millis(50);
    clock.advance(ROTATION * 2);
    let new_window = rotation.window_of(clock.unix_time());

    let tasks: Vec<JoinHandle<Seen>> = (0..32)
        .map(|task| {
            let source = Arc::clone(&source);
            let cache = Arc::clone(&cache);
            let old_shared = old_shared.clone();
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let until = paused_at + PAUSE + StdDuration::from_millis(1_500);
                let mut round = 0u32;
                while Instant::now() < until {
                    let started = Instant::now();
                    let nonce = source.issue();
                    let verdict = source.check(nonce.as_str());
                    let stranger = source.check(Nonce::generate().as_str());
                    let stale = source.check(old_shared.as_str());
                    seen.slowest_call = seen.slowest_call.max(started.elapsed());
                    seen.issued.push((nonce, verdict));
                    seen.unknown.extend([stranger, stale]);

                    let own = ReplayKey::new("jkt", format!("task-{task}-round-{round}")).unwrap();
                    let answer = cache.insert(&own).await.map_err(|err| err.to_string());
                    seen.own_inserts
                        .push((Instant::now() < surely_paused_until, answer));
                    let answer = cache
                        .insert(&contested)
                        .await
                        .map_err(|err| err.to_string());
                    seen.contested.push(answer);

                    round += 1;
                    tokio::time::sleep(StdDuration::from_millis(5)).await;
                }
                seen
            })
        })
        .collect();

    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.expect("a request task does not panic"));
    }

    // The source converges on the value Redis holds for the new window.
    let converged = eventually(StdDuration::from_secs(5), || {
        !source.is_serving_fallback()
            && shared_value(&server, new_window).as_deref() == Some(source.issue().as_str())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let worst_stall = watchdog.await.unwrap();
    assert!(
        converged,
        "the refresher brings the source back to the shared value"
    );

    // The runtime was never blocked, and no request-path call took long.
    let slowest_call = all.iter().map(|seen| seen.slowest_call).max().unwrap();
    assert!(
        worst_stall < MAX_STALL,
        "the runtime stalled for {worst_stall:?}"
    );
    assert!(
        slowest_call < MAX_STALL,
        "a source call took {slowest_call:?}"
    );

    // Nothing was accepted without verification.
    let refused = all.iter().flat_map(|seen| &seen.unknown);
    assert!(
        refused
            .clone()
            .all(|verdict| *verdict == NonceCheck::Unknown)
    );
    assert!(
        refused.count() > 100,
        "the tasks kept running during the pause"
    );
    let mut values: HashMap<String, usize> = HashMap::new();
    for (nonce, verdict) in all.iter().flat_map(|seen| &seen.issued) {
        assert!(verdict.is_accepted(), "an issued nonce is accepted at once");
        *values.entry(nonce.as_str().to_owned()).or_default() += 1;
    }
    // The fallback of the pause, then (after it) the shared value: nothing else.
    assert!(values.len() <= 2, "{} distinct nonces", values.len());
    let shared_now = shared_value(&server, new_window).unwrap();
    for value in values.keys() {
        let verdict = source.check(value);
        assert!(
            verdict.is_accepted(),
            "{value} is still accepted: {verdict:?}"
        );
        if *value != shared_now {
            assert_eq!(
                verdict,
                NonceCheck::Previous,
                "the fallback counts as previous"
            );
        }
    }

    // No replay insert was `Fresh` while Redis could not have answered; inserts kept failing
    // closed during the pause, and succeeded after it.
    let own: Vec<_> = all.iter().flat_map(|seen| &seen.own_inserts).collect();
    assert!(
        own.iter()
            .filter(|(during, _)| *during)
            .all(|(_, answer)| answer.is_err()),
        "an insert was answered while Redis was paused"
    );
    assert!(
        own.iter()
            .any(|(during, answer)| *during && answer.is_err())
    );
    assert!(
        own.iter()
            .any(|(_, answer)| *answer == Ok(ReplayCheck::Fresh)),
        "{:?}",
        own.iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(
        own.iter()
            .all(|(_, answer)| *answer != Ok(ReplayCheck::Replayed)),
        "each own key is inserted once"
    );
    // The contested key: at most one winner over the whole run, and recorded by the end.
    let winners = all
        .iter()
        .flat_map(|seen| &seen.contested)
        .filter(|answer| **answer == Ok(ReplayCheck::Fresh))
        .count();
    assert!(winners <= 1, "{winners} tasks won the contested key");
    assert_eq!(
        cache.insert(&contested).await.unwrap(),
        ReplayCheck::Replayed
    );

    assert!(!refresher.is_finished());
    drop(source);
}

#[tokio::test(flavor = "current_thread")]
async fn the_watchdog_sees_a_blocking_call() {
    // The control for the test above: the same pause and window change with a source whose
    // request path fetches (no refresher) does stall the runtime, and the watchdog shows it.
    let Some(server) = RedisServer::start_or_skip("the_watchdog_sees_a_blocking_call") else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let source = builder(&server, &clock).build().unwrap();
    assert!(!source.is_refreshed_in_background());
    let stop = Arc::new(AtomicBool::new(false));
    let watchdog = watchdog(&stop);
    tokio::time::sleep(StdDuration::from_millis(20)).await;

    pause_redis(&server, 600);
    clock.advance(ROTATION * 2);
    let started = Instant::now();
    let _ = source.issue();
    let blocked = started.elapsed();
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    stop.store(true, Ordering::Relaxed);
    let worst_stall = watchdog.await.unwrap();
    assert!(blocked >= StdDuration::from_millis(90), "{blocked:?}");
    assert!(
        worst_stall >= MAX_STALL,
        "the watchdog saw only {worst_stall:?}"
    );
    assert!(source.is_serving_fallback());
}

#[tokio::test(flavor = "current_thread")]
async fn the_refresher_prefetches_the_next_window() {
    let Some(server) = RedisServer::start_or_skip("the_refresher_prefetches_the_next_window")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let rotation = Rotation::new(ROTATION).unwrap();
    let (source, _refresher) = builder(&server, &clock)
        .refresh_every(Duration::milliseconds(20))
        .build_with_refresher(&Handle::current())
        .unwrap();
    let next = rotation.window_of(clock.unix_time()) + 1;
    assert!(
        eventually(StdDuration::from_secs(5), || shared_value(&server, next)
            .is_some())
        .await,
        "the next window's value is prefetched"
    );
    // The value is stored in the source right after Redis answered.
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    clock.advance(ROTATION);
    // The new window starts on the shared value at once, with no fallback in between.
    assert!(!source.is_serving_fallback());
    assert_eq!(
        shared_value(&server, next).as_deref(),
        Some(source.issue().as_str())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_refresher_stops_when_the_source_is_dropped() {
    let Some(server) = RedisServer::start_or_skip("the_refresher_stops_when_the_source_is_dropped")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let (source, refresher) = builder(&server, &clock)
        .refresh_every(Duration::milliseconds(20))
        .build_with_refresher(&Handle::current())
        .unwrap();
    assert_eq!(refresher.every(), Duration::milliseconds(20));
    // It refreshes: calls keep reaching Redis.
    let before = set_and_get_calls(&server);
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        set_and_get_calls(&server) >= before + 3,
        "the refresher runs"
    );

    drop(source);
    assert!(
        eventually(StdDuration::from_secs(2), || refresher.is_finished()).await,
        "the task ends once the source is gone"
    );
    let after_stop = set_and_get_calls(&server);
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(
        set_and_get_calls(&server),
        after_stop,
        "no command reaches Redis after the source is dropped"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn stopping_the_refresher_hands_the_request_path_its_calls_back() {
    let Some(server) =
        RedisServer::start_or_skip("stopping_the_refresher_hands_the_request_path_its_calls_back")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let rotation = Rotation::new(ROTATION).unwrap();
    let (source, refresher) = builder(&server, &clock)
        .refresh_every(Duration::milliseconds(20))
        .build_with_refresher(&Handle::current())
        .unwrap();
    refresher.stop();
    assert!(eventually(StdDuration::from_secs(2), || refresher.is_finished()).await);
    assert!(!source.is_refreshed_in_background());
    // A window two ahead was never prefetched: the request path now fetches it itself.
    clock.advance(ROTATION * 2);
    let served = source.issue();
    assert_eq!(
        shared_value(&server, rotation.window_of(clock.unix_time())).as_deref(),
        Some(served.as_str())
    );
}
