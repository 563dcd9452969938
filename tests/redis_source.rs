//! The Redis nonce source against a real `redis-server` started by the tests.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;

use dpop_nonce::redis::{RedisNonceSource, RedisSourceError};
use dpop_nonce::{Clock, ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator, Rotation};
use redis_server::RedisServer;
use time::Duration;

const ROTATION: Duration = Duration::minutes(1);
/// A time in the middle of a window (window 29_000_000 of one minute, plus 20 s).
const MID_WINDOW: Duration = Duration::seconds(29_000_000 * 60 + 20);

fn source(
    server: &RedisServer,
    label: &str,
    clock: &Arc<ManualClock>,
) -> RedisNonceSource<Arc<ManualClock>> {
    RedisNonceSource::builder(server.client(), label)
        .rotation(ROTATION)
        .clock(Arc::clone(clock))
        .build()
        .expect("the source starts against a live Redis")
}

fn window_of(clock: &ManualClock) -> i64 {
    Rotation::new(ROTATION)
        .unwrap()
        .window_of(clock.unix_time())
}

#[test]
fn two_replicas_agree_across_rotations() {
    let Some(server) = RedisServer::start_or_skip("two_replicas_agree_across_rotations") else {
        return;
    };
    let clock_a = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let clock_b = Arc::new(ManualClock::at_unix(MID_WINDOW + Duration::seconds(1)));
    let a = source(&server, "as", &clock_a);
    let b = source(&server, "as", &clock_b);

    let mut older: Option<Nonce> = None;
    let mut oldest: Option<Nonce> = None;
    for _ in 0..12 {
        let from_a = a.issue();
        let from_b = b.issue();
        assert_eq!(
            from_a, from_b,
            "both replicas hand out the window's one value"
        );
        assert_eq!(a.check(from_b.as_str()), NonceCheck::Current);
        assert_eq!(b.check(from_a.as_str()), NonceCheck::Current);
        if let Some(previous) = &older {
            assert_ne!(previous, &from_a, "a new window has a new value");
            assert_eq!(a.check(previous.as_str()), NonceCheck::Previous);
            assert_eq!(b.check(previous.as_str()), NonceCheck::Previous);
        }
        if let Some(expired) = &oldest {
            assert_eq!(a.check(expired.as_str()), NonceCheck::Unknown);
            assert_eq!(b.check(expired.as_str()), NonceCheck::Unknown);
        }
        assert!(a.is_healthy() && b.is_healthy());
        assert!(!a.is_serving_fallback() && !b.is_serving_fallback());
        oldest = older.replace(from_a);
        clock_a.advance(ROTATION);
        clock_b.advance(ROTATION);
    }
}

#[test]
fn a_validator_on_one_replica_accepts_the_nonce_of_another() {
    let Some(server) =
        RedisServer::start_or_skip("a_validator_on_one_replica_accepts_the_nonce_of_another")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica_a = NonceValidator::new(source(&server, "as", &clock));
    let replica_b = NonceValidator::new(source(&server, "as", &clock));

    let refused = replica_a.validate(None).unwrap_err();
    let accepted = replica_b.validate(Some(refused.nonce().as_str())).unwrap();
    assert!(accepted.refresh().is_none());

    clock.advance(ROTATION);
    let accepted = replica_b.validate(Some(refused.nonce().as_str())).unwrap();
    assert_eq!(accepted.refresh(), Some(&replica_a.issue()));
}

#[test]
fn replicas_with_clocks_a_little_apart_accept_each_others_nonces() {
    let Some(server) =
        RedisServer::start_or_skip("replicas_with_clocks_a_little_apart_accept_each_others_nonces")
    else {
        return;
    };
    // B runs 2 s ahead of A; the default prefetch lead for a one-minute rotation is 5 s.
    let window_start = Duration::seconds(29_000_000 * 60);
    let clock_a = Arc::new(ManualClock::at_unix(window_start + Duration::seconds(40)));
    let clock_b = Arc::new(ManualClock::at_unix(window_start + Duration::seconds(42)));
    let a = source(&server, "rs", &clock_a);
    let b = source(&server, "rs", &clock_b);
    assert_eq!(a.lead(), Duration::seconds(5));

    for _ in 0..5 {
        // Into the last seconds of the window: any call prefetches the next value.
        clock_a.advance(Duration::seconds(16));
        clock_b.advance(Duration::seconds(16));
        let _ = a.issue();
        let _ = b.issue();
        // B crosses into the next window 2 s before A does.
        clock_a.advance(Duration::seconds(3));
        clock_b.advance(Duration::seconds(3));
        assert_eq!(window_of(&clock_b), window_of(&clock_a) + 1);
        let early = b.issue();
        assert_eq!(
            a.check(early.as_str()),
            NonceCheck::Current,
            "A knows the next value already"
        );
        let late = a.issue();
        assert_eq!(b.check(late.as_str()), NonceCheck::Previous);
        // Both in the new window now.
        clock_a.advance(Duration::seconds(3));
        clock_b.advance(Duration::seconds(3));
        assert_eq!(a.issue(), b.issue());
        assert_eq!(a.issue(), early);
        clock_a.advance(Duration::seconds(38));
        clock_b.advance(Duration::seconds(38));
    }
}

#[test]
fn labels_and_prefixes_isolate_servers() {
    let Some(server) = RedisServer::start_or_skip("labels_and_prefixes_isolate_servers") else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let build = |prefix: &str, label: &str| {
        RedisNonceSource::builder(server.client(), label)
            .prefix(prefix)
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build()
            .unwrap()
    };
    let sources = [
        build("tenant-1", "as"),
        build("tenant-1", "rs"),
        build("tenant-2", "as"),
        build("tenant-2", "rs"),
    ];
    for (i, issuer) in sources.iter().enumerate() {
        let nonce = issuer.issue();
        for (j, checker) in sources.iter().enumerate() {
            let expected = if i == j {
                NonceCheck::Current
            } else {
                NonceCheck::Unknown
            };
            assert_eq!(checker.check(nonce.as_str()), expected, "{i} -> {j}");
        }
    }

    let window = window_of(&clock);
    let mut admin = server.admin();
    let stored: String = redis::cmd("GET")
        .arg(format!("tenant-1:rs:nonce:{window}"))
        .query(&mut admin)
        .unwrap();
    assert_eq!(stored, sources[1].issue().as_str());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("tenant-1:rs:nonce:{window}"))
        .query(&mut admin)
        .unwrap();
    // The key lives until the end of the next window plus one interval: 40 s + 60 s + 60 s.
    assert!(
        (150_000..=160_001).contains(&ttl),
        "the key expires once no replica can accept it: {ttl} ms"
    );
}

#[test]
fn checks_make_no_redis_calls_in_steady_state() {
    let Some(server) = RedisServer::start_or_skip("checks_make_no_redis_calls_in_steady_state")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = source(&server, "as", &clock);
    let nonce = replica.issue();
    let stranger = Nonce::generate();

    // 100,000 checks inside one window.
    let before = server.command_count();
    for i in 0..100_000u32 {
        let claim = if i % 2 == 0 { &nonce } else { &stranger };
        let expected = if i % 2 == 0 {
            NonceCheck::Current
        } else {
            NonceCheck::Unknown
        };
        assert_eq!(replica.check(claim.as_str()), expected);
    }
    let within_one_window = server.command_count() - before;
    eprintln!("Redis commands for 100,000 checks in one window: {within_one_window}");
    assert_eq!(within_one_window, 0);

    // 100,000 checks and issues spread over 20 windows.
    const WINDOWS: u64 = 20;
    let before = server.command_count();
    let first_window = window_of(&clock) + 1;
    let per_window = 100_000 / WINDOWS;
    for i in 0..100_000u64 {
        // Walk through each window, 20 s in and then 58 s in (inside the prefetch lead).
        let window = first_window + (i / per_window) as i64;
        let phase = if i % per_window < per_window / 2 {
            20
        } else {
            58
        };
        let target = Duration::seconds(window * 60 + phase);
        let now = clock.unix_time();
        if target != now {
            clock.advance(target - now);
        }
        let current = replica.issue();
        assert_eq!(replica.check(current.as_str()), NonceCheck::Current);
    }
    let across_windows = server.command_count() - before;
    eprintln!("Redis commands for 100,000 checks over {WINDOWS} windows: {across_windows}");
    // Per window: a fetch or a prefetch (two commands), and a re-read (two) each time the
    // clock moved on by the recheck interval; here it jumps twice per window.
    assert!(
        across_windows <= 8 * WINDOWS,
        "at most a few commands per window, whatever the request rate: {across_windows}"
    );
}

#[test]
fn refresh_fetches_ahead_so_requests_never_call_redis() {
    let Some(server) =
        RedisServer::start_or_skip("refresh_fetches_ahead_so_requests_never_call_redis")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = source(&server, "as", &clock);
    let other = source(&server, "as", &clock);

    replica.refresh().unwrap();
    let before = server.command_count();
    replica.refresh().unwrap();
    assert_eq!(
        server.command_count() - before,
        2,
        "nothing to fetch: one re-read of the current value (SET NX, GET), a probe of Redis"
    );

    // A refresh in the last second of the window, then into the next window: the prefetched
    // value is used with no Redis call.
    clock.advance(Duration::seconds(39));
    replica.refresh().unwrap();
    let before = server.command_count();
    clock.advance(Duration::seconds(1));
    let next = replica.issue();
    assert_eq!(replica.check(next.as_str()), NonceCheck::Current);
    assert_eq!(server.command_count(), before);
    assert_eq!(
        other.issue(),
        next,
        "the prefetched value is the shared one"
    );
}

#[test]
fn values_in_redis_that_are_not_nonces_are_never_accepted() {
    let Some(server) =
        RedisServer::start_or_skip("values_in_redis_that_are_not_nonces_are_never_accepted")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let window = window_of(&clock);
    let mut admin = server.admin();
    let planted = "not a nonce, but 43 bytes long.............";
    assert_eq!(planted.len(), Nonce::GENERATED_LEN);
    let _: () = redis::cmd("SET")
        .arg(format!("dpop-nonce:as:nonce:{window}"))
        .arg(planted)
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(format!("dpop-nonce:rs:nonce:{window}"))
        .arg("x")
        .query(&mut admin)
        .unwrap();

    for label in ["as", "rs"] {
        let strict = RedisNonceSource::builder(server.client(), label)
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build();
        assert!(
            matches!(strict, Err(RedisSourceError::Unreachable(_))),
            "{label}: {strict:?}"
        );

        let lenient = RedisNonceSource::builder(server.client(), label)
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build_with_fallback()
            .unwrap();
        assert_eq!(lenient.check(planted), NonceCheck::Unknown);
        assert!(lenient.is_serving_fallback());
        assert!(!lenient.is_healthy());
        let fallback = lenient.issue();
        assert_eq!(lenient.check(fallback.as_str()), NonceCheck::Current);
    }
}

#[test]
fn builder_refuses_bad_settings_with_typed_errors() {
    let Some(server) = RedisServer::start_or_skip("builder_refuses_bad_settings_with_typed_errors")
    else {
        return;
    };
    let bad = [
        RedisNonceSource::builder(server.client(), "with:colon").build(),
        RedisNonceSource::builder(server.client(), "").build(),
        RedisNonceSource::builder(server.client(), "as")
            .prefix("has space")
            .build(),
        RedisNonceSource::builder(server.client(), "as")
            .rotation(Duration::milliseconds(500))
            .build(),
        RedisNonceSource::builder(server.client(), "as")
            .rotation(ROTATION)
            .lead(ROTATION)
            .build(),
        RedisNonceSource::builder(server.client(), "as")
            .io_timeout(Duration::ZERO)
            .build(),
    ];
    for result in bad {
        assert!(
            matches!(result, Err(RedisSourceError::Config(_))),
            "{result:?}"
        );
    }
}

#[test]
fn many_threads_at_a_window_change_fetch_once() {
    let Some(server) = RedisServer::start_or_skip("many_threads_at_a_window_change_fetch_once")
    else {
        return;
    };
    const THREADS: usize = 8;
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = Arc::new(source(&server, "as", &clock));
    let other = source(&server, "as", &clock);
    // Jump past the prefetch lead straight into the next window: nothing was prefetched.
    clock.advance(ROTATION);
    let before = server.command_count();
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let replica = Arc::clone(&replica);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                replica.issue()
            })
        })
        .collect();
    let issued: Vec<Nonce> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let commands = server.command_count() - before;
    eprintln!("Redis commands for {THREADS} threads at a window change: {commands}");
    // One `SET NX` and one `GET`: the threads that queued for the connection find the value
    // stored by the first, and send nothing.
    assert_eq!(
        commands, 2,
        "one fetch for the window, not one per thread: {commands}"
    );
    assert!(issued.iter().all(|nonce| nonce == &issued[0]));
    assert_eq!(other.issue(), issued[0]);
}

#[test]
fn claims_that_pack_like_empty_slots_are_never_accepted() {
    let Some(server) =
        RedisServer::start_or_skip("claims_that_pack_like_empty_slots_are_never_accepted")
    else {
        return;
    };
    // A healthy source leaves its fallback slots empty; a claim of NUL bytes with a nonce's
    // length must not match them.
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = source(&server, "as", &clock);
    assert!(replica.is_healthy());
    let nul = "\0".repeat(Nonce::GENERATED_LEN);
    assert_eq!(replica.check(&nul), NonceCheck::Unknown);
    assert!(NonceValidator::new(&replica).validate(Some(&nul)).is_err());
    clock.advance(ROTATION * 3);
    assert_eq!(replica.check(&nul), NonceCheck::Unknown);
}

/// What a test puts under a nonce key in place of a value this crate wrote.
#[derive(Debug, Clone)]
enum Planted {
    Bytes(Vec<u8>),
    Hash,
}

impl Planted {
    /// The cases: all 43 characters long but outside base64url (NQCHARs included), one
    /// character short or long, not UTF-8, base64url that no 32 bytes encode to, and a hash.
    fn all() -> Vec<Self> {
        let len = Nonce::GENERATED_LEN;
        let mut one_dot = Nonce::generate().as_str().as_bytes().to_vec();
        one_dot[21] = b'.';
        let mut not_canonical = b"A".repeat(len);
        not_canonical[len - 1] = b'B';
        let generated = Nonce::generate();
        vec![
            Self::Bytes(b"!".repeat(len)),
            Self::Bytes(b"~".repeat(len)),
            Self::Bytes(b"[".repeat(len)),
            Self::Bytes(one_dot),
            Self::Bytes(generated.as_str().as_bytes()[..len - 1].to_vec()),
            Self::Bytes(format!("{generated}A").into_bytes()),
            Self::Bytes(vec![0xc3; len]),
            Self::Bytes(not_canonical),
            Self::Hash,
        ]
    }

    fn plant(&self, admin: &mut redis::Connection, key: &str) {
        let _: () = redis::cmd("DEL").arg(key).query(admin).unwrap();
        match self {
            Self::Bytes(bytes) => redis::cmd("SET")
                .arg(key)
                .arg(bytes.as_slice())
                .query::<()>(admin)
                .unwrap(),
            Self::Hash => redis::cmd("HSET")
                .arg(key)
                .arg("nonce")
                .arg("A".repeat(Nonce::GENERATED_LEN))
                .query::<()>(admin)
                .unwrap(),
        }
    }

    /// The planted text, when it is text a client could send as a claim.
    fn claim(&self) -> Option<&str> {
        match self {
            Self::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            Self::Hash => None,
        }
    }

    /// Asserts `source` neither hands out nor accepts the planted value.
    fn assert_never_used(&self, source: &RedisNonceSource<Arc<ManualClock>>, when: &str) {
        let issued = source.issue();
        if let Self::Bytes(bytes) = self {
            assert_ne!(
                issued.as_bytes(),
                bytes.as_slice(),
                "{when}: {self:?} issued"
            );
        }
        if let Some(claim) = self.claim() {
            assert_eq!(
                source.check(claim),
                NonceCheck::Unknown,
                "{when}: {self:?} accepted"
            );
            assert!(
                NonceValidator::new(source).validate(Some(claim)).is_err(),
                "{when}: {self:?} validated"
            );
        }
        if let Self::Hash = self {
            assert_ne!(issued.as_str(), "A".repeat(Nonce::GENERATED_LEN));
        }
        assert_eq!(source.check(issued.as_str()), NonceCheck::Current);
    }
}

#[test]
fn only_values_this_crate_writes_are_taken_from_redis() {
    let Some(server) =
        RedisServer::start_or_skip("only_values_this_crate_writes_are_taken_from_redis")
    else {
        return;
    };
    let mut admin = server.admin();
    for planted in Planted::all() {
        let _: () = redis::cmd("FLUSHALL").query(&mut admin).unwrap();
        let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
        let window = window_of(&clock);
        let key = |window: i64| format!("dpop-nonce:as:nonce:{window}");
        planted.plant(&mut admin, &key(window));

        // In the current window's key: a failed call at start-up, and a fallback afterwards.
        let strict = RedisNonceSource::builder(server.client(), "as")
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build();
        assert!(
            matches!(strict, Err(RedisSourceError::Unreachable(_))),
            "{planted:?}: {strict:?}"
        );
        let lenient = RedisNonceSource::builder(server.client(), "as")
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build_with_fallback()
            .unwrap();
        planted.assert_never_used(&lenient, "current");
        assert!(lenient.is_serving_fallback(), "{planted:?}");
        assert!(!lenient.health().is_healthy(), "{planted:?}");
        assert!(lenient.refresh().is_err(), "{planted:?}");

        // In the previous and the next window's keys of a replica that has the current value.
        let _: () = redis::cmd("FLUSHALL").query(&mut admin).unwrap();
        planted.plant(&mut admin, &key(window - 1));
        planted.plant(&mut admin, &key(window + 1));
        let replica = RedisNonceSource::builder(server.client(), "as")
            .rotation(ROTATION)
            .clock(Arc::clone(&clock))
            .build_with_fallback()
            .unwrap();
        planted.assert_never_used(&replica, "previous");
        assert!(!replica.health().is_healthy(), "{planted:?}");
        // Into the prefetch lead, then into the next window.
        clock.advance(Duration::seconds(37));
        planted.assert_never_used(&replica, "prefetch");
        assert!(replica.refresh().is_err(), "{planted:?}");
        assert!(!replica.health().is_healthy(), "{planted:?}");
        clock.advance(Duration::seconds(5));
        planted.assert_never_used(&replica, "next");
        assert!(replica.is_serving_fallback(), "{planted:?}");
    }
}

#[test]
fn the_next_window_s_value_counts_only_within_the_lead() {
    let Some(server) =
        RedisServer::start_or_skip("the_next_window_s_value_counts_only_within_the_lead")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = source(&server, "as", &clock);
    // `refresh` fetches the next window's value ahead, mid-window.
    replica.refresh().expect("Redis answers");
    let ahead = Arc::new(ManualClock::at_unix(MID_WINDOW + ROTATION));
    let next = source(&server, "as", &ahead).issue();
    assert_eq!(
        replica.check(next.as_str()),
        NonceCheck::Unknown,
        "a whole window early"
    );
    // 20 s into a one-minute window with a 5 s lead: the lead starts 35 s later.
    clock.advance(Duration::seconds(34));
    assert_eq!(replica.check(next.as_str()), NonceCheck::Unknown);
    clock.advance(Duration::seconds(1));
    assert_eq!(replica.check(next.as_str()), NonceCheck::Current);
    assert_eq!(
        replica.max_nonce_lifetime(),
        ROTATION * 2 + replica.lead(),
        "the lead is part of the lifetime"
    );
}

#[test]
fn a_step_back_never_brings_back_a_value_still_in_redis() {
    let Some(server) =
        RedisServer::start_or_skip("a_step_back_never_brings_back_a_value_still_in_redis")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    let replica = source(&server, "as", &clock);
    let first = replica.issue();
    clock.advance(ROTATION * 2);
    let later = replica.issue();
    clock.advance(-ROTATION * 2);
    // The first window's key is still in Redis, and a replica that never saw the later time
    // still hands it out; this one has been past it, and refuses it.
    let other_clock = Arc::new(ManualClock::at_unix(MID_WINDOW));
    assert_eq!(source(&server, "as", &other_clock).issue(), first);
    assert_eq!(replica.check(first.as_str()), NonceCheck::Unknown);
    assert_eq!(replica.check(later.as_str()), NonceCheck::Unknown);
    let own = replica.issue();
    assert!(own != first && own != later, "a fresh local value");
    assert_eq!(replica.check(own.as_str()), NonceCheck::Current);
    assert!(replica.is_serving_fallback());
    // Rotation goes on every interval, and once the clock is past the latest window seen the
    // shared values are back.
    clock.advance(ROTATION);
    assert_eq!(replica.check(own.as_str()), NonceCheck::Previous);
    assert_ne!(replica.issue(), own);
    clock.advance(ROTATION * 2);
    let shared = replica.issue();
    assert!(!replica.is_serving_fallback());
    assert_eq!(source(&server, "as", &clock).issue(), shared);
}
