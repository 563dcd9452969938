//! The replay (`jti`) cache and its in-memory implementation, through the public API.

#![cfg(feature = "replay")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use dpop_nonce::replay::{
    InMemoryReplayCache, MAX_JTI_LEN, MAX_SCOPE_LEN, ReplayCache, ReplayCheck, ReplayError,
    ReplayKey, ReplayKeyError,
};
use dpop_nonce::{ConfigError, ManualClock, Rotation};
use time::Duration;

const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

fn key(jti: &str) -> ReplayKey {
    ReplayKey::new(JKT, jti).expect("valid jti")
}

fn cache(
    lifetime: Duration,
    capacity: usize,
    shards: usize,
) -> (Arc<ManualClock>, InMemoryReplayCache<Arc<ManualClock>>) {
    let clock = Arc::new(ManualClock::at_unix(Duration::seconds(1_800_000_000)));
    let cache = InMemoryReplayCache::builder(lifetime)
        .capacity(capacity)
        .shards(shards)
        .clock(Arc::clone(&clock))
        .build()
        .expect("valid configuration");
    (clock, cache)
}

#[test]
fn racing_threads_inserting_the_same_jti_exactly_one_wins() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 1_000;
    let (_clock, cache) = cache(Duration::minutes(10), 10_000, 4);
    let barrier = Barrier::new(THREADS);
    let fresh = AtomicUsize::new(0);
    let replayed = AtomicUsize::new(0);
    let per_round: Vec<AtomicUsize> = (0..ROUNDS).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for (round, winners) in per_round.iter().enumerate() {
                    let key = key(&format!("jti-{round}"));
                    barrier.wait();
                    match cache.insert(&key) {
                        Ok(ReplayCheck::Fresh) => {
                            winners.fetch_add(1, Ordering::Relaxed);
                            fresh.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(ReplayCheck::Replayed) => {
                            replayed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("round {round}: {err}"),
                    }
                }
            });
        }
    });
    for (round, winners) in per_round.iter().enumerate() {
        assert_eq!(winners.load(Ordering::Relaxed), 1, "round {round}");
    }
    assert_eq!(fresh.load(Ordering::Relaxed), ROUNDS);
    assert_eq!(replayed.load(Ordering::Relaxed), ROUNDS * (THREADS - 1));
    assert_eq!(cache.len(), ROUNDS);
}

#[test]
fn entries_expire_exactly_after_their_lifetime() {
    let (clock, cache) = cache(Duration::minutes(10), 100, 1);
    let k = key("jti-1");
    assert_eq!(cache.insert(&k).unwrap(), ReplayCheck::Fresh);
    clock.advance(Duration::minutes(10) - Duration::nanoseconds(1));
    assert_eq!(cache.insert(&k).unwrap(), ReplayCheck::Replayed);
    clock.advance(Duration::nanoseconds(1));
    assert_eq!(cache.insert(&k).unwrap(), ReplayCheck::Fresh);
    // The new entry has a lifetime of its own.
    clock.advance(Duration::minutes(5));
    assert_eq!(cache.insert(&k).unwrap(), ReplayCheck::Replayed);
    assert_eq!(cache.lifetime(), Duration::minutes(10));
}

#[test]
fn a_replay_is_caught_for_as_long_as_the_nonce_is_accepted() {
    let rotation = Rotation::new(Duration::minutes(5)).unwrap();
    let (clock, cache) = cache(rotation.max_nonce_lifetime(), 100, 1);
    // First use at the very start of a nonce's window; the nonce is accepted until two
    // intervals later, and so is the replay caught.
    let k = key("jti-at-window-start");
    assert!(cache.insert(&k).unwrap().is_fresh());
    clock.advance(Duration::minutes(10) - Duration::nanoseconds(1));
    assert_eq!(cache.insert(&k).unwrap(), ReplayCheck::Replayed);
    assert_eq!(cache.lifetime(), Duration::minutes(10));
}

#[test]
fn a_full_cache_refuses_new_jtis_until_entries_expire() {
    let (clock, cache) = cache(Duration::seconds(60), 3, 1);
    for (i, jti) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(cache.insert(&key(jti)).unwrap(), ReplayCheck::Fresh);
        assert_eq!(cache.len(), i + 1);
        clock.advance(Duration::seconds(10));
    }
    // Full of live entries: a new jti is refused (fail closed), and nothing is recorded.
    assert!(matches!(cache.insert(&key("d")), Err(ReplayError::Full)));
    assert!(matches!(cache.insert(&key("d")), Err(ReplayError::Full)));
    assert_eq!(cache.len(), 3);
    // A replay is still reported as one, full or not.
    assert_eq!(cache.insert(&key("b")).unwrap(), ReplayCheck::Replayed);

    // "a" expires at 60 s: room for exactly one more.
    clock.advance(Duration::seconds(30));
    assert_eq!(cache.insert(&key("d")).unwrap(), ReplayCheck::Fresh);
    assert!(matches!(cache.insert(&key("e")), Err(ReplayError::Full)));
    assert_eq!(cache.insert(&key("d")).unwrap(), ReplayCheck::Replayed);
    assert_eq!(cache.len(), 3);

    // Once everything expired, the whole capacity is free again.
    clock.advance(Duration::seconds(60));
    cache.purge_expired();
    assert!(cache.is_empty());
    for jti in ["e", "f", "g"] {
        assert_eq!(cache.insert(&key(jti)).unwrap(), ReplayCheck::Fresh);
    }
    assert!(matches!(cache.insert(&key("h")), Err(ReplayError::Full)));
}

#[test]
fn a_sharded_cache_never_holds_more_than_its_capacity() {
    let (_clock, cache) = cache(Duration::minutes(10), 64, 8);
    assert_eq!(cache.shard_count(), 8);
    let mut fresh = 0;
    let mut full = 0;
    for i in 0..2_000 {
        match cache.insert(&key(&format!("jti-{i}"))) {
            Ok(ReplayCheck::Fresh) => fresh += 1,
            Ok(ReplayCheck::Replayed) => panic!("distinct jtis are never replays"),
            Err(ReplayError::Full) => full += 1,
            Err(err) => panic!("{err}"),
        }
    }
    // 2,000 uniformly spread keys fill every one of the 8 shards of 8.
    assert_eq!(fresh, 64);
    assert_eq!(full, 2_000 - 64);
    assert_eq!(cache.len(), 64);
}

#[test]
fn steady_traffic_is_served_by_evicting_expired_entries() {
    // 1,000 entries of 10 s; one proof every 20 ms means 500 live entries at any time.
    let (clock, cache) = cache(Duration::seconds(10), 1_000, 1);
    for i in 0..50_000 {
        assert_eq!(
            cache.insert(&key(&format!("jti-{i}"))).unwrap(),
            ReplayCheck::Fresh,
            "proof {i}"
        );
        clock.advance(Duration::milliseconds(20));
        assert!(cache.len() <= 501);
    }
}

#[test]
fn jti_length_is_bounded_and_an_empty_jti_is_refused() {
    let longest = "j".repeat(MAX_JTI_LEN);
    assert!(ReplayKey::new(JKT, &longest).is_ok());
    assert_eq!(
        ReplayKey::new(JKT, format!("{longest}j")),
        Err(ReplayKeyError::JtiTooLong {
            len: MAX_JTI_LEN + 1,
            max: 256
        })
    );
    assert_eq!(
        ReplayKey::new(JKT, "x".repeat(1 << 20)),
        Err(ReplayKeyError::JtiTooLong {
            len: 1 << 20,
            max: 256
        })
    );
    assert_eq!(ReplayKey::new(JKT, ""), Err(ReplayKeyError::EmptyJti));
    assert_eq!(
        ReplayKey::new("s".repeat(MAX_SCOPE_LEN + 1), "jti"),
        Err(ReplayKeyError::ScopeTooLong {
            len: MAX_SCOPE_LEN + 1,
            max: MAX_SCOPE_LEN
        })
    );
    assert!(ReplayKey::new("s".repeat(MAX_SCOPE_LEN), "jti").is_ok());
    assert!(ReplayKey::new("", "jti").is_ok());
    let err = ReplayKey::new(JKT, "j".repeat(300)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the proof's jti is 300 bytes long, at most 256 are accepted"
    );
}

#[test]
fn the_same_jti_under_different_scopes_is_independent() {
    let (_clock, cache) = cache(Duration::minutes(10), 100, 1);
    let a = ReplayKey::new("thumbprint-a", "shared-jti").unwrap();
    let b = ReplayKey::new("thumbprint-b", "shared-jti").unwrap();
    assert_ne!(a, b);
    assert_eq!(cache.insert(&a).unwrap(), ReplayCheck::Fresh);
    assert_eq!(cache.insert(&b).unwrap(), ReplayCheck::Fresh);
    assert_eq!(cache.insert(&a).unwrap(), ReplayCheck::Replayed);
    assert_eq!(cache.insert(&b).unwrap(), ReplayCheck::Replayed);
}

#[test]
fn key_encoding_is_unambiguous_and_fixed_size() {
    let pairs = [
        ("ab", "c"),
        ("a", "bc"),
        ("abc", "\0"),
        ("", "abc"),
        ("abc\0", "c"),
    ];
    let keys: Vec<ReplayKey> = pairs
        .iter()
        .map(|(scope, jti)| ReplayKey::new(scope, jti).unwrap())
        .collect();
    for (i, x) in keys.iter().enumerate() {
        for (j, y) in keys.iter().enumerate() {
            assert_eq!(x == y, i == j, "{:?} vs {:?}", pairs[i], pairs[j]);
        }
        assert_eq!(x.as_bytes().len(), ReplayKey::LEN);
    }
    // Deterministic, bytes and hex agree, and a key can be rebuilt from its bytes.
    let k = ReplayKey::new("scope", "jti").unwrap();
    assert_eq!(k, ReplayKey::new(b"scope", b"jti").unwrap());
    assert_eq!(ReplayKey::from_bytes(*k.as_bytes()), k);
    let hex: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(k.to_string(), hex);
    assert!(format!("{k:?}").contains(&hex));
}

#[test]
fn entries_live_their_lifetime_in_elapsed_time_whatever_the_wall_clock_does() {
    let (clock, cache) = cache(Duration::seconds(60), 10, 1);
    let early = key("early");
    assert!(cache.insert(&early).unwrap().is_fresh());
    // The wall clock steps back, then forward by a year: no time elapses.
    clock.step(Duration::seconds(-30));
    let late = key("late");
    assert!(cache.insert(&late).unwrap().is_fresh());
    clock.step(Duration::days(365));
    assert_eq!(cache.insert(&early).unwrap(), ReplayCheck::Replayed);
    clock.advance(Duration::seconds(59));
    assert_eq!(cache.insert(&early).unwrap(), ReplayCheck::Replayed);
    assert_eq!(cache.insert(&late).unwrap(), ReplayCheck::Replayed);
    clock.advance(Duration::seconds(1));
    assert_eq!(cache.insert(&early).unwrap(), ReplayCheck::Fresh);
    assert_eq!(cache.insert(&late).unwrap(), ReplayCheck::Fresh);
}

#[test]
fn a_forward_jump_then_a_step_back_does_not_jam_a_full_cache() {
    let (clock, cache) = cache(Duration::seconds(60), 2, 1);
    clock.step(Duration::days(365));
    assert!(cache.insert(&key("during-the-jump-1")).unwrap().is_fresh());
    assert!(cache.insert(&key("during-the-jump-2")).unwrap().is_fresh());
    clock.step(-Duration::days(365));
    assert!(matches!(cache.insert(&key("x")), Err(ReplayError::Full)));
    // One lifetime of real time later the entries are gone, whatever the wall clock says.
    clock.advance(Duration::seconds(60));
    assert!(cache.insert(&key("after-1")).unwrap().is_fresh());
    assert!(cache.insert(&key("after-2")).unwrap().is_fresh());
}

#[test]
fn configuration_errors_are_typed() {
    let build = |lifetime: Duration, capacity: usize, shards: Option<usize>| {
        let builder = InMemoryReplayCache::builder(lifetime).capacity(capacity);
        match shards {
            Some(shards) => builder.shards(shards).build(),
            None => builder.build(),
        }
    };
    let minute = Duration::minutes(1);
    assert!(matches!(
        build(Duration::ZERO, 10, None),
        Err(ConfigError::LifetimeTooShort { .. })
    ));
    assert!(matches!(
        build(-minute, 10, None),
        Err(ConfigError::LifetimeTooShort { .. })
    ));
    assert!(matches!(
        build(minute, 0, None),
        Err(ConfigError::CountOutOfRange {
            which: "capacity",
            ..
        })
    ));
    assert!(matches!(
        build(minute, 10, Some(0)),
        Err(ConfigError::CountOutOfRange { max: 10, .. })
    ));
    assert!(matches!(
        build(minute, 10, Some(11)),
        Err(ConfigError::CountOutOfRange { max: 10, .. })
    ));
    assert_eq!(build(minute, 10, Some(10)).unwrap().shard_count(), 10);
    // Automatic sharding: small caches keep one shard (exact capacity), large ones up to 16.
    assert_eq!(build(minute, 10, None).unwrap().shard_count(), 1);
    assert_eq!(build(minute, 1_000_000, None).unwrap().shard_count(), 16);

    let default = InMemoryReplayCache::for_source(&dpop_nonce::InMemoryNonceSource::new());
    assert_eq!(default.lifetime(), Duration::minutes(10));
    assert_eq!(default.capacity(), InMemoryReplayCache::DEFAULT_CAPACITY);
}

/// A cache whose backend is down: every insert fails.
struct Down;

impl ReplayCache for Down {
    fn insert(&self, _key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        Err(ReplayError::unavailable(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "backend timed out",
        )))
    }

    fn lifetime(&self) -> Duration {
        Duration::minutes(10)
    }
}

/// What a server does with the answer: only `Fresh` lets a proof through.
fn accept(cache: &dyn ReplayCache, key: &ReplayKey) -> bool {
    matches!(cache.insert(key), Ok(ReplayCheck::Fresh))
}

#[test]
fn the_trait_is_object_safe_and_errors_fail_closed() {
    let (_clock, memory) = cache(Duration::minutes(1), 10, 1);
    let memory = Arc::new(memory);
    let caches: Vec<Box<dyn ReplayCache>> = vec![
        Box::new(Arc::clone(&memory)),
        Box::new(Box::new(Down) as Box<dyn ReplayCache>),
    ];
    let k = key("jti");
    assert!(accept(caches[0].as_ref(), &k));
    assert!(!accept(caches[0].as_ref(), &k));
    assert!(!accept(&&*memory, &k));
    assert!(!accept(caches[1].as_ref(), &key("never-seen")));
    // The entry lifetime goes through every pointer.
    assert_eq!(caches[0].lifetime(), Duration::minutes(1));
    assert_eq!(caches[1].lifetime(), Duration::minutes(10));
    assert_eq!(ReplayCache::lifetime(&&*memory), Duration::minutes(1));

    let err = Down.insert(&k).unwrap_err();
    assert!(err.to_string().contains("backend timed out"));
    let source = std::error::Error::source(&err).expect("the cause is kept");
    assert_eq!(source.to_string(), "backend timed out");
}
