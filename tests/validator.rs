//! The validator's outcomes: downgrade rule, optional endpoints, fresh nonces, mocked sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dpop_nonce::{
    InMemoryNonceSource, ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator, RejectReason,
    Requirement,
};
use time::Duration;

fn manual_source() -> (Arc<ManualClock>, InMemoryNonceSource<Arc<ManualClock>>) {
    let clock = Arc::new(ManualClock::at_unix(Duration::days(20_000)));
    let source = InMemoryNonceSource::builder()
        .rotation(Duration::minutes(1))
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    (clock, source)
}

#[test]
fn a_missing_claim_is_refused_when_required() {
    // RFC 9449 §11.3: once nonces are handed out, a proof without one is a downgrade.
    let (_, source) = manual_source();
    let validator = NonceValidator::new(&source);
    assert_eq!(validator.requirement(), Requirement::Required);
    let refused = validator.validate(None).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Missing);
    assert_eq!(source.check(refused.nonce().as_str()), NonceCheck::Current);

    // Even after the client has successfully used a nonce.
    assert!(validator.validate(Some(refused.nonce().as_str())).is_ok());
    assert_eq!(
        validator.validate(None).unwrap_err().reason(),
        RejectReason::Missing
    );
}

#[test]
fn optional_endpoints_accept_a_missing_claim_but_check_a_present_one() {
    let (_, source) = manual_source();
    let validator = NonceValidator::new(&source).with_requirement(Requirement::Optional);
    let accepted = validator.validate(None).unwrap();
    let offered = accepted
        .refresh()
        .expect("a missing claim is answered with a nonce");
    assert_eq!(source.check(offered.as_str()), NonceCheck::Current);

    assert!(
        validator
            .validate(Some(offered.as_str()))
            .unwrap()
            .refresh()
            .is_none()
    );
    let refused = validator.validate(Some("not-a-nonce-of-ours")).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
    let refused = validator.validate(Some("bad nonce")).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Malformed);
    let refused = validator.validate(Some("")).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Malformed);
}

#[test]
fn the_fresh_nonce_never_equals_the_refused_claim() {
    let (clock, source) = manual_source();
    let validator = NonceValidator::new(&source);
    let mut stale = Vec::new();
    for step in 0..50 {
        stale.push(validator.issue());
        clock.advance(Duration::seconds(37));
        for claim in &stale {
            match validator.validate(Some(claim.as_str())) {
                Ok(_) => {}
                Err(refused) => {
                    assert_ne!(refused.nonce(), claim, "step {step}");
                    assert!(validator.validate(Some(refused.nonce().as_str())).is_ok());
                }
            }
        }
    }
}

/// A deliberately broken source that refuses everything yet hands out the refused value.
struct Echo {
    issued: Nonce,
    issues: AtomicUsize,
}

impl NonceSource for Echo {
    fn issue(&self) -> Nonce {
        self.issues.fetch_add(1, Ordering::Relaxed);
        self.issued.clone()
    }

    fn check(&self, _claim: &str) -> NonceCheck {
        NonceCheck::Unknown
    }
    fn max_nonce_lifetime(&self) -> time::Duration {
        time::Duration::minutes(10)
    }
}

#[test]
fn even_a_broken_source_never_gets_its_claim_echoed() {
    let echo = Echo {
        issued: Nonce::parse("same-value").unwrap(),
        issues: AtomicUsize::new(0),
    };
    let validator = NonceValidator::new(&echo);
    let refused = validator.validate(Some("same-value")).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
    assert_ne!(refused.nonce().as_str(), "same-value");
    assert_eq!(
        echo.issues.load(Ordering::Relaxed),
        2,
        "asked once more first"
    );
}

/// A hand-written test double, as a user's unit test would write it.
#[derive(Default)]
struct Scripted {
    checks: parking_lot::Mutex<Vec<String>>,
}

impl NonceSource for Scripted {
    fn issue(&self) -> Nonce {
        Nonce::parse("current").unwrap()
    }

    fn check(&self, claim: &str) -> NonceCheck {
        self.checks.lock().push(claim.to_owned());
        match claim {
            "current" => NonceCheck::Current,
            "previous" => NonceCheck::Previous,
            _ => NonceCheck::Unknown,
        }
    }
    fn max_nonce_lifetime(&self) -> time::Duration {
        time::Duration::minutes(10)
    }
}

#[test]
fn a_mocked_source_drives_every_outcome() {
    let mock = Arc::new(Scripted::default());
    // Works through Arc, and as a trait object.
    let boxed: Box<dyn NonceSource> = Box::new(Arc::clone(&mock));
    let validator = NonceValidator::new(boxed);

    assert_eq!(validator.validate(Some("current")).unwrap().refresh(), None);
    let refreshed = validator.validate(Some("previous")).unwrap();
    assert_eq!(refreshed.refresh().map(Nonce::as_str), Some("current"));
    let refused = validator.validate(Some("other")).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
    assert_eq!(refused.nonce().as_str(), "current");
    assert_eq!(refused.to_string(), "use_dpop_nonce (mismatch)");

    // Over-long claims never reach the source.
    let huge = "a".repeat(Nonce::MAX_LEN + 1);
    assert_eq!(
        validator.validate(Some(&huge)).unwrap_err().reason(),
        RejectReason::Malformed
    );
    assert_eq!(
        *mock.checks.lock(),
        vec![
            "current".to_owned(),
            "previous".to_owned(),
            "other".to_owned()
        ]
    );
}

#[test]
fn every_kind_of_source_handle_works() {
    fn accepts<S: NonceSource>(validator: NonceValidator<S>) {
        let nonce = validator.issue();
        assert!(validator.validate(Some(nonce.as_str())).is_ok());
    }
    let (_, source) = manual_source();
    accepts(NonceValidator::new(&source));
    let shared: Arc<dyn NonceSource> = Arc::new(source);
    accepts(NonceValidator::new(Arc::clone(&shared)));
    accepts(NonceValidator::new(
        Box::new(InMemoryNonceSource::new()) as Box<dyn NonceSource>
    ));
}

#[test]
fn outcomes_are_send_sync_and_reasons_have_stable_names() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<NonceValidator<InMemoryNonceSource>>();
    is_send_sync::<dpop_nonce::UseDpopNonce>();
    is_send_sync::<dpop_nonce::Accepted>();
    is_send_sync::<Box<dyn NonceSource>>();
    assert_eq!(RejectReason::Missing.as_str(), "missing");
    assert_eq!(RejectReason::Mismatch.to_string(), "mismatch");
    assert_eq!(RejectReason::Malformed.as_str(), "malformed");
}

#[test]
fn a_claim_of_nul_bytes_never_matches_an_empty_previous_slot() {
    // A fresh source has no previous nonce yet. A claim with the length of a generated nonce
    // but made of NUL bytes must not be mistaken for that empty slot.
    let nul = "\0".repeat(Nonce::GENERATED_LEN);
    let (_, source) = manual_source();
    assert_eq!(source.check(&nul), NonceCheck::Unknown);
    let refused = NonceValidator::new(&source)
        .validate(Some(&nul))
        .unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Malformed);

    let mut almost = vec![0u8; Nonce::GENERATED_LEN];
    almost[Nonce::GENERATED_LEN - 1] = b'A';
    let almost = String::from_utf8(almost).unwrap();
    assert_eq!(source.check(&almost), NonceCheck::Unknown);
}
