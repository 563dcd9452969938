//! Failover of a replicated Redis under the nonce source and the replay caches (sync and async):
//! a Sentinel-managed primary and a Redis Cluster primary are SIGKILLed while two replicas of an
//! app issue, check and insert. Nothing unknown is accepted, no `jti` wins twice once the failover is over, an
//! insert acknowledged by a replica survives it, and the sources are back on one shared nonce
//! within a bounded time (printed).
#![cfg(all(feature = "redis", feature = "tokio"))]

#[path = "support/redis_topology.rs"]
mod redis_topology;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use dpop_nonce::redis::{RedisEndpoint, RedisNonceSource};
use dpop_nonce::replay::{
    AsyncRedisReplayCache, AsyncReplayCache, RedisReplayCache, ReplayCache, ReplayCheck,
    ReplayError, ReplayKey,
};
use dpop_nonce::{ManualClock, Nonce, NonceCheck, NonceSource};
use redis_topology::{ClusterTopology, SentinelTopology};
use time::Duration;

const ROTATION: Duration = Duration::minutes(1);
/// The first window of the tests, and a moment 20 s into it (no prefetch before the jump).
const FIRST_WINDOW: i64 = 29_000_000;
const START: Duration = Duration::seconds(FIRST_WINDOW * 60 + 20);
const PREFIX: &str = "failover";
const LABEL: &str = "as";
/// The bound asserted on the time from the kill to both sources sharing a nonce again.
const CONVERGENCE_BOUND: StdDuration = StdDuration::from_secs(20);
const FAILOVER_TIMEOUT: StdDuration = StdDuration::from_secs(30);

type Source = RedisNonceSource<Arc<ManualClock>>;

/// A replay cache builder (sync or async) with the tests' prefix, timeouts and back-off, and
/// with `wait`, waiting for one replica after each insert.
macro_rules! tuned {
    ($builder:expr, $wait:expr) => {{
        let builder = $builder
            .prefix(PREFIX)
            .connect_timeout(Duration::milliseconds(200))
            .io_timeout(Duration::milliseconds(200))
            .backoff(Duration::milliseconds(50), Duration::milliseconds(500));
        if $wait {
            builder.wait_for_replicas(1, Duration::milliseconds(500))
        } else {
            builder
        }
    }};
}

/// Two replicas of an app: a nonce source and a replay cache each, on one clock, plus a replay
/// cache that waits for one replica after each insert; and the same two caches for an async
/// server, run on a runtime of their own.
struct App {
    clock: Arc<ManualClock>,
    a: Source,
    b: Source,
    cache_a: RedisReplayCache,
    cache_b: RedisReplayCache,
    waiting: RedisReplayCache,
    runtime: tokio::runtime::Runtime,
    async_cache: AsyncRedisReplayCache,
    async_waiting: AsyncRedisReplayCache,
}

impl App {
    fn new(endpoint: &RedisEndpoint) -> Self {
        let clock = Arc::new(ManualClock::at_unix(START));
        let source = || {
            RedisNonceSource::builder(endpoint.clone(), LABEL)
                .prefix(PREFIX)
                .rotation(ROTATION)
                .clock(Arc::clone(&clock))
                .connect_timeout(Duration::milliseconds(200))
                .io_timeout(Duration::milliseconds(200))
                .backoff(Duration::milliseconds(50), Duration::milliseconds(500))
                .build()
                .expect("the source starts on the replicated Redis")
        };
        let cache = |wait: bool| {
            tuned!(
                RedisReplayCache::builder(endpoint.clone(), Duration::minutes(10)),
                wait
            )
            .connections(2)
            .build()
            .expect("a replay cache")
        };
        let async_cache = |wait: bool| {
            tuned!(
                AsyncRedisReplayCache::builder(endpoint.clone(), Duration::minutes(10)),
                wait
            )
            .build()
            .expect("an async replay cache")
        };
        let runtime = runtime();
        let (a, b) = (source(), source());
        Self {
            a,
            b,
            cache_a: cache(false),
            cache_b: cache(false),
            waiting: cache(true),
            runtime,
            async_cache: async_cache(false),
            async_waiting: async_cache(true),
            clock,
        }
    }

    /// An insert through an async cache, run to completion.
    fn insert_async(
        &self,
        cache: &AsyncRedisReplayCache,
        key: &ReplayKey,
    ) -> Result<ReplayCheck, ReplayError> {
        self.runtime.block_on(cache.insert(key))
    }

    /// Both sources hand out the same value, and neither a local fallback: a shared nonce.
    fn agree(&self) -> bool {
        !self.a.is_serving_fallback()
            && !self.b.is_serving_fallback()
            && self.a.issue() == self.b.issue()
    }
}

fn random_key() -> ReplayKey {
    ReplayKey::new("thumbprint", Nonce::generate().as_str()).expect("a replay key")
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What was written before the kill: entries acknowledged by a replica (`WAIT`) through the
/// sync and the async cache, and entries acknowledged by the primary alone.
struct Written {
    acked: Vec<ReplayKey>,
    acked_async: Vec<ReplayKey>,
    plain: Vec<ReplayKey>,
}

/// Steady state before the kill: one shared nonce, inserts acknowledged.
fn before_kill(app: &App) -> Written {
    assert!(app.agree(), "the sources share a nonce before the kill");
    let acked: Vec<ReplayKey> = (0..20).map(|_| random_key()).collect();
    for key in &acked {
        let outcome = app.waiting.insert(key);
        assert!(
            matches!(outcome, Ok(ReplayCheck::Fresh)),
            "an insert waiting for the in-sync replica succeeds: {outcome:?}"
        );
    }
    let acked_async: Vec<ReplayKey> = (0..20).map(|_| random_key()).collect();
    for key in &acked_async {
        let outcome = app.insert_async(&app.async_waiting, key);
        assert!(
            matches!(outcome, Ok(ReplayCheck::Fresh)),
            "an async insert waiting for the in-sync replica succeeds: {outcome:?}"
        );
        // Sync and async caches share the entry.
        assert!(matches!(app.cache_b.insert(key), Ok(ReplayCheck::Replayed)));
    }
    let plain: Vec<ReplayKey> = (0..50).map(|_| random_key()).collect();
    for key in &plain {
        assert!(matches!(app.cache_a.insert(key), Ok(ReplayCheck::Fresh)));
    }
    Written {
        acked,
        acked_async,
        plain,
    }
}

/// Request traffic from the kill on: random claims (never accepted), own nonces (accepted by
/// the source that issued them), inserts (any outcome). Returns the time from `killed_at` to
/// both sources sharing a nonce again, or `None` if that did not happen before `stop`.
fn traffic(app: &App, killed_at: Instant, stop: &AtomicBool) -> Option<StdDuration> {
    let mut converged = None;
    let deadline = killed_at + FAILOVER_TIMEOUT;
    while Instant::now() < deadline {
        for source in [&app.a, &app.b] {
            for _ in 0..5 {
                let random = Nonce::generate();
                assert_eq!(
                    source.check(random.as_str()),
                    NonceCheck::Unknown,
                    "a random claim was accepted during the failover"
                );
            }
            let own = source.issue();
            assert!(source.check(own.as_str()).is_accepted());
        }
        let _ = app.cache_a.insert(&random_key());
        let _ = app.insert_async(&app.async_cache, &random_key());
        if converged.is_none() && app.agree() {
            converged = Some(killed_at.elapsed());
        }
        if converged.is_some() && stop.load(Ordering::Acquire) {
            break;
        }
        thread::sleep(StdDuration::from_millis(5));
    }
    converged
}

/// Retries `insert` until it gets an answer from Redis, or `deadline` passes.
fn answered(
    deadline: Instant,
    mut insert: impl FnMut() -> Result<ReplayCheck, ReplayError>,
) -> ReplayCheck {
    loop {
        match insert() {
            Ok(check) => return check,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "the cache did not recover: {err}"
                );
                thread::sleep(StdDuration::from_millis(20));
            }
        }
    }
}

/// After the failover: what a replica acknowledged survived, and the same `jti` inserted from
/// both replicas (sync and sync, sync and async) wins exactly once. Returns how many
/// primary-only entries were lost.
fn after_failover(app: &App, written: &Written) -> usize {
    let deadline = Instant::now() + StdDuration::from_secs(15);
    let insert =
        |cache: &RedisReplayCache, key: &ReplayKey| answered(deadline, || cache.insert(key));
    for key in &written.acked {
        assert_eq!(
            insert(&app.cache_a, key),
            ReplayCheck::Replayed,
            "an entry a replica acknowledged was lost in the failover"
        );
    }
    for key in written.acked.iter().chain(&written.acked_async) {
        assert_eq!(
            answered(deadline, || app.insert_async(&app.async_cache, key)),
            ReplayCheck::Replayed,
            "the async cache accepted an entry a replica acknowledged before the failover"
        );
    }
    let lost = written
        .plain
        .iter()
        .filter(|key| insert(&app.cache_a, key) == ReplayCheck::Fresh)
        .count();
    let mut pairs = 0;
    while pairs < 30 {
        assert!(Instant::now() < deadline, "too few inserts acknowledged");
        let key = random_key();
        let (first, second) = thread::scope(|scope| {
            let first = scope.spawn(|| app.cache_a.insert(&key));
            let second = app.cache_b.insert(&key);
            (first.join().expect("insert thread"), second)
        });
        if let (Ok(first), Ok(second)) = (first, second) {
            let fresh = [first, second]
                .iter()
                .filter(|check| **check == ReplayCheck::Fresh)
                .count();
            assert_eq!(fresh, 1, "a jti won {fresh} times: {first:?}, {second:?}");
            pairs += 1;
        }
    }
    let mut mixed = 0;
    while mixed < 30 {
        assert!(
            Instant::now() < deadline,
            "too few mixed inserts acknowledged"
        );
        let key = random_key();
        let (sync, asynchronous) = thread::scope(|scope| {
            let sync = scope.spawn(|| app.cache_b.insert(&key));
            let asynchronous = app.insert_async(&app.async_cache, &key);
            (sync.join().expect("insert thread"), asynchronous)
        });
        if let (Ok(sync), Ok(asynchronous)) = (sync, asynchronous) {
            let fresh = [sync, asynchronous]
                .iter()
                .filter(|check| **check == ReplayCheck::Fresh)
                .count();
            assert_eq!(
                fresh, 1,
                "a jti won {fresh} times across the sync and async caches"
            );
            mixed += 1;
        }
    }
    lost
}

/// Inserts fresh keys from `key` until Redis answers (the cache may have to reconnect to the
/// new primary first), and checks that the answer refuses the proof for want of an
/// acknowledging replica. Any insert accepted on the way fails the test.
fn refused_for_want_of_replicas(
    which: &str,
    mut key: impl FnMut() -> ReplayKey,
    mut insert: impl FnMut(&ReplayKey) -> Result<ReplayCheck, ReplayError>,
) {
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        match insert(&key()) {
            Ok(check) => {
                panic!("{which}: an insert no replica acknowledged was accepted: {check:?}")
            }
            Err(err) if err.to_string().contains("replicas acknowledged") => return,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "{which}: no answer from the new primary: {err}"
                );
                thread::sleep(StdDuration::from_millis(20));
            }
        }
    }
}

/// Runs the traffic from `killed_at` while `wait` waits for the promotion; returns (failover
/// time, convergence time).
fn run_failover(
    app: &App,
    killed_at: Instant,
    wait: impl FnOnce() -> StdDuration,
) -> (StdDuration, StdDuration) {
    let stop = AtomicBool::new(false);
    let (promoted, converged) = thread::scope(|scope| {
        let traffic = scope.spawn(|| traffic(app, killed_at, &stop));
        let promoted = wait();
        stop.store(true, Ordering::Release);
        (promoted, traffic.join().expect("traffic thread"))
    });
    let converged = converged.expect("the sources never shared a nonce again");
    assert!(
        converged < CONVERGENCE_BOUND,
        "the sources took {converged:?} to share a nonce again"
    );
    (promoted, converged)
}

#[test]
fn sentinel_failover_keeps_the_promises() {
    let Some(mut topology) =
        SentinelTopology::start_or_skip("sentinel_failover_keeps_the_promises")
    else {
        return;
    };
    let endpoint = RedisEndpoint::sentinel(topology.sentinel_urls(), redis_topology::MASTER_NAME)
        .expect("a sentinel endpoint");
    let app = App::new(&endpoint);
    let written = before_kill(&app);
    // One replica only: an insert that waits for two is refused, after the wait.
    let two = RedisReplayCache::builder(endpoint.clone(), Duration::minutes(10))
        .prefix(PREFIX)
        .wait_for_replicas(2, Duration::milliseconds(100))
        .build()
        .expect("a replay cache");
    assert!(two.insert(&random_key()).is_err());

    let old_port = topology.reported_primary().expect("a primary");
    topology.kill_primary();
    let killed_at = Instant::now();
    // A new window: its value must come from the new primary.
    app.clock.advance(ROTATION);
    let (promoted, converged) = run_failover(&app, killed_at, || {
        topology.wait_failover(old_port, FAILOVER_TIMEOUT)
    });
    let lost = after_failover(&app, &written);
    // The new primary has no replica left: an insert that waits for one is refused.
    refused_for_want_of_replicas("sync", random_key, |key| app.waiting.insert(key));
    refused_for_want_of_replicas("async", random_key, |key| {
        app.insert_async(&app.async_waiting, key)
    });
    say(&format!(
        "sentinel failover: replica promoted after {promoted:?}; both sources on one shared \
         nonce {converged:?} after the kill; {lost} of {} primary-only jtis lost",
        written.plain.len()
    ));
}

#[test]
fn cluster_failover_keeps_the_promises() {
    let Some(mut topology) = ClusterTopology::start_or_skip("cluster_failover_keeps_the_promises")
    else {
        return;
    };
    let endpoint = RedisEndpoint::cluster(topology.urls()).expect("a cluster endpoint");
    let app = App::new(&endpoint);
    let written = before_kill(&app);

    // The current window's nonce key, and the primary that holds it.
    let nonce_key = |window: i64| format!("{PREFIX}:{LABEL}:nonce:{window}");
    let slot = topology.keyslot(&nonce_key(FIRST_WINDOW));
    let old_port = topology
        .primary_of_slot(slot)
        .expect("a primary serves the slot");
    let holder = topology
        .nodes
        .iter()
        .find(|node| node.port == old_port)
        .expect("the primary is one of the nodes");
    assert!(
        holder
            .query::<Option<String>>(&["GET", &nonce_key(FIRST_WINDOW)])
            .flatten()
            .is_some_and(|value| value == app.a.issue().as_str()),
        "the current window's value is on the primary of its slot"
    );
    // A later window whose key lives on the same primary: jumped to right after the kill, so
    // its value must come from the promoted replica.
    let later = (FIRST_WINDOW + 1..FIRST_WINDOW + 200)
        .find(|window| {
            topology.primary_of_slot(topology.keyslot(&nonce_key(*window))) == Some(old_port)
        })
        .expect("a window on the same primary");

    topology.kill_port(old_port);
    let killed_at = Instant::now();
    app.clock
        .advance(ROTATION * i32::try_from(later - FIRST_WINDOW).expect("a few windows"));
    let (promoted, converged) = run_failover(&app, killed_at, || {
        topology.wait_failover(slot, old_port, FAILOVER_TIMEOUT)
    });
    let lost = after_failover(&app, &written);
    let new_port = topology.primary_of_slot(slot).expect("a new primary");
    // The promoted replica has no replica of its own: an insert on its slots that waits for one
    // is refused.
    let on_new_primary = || loop {
        let key = random_key();
        let redis_key = app.waiting.redis_key(&key);
        if topology.primary_of_slot(topology.keyslot(&redis_key)) == Some(new_port) {
            return key;
        }
    };
    refused_for_want_of_replicas("sync", on_new_primary, |key| app.waiting.insert(key));
    refused_for_want_of_replicas("async", on_new_primary, |key| {
        app.insert_async(&app.async_waiting, key)
    });
    say(&format!(
        "cluster failover: replica promoted after {promoted:?}; both sources on one shared \
         nonce {converged:?} after the kill; {lost} of {} primary-only jtis lost",
        written.plain.len()
    ));
}

/// A Redis Cluster for `test`, its endpoint, and a runtime for the async caches on it.
fn async_cluster(test: &str) -> Option<(ClusterTopology, RedisEndpoint, tokio::runtime::Runtime)> {
    let topology = ClusterTopology::start_or_skip(test)?;
    let endpoint = RedisEndpoint::cluster(topology.urls()).expect("a cluster endpoint");
    Some((topology, endpoint, runtime()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_stalled_cluster_replica_does_not_stop_the_async_cache() {
    let Some((mut topology, endpoint, runtime)) =
        async_cluster("a_stalled_cluster_replica_does_not_stop_the_async_cache")
    else {
        return;
    };
    let cache = || {
        tuned!(
            AsyncRedisReplayCache::builder(endpoint.clone(), Duration::minutes(10)),
            false
        )
        .build()
        .expect("an async replay cache")
    };
    let before = cache();
    let fresh = |cache: &AsyncRedisReplayCache| {
        let deadline = Instant::now() + StdDuration::from_secs(15);
        answered(deadline, || runtime.block_on(cache.insert(&random_key())))
    };
    assert_eq!(fresh(&before), ReplayCheck::Fresh);

    let replica = topology
        .cluster_nodes()
        .into_iter()
        .find(|node| !node.is_primary)
        .expect("a replica")
        .port;
    let node = topology
        .nodes
        .iter()
        .position(|node| node.port == replica)
        .expect("the replica's process");
    topology.nodes[node].freeze(true);
    // Writes go to the primaries, which all answer: a cache connected before the stall and one
    // that connects during it both keep inserting.
    let during = cache();
    for cache in [&before, &during] {
        for _ in 0..20 {
            assert_eq!(fresh(cache), ReplayCheck::Fresh);
        }
    }
    topology.nodes[node].freeze(false);
}

#[test]
fn the_async_cache_leaves_a_hung_cluster_primary_behind() {
    let Some((mut topology, endpoint, runtime)) =
        async_cluster("the_async_cache_leaves_a_hung_cluster_primary_behind")
    else {
        return;
    };
    let cache = tuned!(
        AsyncRedisReplayCache::builder(endpoint, Duration::minutes(10)),
        false
    )
    .build()
    .expect("an async replay cache");
    let insert = |key: &ReplayKey| runtime.block_on(cache.insert(key));
    // Keys on the slots of the primary that will hang, and keys elsewhere.
    let probe = random_key();
    let slot = topology.keyslot(&cache.redis_key(&probe));
    let hung_port = topology.primary_of_slot(slot).expect("a primary");
    let on = |wanted: bool| loop {
        let key = random_key();
        let port = topology.primary_of_slot(topology.keyslot(&cache.redis_key(&key)));
        if (port == Some(hung_port)) == wanted {
            return key;
        }
    };
    assert!(matches!(insert(&on(true)), Ok(ReplayCheck::Fresh)));
    assert!(matches!(insert(&on(false)), Ok(ReplayCheck::Fresh)));
    let (moved, elsewhere): (Vec<ReplayKey>, Vec<ReplayKey>) =
        (0..20).map(|_| (on(true), on(false))).unzip();

    // The primary hangs (not dead: connections to it stay open), and its replica takes over.
    let index = topology
        .nodes
        .iter()
        .position(|node| node.port == hung_port)
        .expect("the primary's process");
    topology.nodes[index].freeze(true);
    topology.wait_failover(slot, hung_port, FAILOVER_TIMEOUT);

    // Traffic to the other slots keeps succeeding; the moved slots must come back too, though
    // the cache's connection first knew them on the hung node.
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let mut back = false;
    for (moved, elsewhere) in moved.iter().zip(&elsewhere) {
        assert!(matches!(
            answered(deadline, || insert(elsewhere)),
            ReplayCheck::Fresh
        ));
        if matches!(insert(moved), Ok(ReplayCheck::Fresh)) {
            back = true;
            break;
        }
        thread::sleep(StdDuration::from_millis(100));
    }
    assert!(
        back,
        "the slots of the hung primary stayed out of reach after the failover"
    );
    topology.nodes[index].freeze(false);
}
