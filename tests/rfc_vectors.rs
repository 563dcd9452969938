//! RFC 9449 figures and the NQCHAR grammar, checked byte for byte.

use dpop_nonce::render::header::{CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE, WWW_AUTHENTICATE};
use dpop_nonce::render::{Algs, Answer, ErrorDescription, ResponseParts, Role};
use dpop_nonce::{
    Accepted, Nonce, NonceCheck, NonceError, NonceSource, NonceValidator, RejectReason,
};

/// The nonce of RFC 9449 Figures 20 and 24.
const FIGURE_NONCE: &str = "eyJ7S_zG.eyJH0-Z.HX4w-7v";
/// The nonce of RFC 9449 Figure 23.
const FIGURE_23_NONCE: &str = "eyJ7S_zG.eyJbYu3.xQmBj-1";

/// A source that hands out one fixed nonce: lets the tests feed the RFC's values through the
/// real validator and renderer. It takes `"previous"` for its previous nonce.
struct Fixed(Nonce);

impl NonceSource for Fixed {
    fn issue(&self) -> Nonce {
        self.0.clone()
    }

    fn check(&self, claim: &str) -> NonceCheck {
        if self.0 == claim {
            NonceCheck::Current
        } else if claim == "previous" {
            NonceCheck::Previous
        } else {
            NonceCheck::Unknown
        }
    }
    fn max_nonce_lifetime(&self) -> time::Duration {
        time::Duration::minutes(10)
    }
}

fn refusal_with(nonce: &str) -> dpop_nonce::UseDpopNonce {
    let validator = NonceValidator::new(Fixed(Nonce::parse(nonce).unwrap()));
    validator.validate(None).unwrap_err()
}

fn count(parts: &ResponseParts, name: &str) -> usize {
    parts
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .count()
}

/// TV1: RFC 9449 Figure 20, the authorization server's `use_dpop_nonce`.
#[test]
fn figure_20_authorization_server_answer() {
    let refused = refusal_with(FIGURE_NONCE);
    assert_eq!(refused.reason(), RejectReason::Missing);
    let answer = Answer::from(refused).to_parts(&Role::AuthorizationServer);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header(DPOP_NONCE), Some(FIGURE_NONCE));
    assert_eq!(answer.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(
        answer.body,
        r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#
    );
    assert_eq!(count(&answer, DPOP_NONCE), 1);
}

/// TV3: RFC 9449 Figure 23, a success response that moves the client to a newer nonce.
#[test]
fn figure_23_refresh_on_success() {
    let validator = NonceValidator::new(Fixed(Nonce::parse(FIGURE_23_NONCE).unwrap()));
    let accepted: Accepted = validator.validate(Some("previous")).unwrap();
    assert_eq!(
        accepted.refresh_headers(),
        [
            (DPOP_NONCE, FIGURE_23_NONCE.to_owned()),
            (CACHE_CONTROL, "no-store".to_owned())
        ]
    );
    let current = validator.validate(Some(FIGURE_23_NONCE)).unwrap();
    assert!(current.refresh_headers().is_empty());
}

/// TV4: RFC 9449 Figure 24, the resource server's `use_dpop_nonce`.
#[test]
fn figure_24_resource_server_answer() {
    let refused = refusal_with(FIGURE_NONCE);
    let role = Role::ResourceServer { algs: Algs::none() };
    let answer = Answer::from(refused).to_parts(&role);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header(WWW_AUTHENTICATE),
        Some(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
        )
    );
    assert_eq!(answer.header(DPOP_NONCE), Some(FIGURE_NONCE));
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(count(&answer, DPOP_NONCE), 1);
    assert!(answer.body.is_empty());
}

#[test]
fn resource_server_challenge_carries_algs_last() {
    let role = Role::ResourceServer {
        algs: Algs::new(["ES256", "PS256"]).unwrap(),
    };
    let answer = Answer::from(refusal_with(FIGURE_NONCE)).to_parts(&role);
    assert_eq!(
        answer.header(WWW_AUTHENTICATE),
        Some(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256 PS256""#
        )
    );
}

/// TV5: the bare challenge of RFC 9449 §7.1, sent when the request carried no credentials.
#[test]
fn tv5_bare_challenge_names_the_algorithms_only() {
    let role = Role::ResourceServer {
        algs: Algs::new(["ES256", "PS256"]).unwrap(),
    };
    let answer = Answer::no_credentials().to_parts(&role);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header(WWW_AUTHENTICATE),
        Some(r#"DPoP algs="ES256 PS256""#)
    );
    assert_eq!(answer.header(DPOP_NONCE), None);
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    assert!(answer.body.is_empty());
}

/// TV5: the `invalid_token` challenge of RFC 9449 §7.1 for a key binding that does not hold.
#[test]
fn tv5_invalid_token_challenge() {
    let role = Role::ResourceServer {
        algs: Algs::new(["ES256"]).unwrap(),
    };
    let answer = Answer::invalid_token()
        .with_description(ErrorDescription::new("Invalid DPoP key binding").unwrap())
        .to_parts(&role);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header(WWW_AUTHENTICATE),
        Some(
            r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#
        )
    );
    assert_eq!(answer.header(DPOP_NONCE), None);
}

#[test]
fn algs_and_descriptions_that_could_inject_are_refused() {
    for bad in [
        "",
        "ES 256",
        "ES256\"",
        "ES\\256",
        "ES256\r\nX-Evil: 1",
        "ÉS256",
    ] {
        assert!(
            Algs::new(["ES256", bad]).is_err(),
            "{bad:?} must be refused"
        );
    }
    for bad in ["a\"b", "a\\b", "line\nbreak", "tab\t", "é", "\u{7f}", ""] {
        assert!(
            ErrorDescription::new(bad).is_err(),
            "{bad:?} must be refused"
        );
    }
    assert!(ErrorDescription::new("spaces and [brackets] ~ are fine!").is_ok());
}

#[test]
fn default_descriptions_are_valid_for_every_reason_and_role() {
    let roles = [
        Role::AuthorizationServer,
        Role::ResourceServer { algs: Algs::none() },
    ];
    let validator = NonceValidator::new(Fixed(Nonce::parse(FIGURE_NONCE).unwrap()));
    let refusals = [
        (validator.validate(None), RejectReason::Missing),
        (validator.validate(Some("n-0")), RejectReason::Mismatch),
        (validator.validate(Some("a b")), RejectReason::Malformed),
    ];
    for (refused, reason) in refusals {
        let refused = refused.unwrap_err();
        assert_eq!(refused.reason(), reason);
        for role in &roles {
            let parts = Answer::from(refused.clone()).to_parts(role);
            let text = match role {
                Role::AuthorizationServer => parts
                    .body
                    .split(r#""error_description":""#)
                    .nth(1)
                    .and_then(|rest| rest.strip_suffix(r#""}"#))
                    .unwrap()
                    .to_owned(),
                _ => parts
                    .header(WWW_AUTHENTICATE)
                    .unwrap()
                    .split(r#"error_description=""#)
                    .nth(1)
                    .and_then(|rest| rest.strip_suffix('"'))
                    .unwrap()
                    .to_owned(),
            };
            assert!(ErrorDescription::new(text.clone()).is_ok(), "{text:?}");
        }
    }
}

#[test]
fn nqchar_edges_accepted() {
    for good in [
        "eyJ7S_zG.eyJH0-Z.HX4w-7v",
        "eyJ7S_zG.eyJbYu3.xQmBj-1",
        "!",
        "[",
        "~",
        "#",
        "]",
        "^_`{|}",
    ] {
        let nonce = Nonce::parse(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        assert_eq!(nonce.as_str(), good);
    }
    let longest = "a".repeat(Nonce::MAX_LEN);
    assert_eq!(Nonce::parse(&longest).unwrap().len(), Nonce::MAX_LEN);
}

#[test]
fn nqchar_edges_refused() {
    assert_eq!(Nonce::parse(""), Err(NonceError::Empty));
    assert_eq!(
        Nonce::parse("a b"),
        Err(NonceError::InvalidChar { index: 1 })
    );
    assert_eq!(
        Nonce::parse("a\"b"),
        Err(NonceError::InvalidChar { index: 1 })
    );
    assert_eq!(
        Nonce::parse("a\\b"),
        Err(NonceError::InvalidChar { index: 1 })
    );
    assert_eq!(
        Nonce::parse("nönce"),
        Err(NonceError::InvalidChar { index: 1 })
    );
    assert_eq!(
        Nonce::parse("\u{7f}"),
        Err(NonceError::InvalidChar { index: 0 })
    );
    assert_eq!(
        Nonce::parse("ab\0"),
        Err(NonceError::InvalidChar { index: 2 })
    );
    assert_eq!(Nonce::parse(" "), Err(NonceError::InvalidChar { index: 0 }));
    let too_long = "a".repeat(Nonce::MAX_LEN + 1);
    assert_eq!(
        Nonce::parse(&too_long),
        Err(NonceError::TooLong {
            len: Nonce::MAX_LEN + 1,
            max: Nonce::MAX_LEN
        })
    );
}

#[test]
fn every_byte_value_is_classified_as_the_grammar_says() {
    for byte in 0u8..=255 {
        let expected =
            byte == 0x21 || (0x23..=0x5b).contains(&byte) || (0x5d..=0x7e).contains(&byte);
        if byte.is_ascii() {
            let text = char::from(byte).to_string();
            assert_eq!(Nonce::parse(&text).is_ok(), expected, "byte {byte:#04x}");
        }
    }
}

#[test]
fn generated_nonces_are_256_bit_base64url() {
    use std::collections::HashSet;
    let mut seen = HashSet::new();
    for _ in 0..1_000 {
        let nonce = Nonce::generate();
        assert_eq!(nonce.len(), Nonce::GENERATED_LEN);
        assert!(
            nonce
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{nonce:?} is not unpadded base64url"
        );
        assert!(Nonce::parse(nonce.as_str()).is_ok());
        assert!(seen.insert(nonce.to_string()), "a nonce repeated");
    }
}

#[test]
fn malformed_claims_get_the_malformed_reason() {
    let validator = NonceValidator::new(Fixed(Nonce::parse("eyJ7S_zG.eyJH0-Z.HX4w-7v").unwrap()));
    let huge = "a".repeat(1 << 20);
    for claim in ["", "a b", "a\"b", "a\\b", "nönce", "\u{7f}", huge.as_str()] {
        let refused = validator.validate(Some(claim)).unwrap_err();
        assert_eq!(refused.reason(), RejectReason::Malformed, "claim {claim:?}");
        assert_ne!(refused.nonce().as_str(), claim);
    }
    let refused = validator
        .validate(Some("eyJ7S_zG.eyJH0-Z.HX4w-7w"))
        .unwrap_err();
    assert_eq!(refused.reason(), RejectReason::Mismatch);
}
