//! The framework-free renderer: every answer at both roles, descriptions, CORS, nonces.

use dpop_nonce::render::header::{
    ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE, WWW_AUTHENTICATE,
};
use dpop_nonce::render::{Algs, Answer, ErrorDescription, ResponseParts, Role};
use dpop_nonce::{
    InMemoryNonceSource, Nonce, NonceValidator, RejectReason, RenderError, UseDpopNonce,
};

fn refused() -> UseDpopNonce {
    NonceValidator::new(InMemoryNonceSource::new())
        .validate(Some("stale"))
        .expect_err("an unknown nonce is refused")
}

fn api(algs: &[&str]) -> Role {
    Role::ResourceServer {
        algs: Algs::new(algs).expect("valid names"),
    }
}

fn description(text: &'static str) -> ErrorDescription {
    ErrorDescription::new(text).expect("valid description")
}

/// The header names, in order.
fn names(parts: &ResponseParts) -> Vec<&'static str> {
    parts.headers.iter().map(|(name, _)| *name).collect()
}

#[test]
fn authorization_server_answers_each_code_as_json() {
    let nonce = Nonce::parse("n-1").expect("valid");
    let cases = [
        (
            Answer::invalid_dpop_proof(),
            r#"{"error":"invalid_dpop_proof","error_description":"Invalid DPoP proof"}"#,
        ),
        (
            Answer::invalid_token(),
            r#"{"error":"invalid_token","error_description":"Invalid access token"}"#,
        ),
        (
            Answer::no_credentials(),
            r#"{"error":"invalid_dpop_proof","error_description":"DPoP proof required"}"#,
        ),
        (
            Answer::invalid_dpop_proof()
                .with_description(description("DPoP proof was already used")),
            r#"{"error":"invalid_dpop_proof","error_description":"DPoP proof was already used"}"#,
        ),
    ];
    for (answer, body) in cases {
        let parts = answer.to_parts(&Role::AuthorizationServer);
        assert_eq!(parts.status, 400);
        assert_eq!(parts.body, body);
        assert_eq!(names(&parts), [CONTENT_TYPE, CACHE_CONTROL]);
        assert_eq!(parts.header(CONTENT_TYPE), Some("application/json"));
        assert_eq!(parts.header(CACHE_CONTROL), Some("no-store"));

        let with_nonce = answer
            .with_nonce(nonce.clone())
            .to_parts(&Role::AuthorizationServer);
        assert_eq!(
            names(&with_nonce),
            [DPOP_NONCE, CONTENT_TYPE, CACHE_CONTROL]
        );
        assert_eq!(with_nonce.header(DPOP_NONCE), Some("n-1"));
        assert_eq!(with_nonce.body, body);
    }
}

#[test]
fn resource_server_answers_each_code_as_a_challenge() {
    let role = api(&["ES256", "EdDSA"]);
    let cases = [
        (
            Answer::invalid_dpop_proof(),
            r#"DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof", algs="ES256 EdDSA""#,
        ),
        (
            Answer::invalid_token(),
            r#"DPoP error="invalid_token", error_description="Invalid access token", algs="ES256 EdDSA""#,
        ),
        (Answer::no_credentials(), r#"DPoP algs="ES256 EdDSA""#),
    ];
    for (answer, challenge) in cases {
        let parts = answer.to_parts(&role);
        assert_eq!(parts.status, 401);
        assert_eq!(parts.header(WWW_AUTHENTICATE), Some(challenge));
        assert_eq!(names(&parts), [WWW_AUTHENTICATE, CACHE_CONTROL]);
        assert!(parts.body.is_empty());
    }
}

#[test]
fn empty_algs_leave_the_parameter_out() {
    let role = api(&[]);
    assert_eq!(
        Answer::no_credentials()
            .to_parts(&role)
            .header(WWW_AUTHENTICATE),
        Some("DPoP")
    );
    assert_eq!(
        Answer::invalid_token()
            .to_parts(&role)
            .header(WWW_AUTHENTICATE),
        Some(r#"DPoP error="invalid_token", error_description="Invalid access token""#)
    );
}

#[test]
fn bare_challenge_sends_no_error_information_even_with_a_description() {
    let parts = Answer::no_credentials()
        .with_description(description("Token required"))
        .to_parts(&api(&["ES256"]));
    assert_eq!(parts.header(WWW_AUTHENTICATE), Some(r#"DPoP algs="ES256""#));

    let at_as = Answer::no_credentials()
        .with_description(description("Token required"))
        .to_parts(&Role::AuthorizationServer);
    assert_eq!(
        at_as.body,
        r#"{"error":"invalid_dpop_proof","error_description":"Token required"}"#
    );
}

#[test]
fn use_dpop_nonce_always_carries_exactly_one_fresh_nonce() {
    let refusal = refused();
    let fresh = refusal.nonce().clone();
    assert_ne!(fresh.as_str(), "stale");
    let answer = Answer::from(refusal);
    assert_eq!(answer.nonce(), Some(&fresh));
    for role in [Role::AuthorizationServer, api(&["ES256"])] {
        let parts = answer.to_parts(&role);
        let nonces: Vec<_> = parts
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(DPOP_NONCE))
            .collect();
        assert_eq!(nonces.len(), 1, "{role:?}");
        assert_eq!(nonces[0].1, fresh.as_str());
        assert_eq!(parts.header(CACHE_CONTROL), Some("no-store"));
    }
}

#[test]
fn use_dpop_nonce_describes_the_reason() {
    let parts = Answer::from(refused()).to_parts(&Role::AuthorizationServer);
    assert_eq!(
        parts.body,
        r#"{"error":"use_dpop_nonce","error_description":"Authorization server does not accept this DPoP proof nonce; use the one in DPoP-Nonce"}"#
    );
    let malformed = NonceValidator::new(InMemoryNonceSource::new())
        .validate(Some("a b"))
        .expect_err("malformed");
    assert_eq!(malformed.reason(), RejectReason::Malformed);
    let parts = Answer::from(malformed).to_parts(&api(&[]));
    assert_eq!(
        parts.header(WWW_AUTHENTICATE),
        Some(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce""#
        )
    );
}

#[test]
fn with_nonce_replaces_the_nonce() {
    let other = Nonce::parse("other").expect("valid");
    let parts = Answer::from(refused())
        .with_nonce(other.clone())
        .to_parts(&api(&[]));
    assert_eq!(parts.header(DPOP_NONCE), Some("other"));
    assert_eq!(
        parts
            .headers
            .iter()
            .filter(|(name, _)| *name == DPOP_NONCE)
            .count(),
        1
    );
}

#[test]
fn cors_header_only_when_asked() {
    for role in [Role::AuthorizationServer, api(&["ES256"])] {
        let plain = Answer::invalid_token().to_parts(&role);
        assert_eq!(plain.header(ACCESS_CONTROL_EXPOSE_HEADERS), None);
        let exposed = Answer::invalid_token().expose_to_browsers().to_parts(&role);
        assert_eq!(
            exposed.header(ACCESS_CONTROL_EXPOSE_HEADERS),
            Some("DPoP-Nonce, WWW-Authenticate")
        );
        assert_eq!(exposed.headers.len(), plain.headers.len() + 1);
    }
}

#[test]
fn role_status_codes() {
    assert_eq!(Role::AuthorizationServer.status(), 400);
    assert_eq!(api(&[]).status(), 401);
}

#[test]
fn display_names_the_code_and_the_chosen_description() {
    assert_eq!(
        Answer::from(refused()).to_string(),
        "use_dpop_nonce (mismatch)"
    );
    assert_eq!(
        Answer::invalid_dpop_proof().to_string(),
        "invalid_dpop_proof"
    );
    assert_eq!(
        Answer::invalid_token()
            .with_description(description("Invalid DPoP key binding"))
            .to_string(),
        "invalid_token: Invalid DPoP key binding"
    );
    assert_eq!(Answer::no_credentials().to_string(), "no DPoP credentials");
}

// --- Error descriptions -------------------------------------------------------------------

#[test]
fn description_accepts_exactly_its_grammar() {
    for byte in 0u8..=0x7f {
        let text = char::from(byte).to_string();
        let allowed = byte == 0x20
            || byte == 0x21
            || (0x23..=0x5b).contains(&byte)
            || (0x5d..=0x7e).contains(&byte);
        assert_eq!(
            ErrorDescription::new(text).is_ok(),
            allowed,
            "byte {byte:#04x}"
        );
    }
    assert_eq!(
        ErrorDescription::new("ok é"),
        Err(RenderError::InvalidDescription { index: 3 })
    );
    assert_eq!(
        ErrorDescription::new(""),
        Err(RenderError::EmptyDescription)
    );
}

#[test]
fn description_length_is_capped() {
    let longest = "d".repeat(ErrorDescription::MAX_LEN);
    assert_eq!(
        ErrorDescription::new(longest.clone()).map(|d| d.as_str().len()),
        Ok(ErrorDescription::MAX_LEN)
    );
    let too_long = format!("{longest}d");
    assert_eq!(
        ErrorDescription::new(too_long),
        Err(RenderError::DescriptionTooLong {
            len: ErrorDescription::MAX_LEN + 1,
            max: ErrorDescription::MAX_LEN,
        })
    );
}

#[test]
fn lossy_description_replaces_and_truncates() {
    let repaired = ErrorDescription::lossy("bad \"quote\" \\ and\r\nX-Evil: 1").expect("not empty");
    assert_eq!(repaired.as_str(), "bad ?quote? ? and??X-Evil: 1");
    assert!(ErrorDescription::new(repaired.as_str().to_owned()).is_ok());

    // One `?` per character, not per byte.
    assert_eq!(
        ErrorDescription::lossy("nö 🙂")
            .expect("not empty")
            .as_str(),
        "n? ?"
    );

    let valid = "Resource server requires nonce in DPoP proof";
    assert_eq!(
        ErrorDescription::lossy(valid).expect("not empty").as_str(),
        valid
    );

    let long = "é".repeat(ErrorDescription::MAX_LEN * 2);
    let cut = ErrorDescription::lossy(&long).expect("not empty");
    assert_eq!(cut.as_str(), "?".repeat(ErrorDescription::MAX_LEN));
    assert!(ErrorDescription::new(cut.as_str().to_owned()).is_ok());

    assert_eq!(ErrorDescription::lossy(""), None);
}

#[test]
fn a_lossy_description_renders_without_breaking_out() {
    let hostile = ErrorDescription::lossy("x\", algs=\"none\"\r\nSet-Cookie: a=b").expect("text");
    let parts = Answer::invalid_token()
        .with_description(hostile)
        .to_parts(&api(&["ES256"]));
    let challenge = parts.header(WWW_AUTHENTICATE).expect("challenge");
    assert_eq!(
        challenge,
        r#"DPoP error="invalid_token", error_description="x?, algs=?none???Set-Cookie: a=b", algs="ES256""#
    );
    assert_eq!(challenge.matches('"').count(), 6);
}

#[test]
fn descriptions_convert_from_strings() {
    assert!(ErrorDescription::try_from("fine").is_ok());
    assert_eq!(
        ErrorDescription::try_from(String::from("a\"b")),
        Err(RenderError::InvalidDescription { index: 1 })
    );
}
