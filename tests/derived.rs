//! The derived (shared-secret) nonce source, through the public API.

#![cfg(feature = "derived")]

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::derived::DerivedNonceSource;
use dpop_nonce::{
    Clock, ConfigError, ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator, RejectReason,
    Rotation, SystemClock,
};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::Duration;

const SECRET: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";
const OTHER_SECRET: [u8; 32] = *b"fedcba9876543210FEDCBA9876543210";
/// A start time well away from the epoch, on a window boundary of every interval used here.
const START: i64 = 1_800_000_000; // a multiple of 3,600

fn clock_at(unix_seconds: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(Duration::seconds(unix_seconds)))
}

fn source(
    label: &str,
    secrets: &[&[u8]],
    clock: &Arc<ManualClock>,
) -> DerivedNonceSource<Arc<ManualClock>> {
    DerivedNonceSource::builder(label)
        .secrets(secrets.iter().copied())
        .rotation(Duration::minutes(1))
        .clock(Arc::clone(clock))
        .build()
        .expect("valid configuration")
}

/// The nonce a one-secret source with `secret` issues at `unix_seconds`.
fn issued_at(secret: &[u8], unix_seconds: i64) -> Nonce {
    source("as", &[secret], &clock_at(unix_seconds)).issue()
}

fn decode(nonce: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(nonce).expect("base64url")
}

#[test]
fn replicas_with_clocks_seconds_apart_accept_each_others_nonces_across_rotations() {
    for offset in [1, 3, 5] {
        let (clock_a, clock_b) = (clock_at(START), clock_at(START + offset));
        let a = NonceValidator::new(source("as", &[&SECRET], &clock_a));
        let b = NonceValidator::new(source("as", &[&SECRET], &clock_b));
        let mut seen = HashSet::new();
        // 7-second steps against a 60-second window visit every whole-second phase of the
        // window, including the seconds where one replica has rotated and the other has not.
        for step in 0..600 {
            let (from_a, from_b) = (a.issue(), b.issue());
            assert!(
                b.validate(Some(from_a.as_str())).is_ok(),
                "offset {offset}s, step {step}: B refused A's nonce"
            );
            assert!(
                a.validate(Some(from_b.as_str())).is_ok(),
                "offset {offset}s, step {step}: A refused B's nonce"
            );
            seen.insert(from_a.to_string());
            clock_a.advance(Duration::seconds(7));
            clock_b.advance(Duration::seconds(7));
        }
        // 600 steps of 7 s cover 70 windows: the nonces really rotated.
        assert!(seen.len() >= 70, "only {} distinct nonces", seen.len());
    }
}

#[test]
fn next_window_is_accepted_only_within_the_skew_of_the_window_end() {
    let (clock_a, clock_b) = (clock_at(START + 52), clock_at(START + 62));
    let a = source("as", &[&SECRET], &clock_a);
    let b = source("as", &[&SECRET], &clock_b);
    // B is 10 s ahead and already in the next window; A is 8 s from its window's end, beyond
    // the default 5-second skew.
    assert_eq!(a.check(b.issue().as_str()), NonceCheck::Unknown);
    clock_a.advance(Duration::seconds(3));
    // 5 s from the end: inside the skew, the next window's nonce counts as current.
    assert_eq!(a.check(b.issue().as_str()), NonceCheck::Current);

    let tolerant = DerivedNonceSource::builder("as")
        .secret(SECRET)
        .rotation(Duration::minutes(1))
        .lead(Duration::seconds(10))
        .clock(clock_at(START + 52))
        .build()
        .unwrap();
    assert_eq!(tolerant.check(b.issue().as_str()), NonceCheck::Current);

    let strict = DerivedNonceSource::builder("as")
        .secret(SECRET)
        .rotation(Duration::minutes(1))
        .lead(Duration::ZERO)
        .clock(clock_at(START + 59))
        .build()
        .unwrap();
    assert_eq!(strict.check(b.issue().as_str()), NonceCheck::Unknown);
}

#[test]
fn a_nonce_is_current_then_previous_then_refused() {
    let clock = clock_at(START);
    let source = source("as", &[&SECRET], &clock);
    let nonce = source.issue();
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Current);
    clock.advance(Duration::seconds(59));
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Current);
    clock.advance(Duration::seconds(1));
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Previous);
    assert_ne!(source.issue(), nonce);
    clock.advance(Duration::seconds(59));
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Previous);
    clock.advance(Duration::seconds(1));
    assert_eq!(source.check(nonce.as_str()), NonceCheck::Unknown);
    assert_eq!(
        source.max_nonce_lifetime(),
        Duration::minutes(2) + Duration::seconds(5)
    );
    assert_eq!(source.rotation().interval(), Duration::minutes(1));
}

#[test]
fn a_previous_nonce_is_accepted_with_a_refresh() {
    let clock = clock_at(START);
    let validator = NonceValidator::new(source("rs", &[&SECRET], &clock));
    let old = validator.issue();
    clock.advance(Duration::minutes(1));
    let accepted = validator.validate(Some(old.as_str())).unwrap();
    let refresh = accepted.refresh().expect("a fresh nonce on success");
    assert_ne!(refresh, &old);
    assert!(
        validator
            .validate(Some(refresh.as_str()))
            .unwrap()
            .refresh()
            .is_none()
    );
}

#[test]
fn different_labels_refuse_each_others_nonces() {
    let clock = clock_at(START);
    let labels = [
        "as",
        "rs",
        "https://as.example.com",
        "https://rs.example.com",
    ];
    let sources: Vec<_> = labels
        .iter()
        .map(|label| source(label, &[&SECRET], &clock))
        .collect();
    for (i, issuer) in sources.iter().enumerate() {
        let nonce = issuer.issue();
        for (j, checker) in sources.iter().enumerate() {
            assert_eq!(
                checker.check(nonce.as_str()).is_accepted(),
                i == j,
                "{} vs {}",
                labels[i],
                labels[j]
            );
        }
    }
    let validator = NonceValidator::new(&sources[1]);
    let refused = validator
        .validate(Some(sources[0].issue().as_str()))
        .unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
}

#[test]
fn different_secrets_refuse_each_others_nonces() {
    let clock = clock_at(START);
    let a = source("as", &[&SECRET], &clock);
    let b = source("as", &[&OTHER_SECRET], &clock);
    for _ in 0..5 {
        assert_ne!(a.issue(), b.issue());
        assert_eq!(a.check(b.issue().as_str()), NonceCheck::Unknown);
        assert_eq!(b.check(a.issue().as_str()), NonceCheck::Unknown);
        clock.advance(Duration::seconds(30));
    }
}

#[test]
fn a_secret_rotation_keeps_old_nonces_valid_until_they_expire() {
    let clock = clock_at(START + 10);
    let before = source("as", &[&SECRET], &clock);
    let old_nonce = before.issue();

    // Step 1: the new secret verifies everywhere, the old one still issues.
    let step1 = source("as", &[&SECRET, &OTHER_SECRET], &clock);
    assert_eq!(step1.issue(), old_nonce);
    assert_eq!(step1.check(old_nonce.as_str()), NonceCheck::Current);

    // Step 2: the new secret issues; the old nonce is still accepted, as previous, so the
    // client is handed a nonce under the new secret.
    let step2 = source("as", &[&OTHER_SECRET, &SECRET], &clock);
    let new_nonce = step2.issue();
    assert_ne!(new_nonce, old_nonce);
    assert_eq!(step2.check(old_nonce.as_str()), NonceCheck::Previous);
    assert_eq!(step1.check(new_nonce.as_str()), NonceCheck::Previous);
    assert_eq!(step2.check(new_nonce.as_str()), NonceCheck::Current);

    // The old nonce lives out its normal life: previous for the next window, then gone.
    clock.advance(Duration::minutes(1));
    assert_eq!(step2.check(old_nonce.as_str()), NonceCheck::Previous);
    clock.advance(Duration::minutes(1));
    assert_eq!(step2.check(old_nonce.as_str()), NonceCheck::Unknown);

    // Step 3: the old secret is dropped; nonces of the new one keep working.
    let step3 = source("as", &[&OTHER_SECRET], &clock);
    assert_eq!(step3.check(step2.issue().as_str()), NonceCheck::Current);
    assert_eq!(step3.secret_count(), 1);
    assert_eq!(step2.secret_count(), 2);
}

/// The nonce is exactly the base64url encoding of one HMAC-SHA256 tag: all of its 256 bits are
/// MAC output, so predicting a nonce without the secret means forging HMAC-SHA256. This
/// computes the tag independently over the documented input encoding and compares.
#[test]
fn nonce_is_the_documented_hmac_of_label_and_window() {
    let clock = clock_at(START + 125);
    let nonce = source("https://rs.example.com", &[&SECRET], &clock).issue();
    let window = (START + 125) / 60;

    let domain: &[u8] = b"dpop-nonce/derived-nonce/v1";
    let label: &[u8] = b"https://rs.example.com";
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
    for part in [domain, label] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.update(&window.to_be_bytes());
    let tag = mac.finalize().into_bytes();

    assert_eq!(decode(nonce.as_str()), tag.as_slice());
    assert_eq!(nonce.as_str(), URL_SAFE_NO_PAD.encode(tag));
    assert_eq!(nonce.len(), 43);
}

#[test]
fn nonces_differ_per_window_label_and_secret_and_decode_to_32_bytes() {
    let clock = clock_at(START);
    let a = source("as", &[&SECRET], &clock);
    let r = source("rs", &[&SECRET], &clock);
    let o = source("as", &[&OTHER_SECRET], &clock);
    let mut seen = HashSet::new();
    for _ in 0..200 {
        for nonce in [a.issue(), r.issue(), o.issue()] {
            assert_eq!(decode(nonce.as_str()).len(), 32);
            assert!(seen.insert(nonce.to_string()), "repeated nonce {nonce}");
        }
        clock.advance(Duration::minutes(1));
    }
    assert_eq!(seen.len(), 600);
}

#[test]
fn flipping_any_bit_of_the_secret_changes_the_nonce_unpredictably() {
    let clock = clock_at(START);
    let base = decode(source("as", &[&SECRET], &clock).issue().as_str());
    let mut seen = HashSet::new();
    let mut total_distance = 0u32;
    for bit in 0..256 {
        let mut flipped = SECRET;
        flipped[bit / 8] ^= 1 << (bit % 8);
        let other = decode(source("as", &[&flipped], &clock).issue().as_str());
        let distance: u32 = base
            .iter()
            .zip(&other)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        // A changed secret gives an unrelated value: about half of the 256 bits differ.
        assert!(
            (64..=192).contains(&distance),
            "bit {bit}: distance {distance}"
        );
        total_distance += distance;
        assert!(seen.insert(other), "bit {bit} repeated another nonce");
    }
    let mean = f64::from(total_distance) / 256.0;
    assert!((120.0..=136.0).contains(&mean), "mean distance {mean}");
}

#[test]
fn configuration_errors_are_typed() {
    let short = [9u8; 31];
    let err =
        |builder: dpop_nonce::derived::DerivedNonceSourceBuilder<_>| builder.build().unwrap_err();
    let base = || DerivedNonceSource::builder("as");

    assert_eq!(err(base()), ConfigError::NoSecret);
    assert_eq!(
        err(base().secret(SECRET).secret(short)),
        ConfigError::SecretTooShort {
            index: 1,
            len: 31,
            min: 32
        }
    );
    assert_eq!(
        err(base().secrets([SECRET; 4])),
        ConfigError::TooManySecrets { count: 4, max: 3 }
    );
    assert_eq!(
        err(DerivedNonceSource::builder("").secret(SECRET)),
        ConfigError::InvalidLabel {
            max: 1024,
            allowed: "any bytes"
        }
    );
    assert_eq!(
        err(DerivedNonceSource::builder("x".repeat(1025)).secret(SECRET)),
        ConfigError::InvalidLabel {
            max: 1024,
            allowed: "any bytes"
        }
    );
    assert_eq!(
        err(base().secret(SECRET).lead(Duration::seconds(-1))),
        ConfigError::LeadOutOfRange {
            max: Duration::minutes(5) / 2
        }
    );
    assert_eq!(
        err(base()
            .secret(SECRET)
            .rotation(Duration::seconds(10))
            .lead(Duration::seconds(6))),
        ConfigError::LeadOutOfRange {
            max: Duration::seconds(5)
        }
    );
    assert_eq!(
        err(base().secret(SECRET).rotation(Duration::ZERO)),
        ConfigError::NonPositiveRotation
    );

    // Limits themselves are accepted.
    let ok = base()
        .secrets([SECRET, OTHER_SECRET, [7u8; 32]])
        .rotation(Duration::seconds(10))
        .lead(Duration::seconds(5))
        .build()
        .unwrap();
    assert_eq!(ok.secret_count(), DerivedNonceSource::MAX_SECRETS);
    assert_eq!(ok.lead(), Duration::seconds(5));
    assert!(
        DerivedNonceSource::builder("x".repeat(1024))
            .secret(SECRET)
            .build()
            .is_ok()
    );

    // The default skew is 5 s, capped at half of a short interval.
    let default = base().secret(SECRET).build().unwrap();
    assert_eq!(default.lead(), DerivedNonceSource::DEFAULT_LEAD);
    assert_eq!(default.lead(), Duration::seconds(5));
    let short_interval = base()
        .secret(SECRET)
        .rotation(Duration::seconds(4))
        .build()
        .unwrap();
    assert_eq!(short_interval.lead(), Duration::seconds(2));
}

#[test]
fn debug_never_prints_secret_bytes() {
    let secret = *b"TOP-SECRET-KEY-MATERIAL-ABCDEFGHIJ";
    let builder = DerivedNonceSource::builder("as")
        .secret(secret)
        .clock(ManualClock::default());
    let builder_debug = format!("{builder:?}");
    let source = builder.build().unwrap();
    let source_debug = format!("{source:?} {source:#?}");
    let short_err = DerivedNonceSource::builder("as")
        .secret(&secret[..20])
        .build()
        .unwrap_err();
    let err_text = format!("{short_err:?} {short_err}");

    let as_list = format!("{:?}", &secret[..4]); // "[84, 79, 80, 45]"
    let as_hex: String = secret[..4].iter().map(|b| format!("{b:02x}")).collect();
    for text in [&builder_debug, &source_debug, &err_text] {
        assert!(!text.contains("TOP-SECRET"), "{text}");
        assert!(!text.contains(&as_list[1..as_list.len() - 1]), "{text}");
        assert!(!text.contains(&as_hex), "{text}");
    }
    assert!(source_debug.contains("secrets: 1"), "{source_debug}");
    assert!(source_debug.contains("\"as\""), "{source_debug}");
}

#[test]
fn malformed_and_wrong_length_claims_are_refused() {
    let clock = clock_at(START);
    let source = source("as", &[&SECRET], &clock);
    let nonce = source.issue();
    let text = nonce.as_str();
    assert_eq!(source.check(&text[..42]), NonceCheck::Unknown);
    assert_eq!(source.check(&format!("{text}A")), NonceCheck::Unknown);
    let mut altered = text.as_bytes().to_vec();
    altered[42] = if altered[42] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        source.check(std::str::from_utf8(&altered).unwrap()),
        NonceCheck::Unknown
    );
    assert_eq!(source.check(&"\u{e9}".repeat(21)), NonceCheck::Unknown);
    let validator = NonceValidator::new(&source);
    assert_eq!(
        validator.validate(Some("a b")).unwrap_err().reason(),
        RejectReason::Malformed
    );
}

#[test]
fn a_step_back_of_one_window_keeps_the_shared_nonces() {
    let clock = clock_at(START);
    let source = source("as", &[&SECRET], &clock);
    let first = source.issue();
    clock.advance(Duration::minutes(1));
    assert_eq!(source.check(first.as_str()), NonceCheck::Previous);
    clock.advance(-Duration::minutes(1));
    // One window back: that window's nonce was still accepted (as previous) anyway.
    assert_eq!(source.issue(), first);
    assert_eq!(source.check(first.as_str()), NonceCheck::Current);
}

#[test]
fn a_step_back_never_brings_back_a_nonce_of_a_window_already_left() {
    let replica = |clock: &Arc<ManualClock>| source("as", &[&SECRET], clock);
    let clock = clock_at(START);
    let source = replica(&clock);
    let first = source.issue();
    clock.advance(Duration::minutes(5));
    let later = source.issue();
    assert_eq!(source.check(first.as_str()), NonceCheck::Unknown);
    clock.advance(-Duration::minutes(5));
    // A replica that never saw the later time computes `first` again for this window; this one
    // has been past it and refuses it, and hands out a fresh nonce of its own instead.
    let other_clock = clock_at(START);
    let fresh_replica = replica(&other_clock);
    assert_eq!(fresh_replica.check(first.as_str()), NonceCheck::Current);
    assert_eq!(source.check(first.as_str()), NonceCheck::Unknown);
    assert_eq!(source.check(later.as_str()), NonceCheck::Unknown);
    let own = source.issue();
    assert_ne!(own, first);
    assert_eq!(source.check(own.as_str()), NonceCheck::Current);
    // Rotation goes on every interval: the next window has another fresh nonce, and the one
    // before is previous.
    clock.advance(Duration::minutes(1));
    assert_eq!(source.check(own.as_str()), NonceCheck::Previous);
    let next_own = source.issue();
    assert_ne!(next_own, own);
    // Once the clock is past the latest window seen, the shared nonces are back.
    clock.advance(Duration::minutes(5));
    assert_eq!(source.issue(), issued_at(&SECRET, START + 6 * 60));
    assert_eq!(source.check(later.as_str()), NonceCheck::Unknown);
}

#[test]
fn a_check_follows_a_clock_that_steps_back_at_once() {
    let clock = clock_at(START);
    let source = source("as", &[&SECRET], &clock);
    let earlier = source.issue();
    clock.advance(Duration::minutes(1));
    let later = source.issue();
    assert_ne!(earlier, later);
    clock.advance(-Duration::minutes(1));
    // Nothing issued since the step back: the check alone moves to the clock's window, where
    // the later nonce is the next window's, accepted only within the skew before its end.
    assert_eq!(source.check(earlier.as_str()), NonceCheck::Current);
    assert_eq!(source.check(later.as_str()), NonceCheck::Unknown);
    clock.advance(Duration::seconds(59));
    assert_eq!(source.check(later.as_str()), NonceCheck::Current);
    assert_eq!(source.check(earlier.as_str()), NonceCheck::Current);
}

#[test]
fn with_two_secrets_the_steady_part_accepts_current_and_previous_only() {
    let clock = clock_at(START + 10);
    let source = source("as", &[&SECRET, &OTHER_SECRET], &clock);
    let old_only = issued_at(&OTHER_SECRET, START + 10);
    let first_next = issued_at(&SECRET, START + 70);
    let other_next = issued_at(&OTHER_SECRET, START + 70);
    let other_previous = issued_at(&OTHER_SECRET, START - 50);
    // In the steady part of the window: the other secret's current and previous nonces are
    // accepted as previous; neither secret's next-window nonce is accepted.
    assert_eq!(source.check(old_only.as_str()), NonceCheck::Previous);
    assert_eq!(source.check(other_previous.as_str()), NonceCheck::Previous);
    assert_eq!(source.check(first_next.as_str()), NonceCheck::Unknown);
    assert_eq!(source.check(other_next.as_str()), NonceCheck::Unknown);
    // Within the skew before the end: both next-window nonces count.
    clock.advance(Duration::seconds(47));
    assert_eq!(source.check(first_next.as_str()), NonceCheck::Current);
    assert_eq!(source.check(other_next.as_str()), NonceCheck::Previous);
}

#[test]
fn concurrent_checks_across_rotations_accept_issued_nonces() {
    let clock = clock_at(START);
    let source = Arc::new(source("as", &[&SECRET], &clock));
    std::thread::scope(|scope| {
        for _ in 0..3 {
            let source = Arc::clone(&source);
            let clock = Arc::clone(&clock);
            scope.spawn(move || {
                let mut checked = 0;
                for _ in 0..5_000 {
                    let before = clock.unix_time();
                    let nonce = source.issue();
                    let verdict = source.check(nonce.as_str());
                    // Less than one interval passed between the two calls: a nonce issued a
                    // moment ago is at worst previous, never unknown.
                    if clock.unix_time() - before < Duration::minutes(1) {
                        assert!(verdict.is_accepted());
                        checked += 1;
                    }
                }
                assert!(checked > 0);
            });
        }
        for _ in 0..200 {
            clock.advance(Duration::seconds(13));
        }
    });
    assert!(source.check(source.issue().as_str()) == NonceCheck::Current);
}

#[test]
fn with_three_secrets_all_verify_and_only_the_first_is_current() {
    let third = [0x33u8; 32];
    let clock = clock_at(START + 57); // within the skew of the window's end
    let ahead = clock_at(START + 60); // a replica already in the next window
    let all = source("as", &[&SECRET, &OTHER_SECRET, &third], &clock);
    for (secret, expected) in [
        (&SECRET, NonceCheck::Current),
        (&OTHER_SECRET, NonceCheck::Previous),
        (&third, NonceCheck::Previous),
    ] {
        let now = source("as", &[secret], &clock).issue();
        let next = source("as", &[secret], &ahead).issue();
        assert_eq!(all.check(now.as_str()), expected);
        assert_eq!(all.check(next.as_str()), expected);
    }
    assert_eq!(
        all.check(source("as", &[&[0x44u8; 32]], &clock).issue().as_str()),
        NonceCheck::Unknown
    );
}

/// The nonce a one-secret source with `secret` and `rotation` issues in `window`.
fn nonce_of_window(secret: &[u8], rotation: Rotation, window: i64) -> Nonce {
    DerivedNonceSource::builder("stress")
        .secret(secret)
        .rotation(rotation.interval())
        .clock(ManualClock::at_unix(rotation.window_start(window)))
        .build()
        .expect("valid configuration")
        .issue()
}

#[test]
fn concurrent_checks_on_the_system_clock_never_accept_a_nonce_two_windows_ahead() {
    // A 200 µs rotation (skew 100 µs) makes real rotations race with checks on the real clock.
    let rotation = Rotation::new(Duration::microseconds(200)).unwrap();
    let source = Arc::new(
        DerivedNonceSource::builder("stress")
            .secret(SECRET)
            .rotation(rotation.interval())
            .build()
            .expect("valid configuration"),
    );
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let source = Arc::clone(&source);
            scope.spawn(move || {
                let validator = NonceValidator::new(&*source);
                for round in 0..3_000 {
                    let before = rotation.window_of(SystemClock.unix_time());
                    let far = nonce_of_window(&SECRET, rotation, before + 2);
                    let nonce = validator.issue();
                    let far_accepted = validator.validate(Some(far.as_str())).is_ok();
                    let issued_accepted = validator.validate(Some(nonce.as_str())).is_ok();
                    let after = rotation.window_of(SystemClock.unix_time());
                    // The nonce of window `before + 2` counts only from the skew before the end
                    // of `before + 1`, so the clock must have left `before` by then.
                    assert!(
                        !far_accepted || after > before,
                        "round {round}: window {} accepted in window {after}",
                        before + 2
                    );
                    // A nonce just issued is refused only if two windows went by.
                    assert!(issued_accepted || after >= before + 2, "round {round}");
                    let foreign = Nonce::generate();
                    assert!(validator.validate(Some(foreign.as_str())).is_err());
                }
            });
        }
    });
}
