//! Rendering every DPoP answer with arbitrary nonces, `algs` and descriptions.
//!
//! Input layout: byte 0 picks the refusal (missing, mismatched or malformed claim); the rest is
//! split on `0xff` into the nonce the source hands out, the error description, and the `algs`
//! names (each converted to UTF-8 lossily).
//!
//! Invariants: `Algs` and `ErrorDescription::new` accept exactly their grammars, and
//! `ErrorDescription::lossy` always yields text `new` accepts; every rendered header name and
//! value is a valid `http` header name and value; exactly one `DPoP-Nonce` when the answer has a
//! nonce, equal to it, none otherwise; `Cache-Control: no-store`; the authorization server's body
//! is JSON with exactly the error code and the description; the resource server's challenge
//! carries exactly the error code, the description and (when not empty) the `algs`, or only the
//! `algs` for a request without credentials.

#![no_main]

use dpop_nonce::render::header::{CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE, WWW_AUTHENTICATE};
use dpop_nonce::render::{Algs, Answer, ErrorDescription, ResponseParts, Role};
use dpop_nonce::{Nonce, NonceCheck, NonceSource, NonceValidator, RejectReason};
use libfuzzer_sys::fuzz_target;

fn nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// A source that hands out one fixed nonce and knows no claim.
struct Fixed(Nonce);

impl NonceSource for Fixed {
    fn issue(&self) -> Nonce {
        self.0.clone()
    }
    fn check(&self, _claim: &str) -> NonceCheck {
        NonceCheck::Unknown
    }
    fn max_nonce_lifetime(&self) -> time::Duration {
        time::Duration::minutes(10)
    }
}

/// Common checks on any rendered answer.
fn check_parts(parts: &ResponseParts, status: u16, nonce: Option<&Nonce>) {
    assert_eq!(parts.status, status);
    assert!(http::StatusCode::from_u16(parts.status).is_ok());
    for (name, value) in &parts.headers {
        http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        http::HeaderValue::from_str(value).expect("a valid header value");
        assert_eq!(
            parts
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count(),
            1,
            "header {name} appears once"
        );
    }
    assert_eq!(parts.header(DPOP_NONCE), nonce.map(Nonce::as_str));
    assert_eq!(parts.header(CACHE_CONTROL), Some("no-store"));
}

fn check_authorization_server(
    parts: &ResponseParts,
    nonce: Option<&Nonce>,
    code: &str,
    description: &str,
) {
    check_parts(parts, 400, nonce);
    assert_eq!(parts.header(CONTENT_TYPE), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&parts.body).expect("the body is JSON");
    let object = body.as_object().expect("the body is a JSON object");
    assert_eq!(object.len(), 2);
    assert_eq!(
        object.get("error").and_then(|v| v.as_str()),
        Some(code)
    );
    assert_eq!(
        object.get("error_description").and_then(|v| v.as_str()),
        Some(description)
    );
}

/// Parses `DPoP k="v", k="v"` (values hold no `"` or `\`, which the types guarantee).
fn challenge_params(value: &str) -> Vec<(&str, &str)> {
    let rest = value.strip_prefix("DPoP ").expect("the DPoP scheme");
    let mut params = Vec::new();
    let mut rest = rest;
    loop {
        let (key, after) = rest.split_once("=\"").expect("a quoted parameter");
        let (val, after) = after.split_once('"').expect("a closing quote");
        params.push((key, val));
        match after.strip_prefix(", ") {
            Some(next) => rest = next,
            None => {
                assert!(
                    after.is_empty(),
                    "nothing after the last parameter: {after:?}"
                );
                return params;
            }
        }
    }
}

/// `error` is `None` for the bare challenge.
fn check_resource_server(
    parts: &ResponseParts,
    nonce: Option<&Nonce>,
    error: Option<(&str, &str)>,
    algs: &str,
) {
    check_parts(parts, 401, nonce);
    assert!(parts.body.is_empty());
    let challenge = parts.header(WWW_AUTHENTICATE).expect("a challenge");
    let mut expected = Vec::new();
    if let Some((code, description)) = error {
        expected.push(("error", code));
        expected.push(("error_description", description));
    }
    if !algs.is_empty() {
        expected.push(("algs", algs));
    }
    if expected.is_empty() {
        assert_eq!(challenge, "DPoP");
    } else {
        assert_eq!(challenge_params(challenge), expected);
    }
}

/// The `error_description` of an authorization server's JSON body.
fn json_description(parts: &ResponseParts) -> String {
    let body: serde_json::Value = serde_json::from_str(&parts.body).expect("the body is JSON");
    body["error_description"]
        .as_str()
        .expect("a description")
        .to_owned()
}

fuzz_target!(|data: &[u8]| {
    let selector = data.first().copied().unwrap_or(0);
    let mut fields = data.get(1..).unwrap_or_default().split(|&b| b == 0xff);
    let mut next = || {
        fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let nonce_text = next().unwrap_or_default();
    let description = next().unwrap_or_default();
    let names: Vec<String> = std::iter::from_fn(next).collect();

    let nonce = Nonce::parse(&nonce_text).unwrap_or_else(|_| Nonce::generate());
    let validator = NonceValidator::new(Fixed(nonce.clone()));
    let refused = match selector % 3 {
        0 => validator.validate(None),
        1 => validator.validate(Some("n-0")),
        _ => validator.validate(Some("a b")),
    }
    .expect_err("the fixed source accepts nothing");
    let reason = refused.reason();
    assert!(matches!(
        reason,
        RejectReason::Missing | RejectReason::Mismatch | RejectReason::Malformed
    ));
    // "n-0" and "a b" could be the fixed nonce only for "n-0"; then the validator must hand out
    // a different one.
    let nonce = refused.nonce().clone();

    let algs_valid = names.iter().all(|n| !n.is_empty() && n.bytes().all(nqchar));
    let algs = match Algs::new(&names) {
        Ok(algs) => {
            assert!(algs_valid, "accepted bad algs {names:?}");
            assert_eq!(algs.as_str(), names.join(" "));
            algs
        }
        Err(_) => {
            assert!(!algs_valid, "refused good algs {names:?}");
            Algs::none()
        }
    };

    let description_valid = !description.is_empty()
        && description.len() <= ErrorDescription::MAX_LEN
        && description.bytes().all(|b| b == b' ' || nqchar(b));
    let custom = match ErrorDescription::new(description.clone()) {
        Ok(custom) => {
            assert!(
                description_valid,
                "accepted a bad description {description:?}"
            );
            assert_eq!(custom.as_str(), description);
            Some(custom)
        }
        Err(_) => {
            assert!(
                !description_valid,
                "refused a good description {description:?}"
            );
            None
        }
    };
    let lossy = ErrorDescription::lossy(&description);
    match &lossy {
        Some(repaired) => {
            assert!(ErrorDescription::new(repaired.as_str().to_owned()).is_ok());
            if description_valid {
                assert_eq!(repaired.as_str(), description);
            }
        }
        None => assert!(description.is_empty()),
    }

    let as_role = Role::AuthorizationServer;
    let rs_role = Role::ResourceServer { algs: algs.clone() };
    let algs = algs.as_str();

    // use_dpop_nonce with the default description, then with the caller's.
    let answer = Answer::from(refused);
    let parts = answer.to_parts(&as_role);
    let default_as = json_description(&parts);
    assert!(ErrorDescription::new(default_as.clone()).is_ok());
    check_authorization_server(&parts, Some(&nonce), "use_dpop_nonce", &default_as);
    let parts = answer.to_parts(&rs_role);
    let default_rs = challenge_params(parts.header(WWW_AUTHENTICATE).expect("a challenge"))
        .into_iter()
        .find(|(key, _)| *key == "error_description")
        .map(|(_, value)| value.to_owned())
        .expect("a description");
    assert!(ErrorDescription::new(default_rs.clone()).is_ok());
    check_resource_server(
        &parts,
        Some(&nonce),
        Some(("use_dpop_nonce", &default_rs)),
        algs,
    );

    for described in [custom, lossy].into_iter().flatten() {
        let text = described.as_str().to_owned();
        let answer = answer.clone().with_description(described.clone());
        check_authorization_server(
            &answer.to_parts(&as_role),
            Some(&nonce),
            "use_dpop_nonce",
            &text,
        );
        check_resource_server(
            &answer.to_parts(&rs_role),
            Some(&nonce),
            Some(("use_dpop_nonce", &text)),
            algs,
        );

        // The other answers, without and with a nonce.
        for with_nonce in [None, Some(&nonce)] {
            let add = |answer: Answer| match with_nonce {
                Some(nonce) => answer.with_nonce(nonce.clone()),
                None => answer,
            };
            for (answer, code) in [
                (Answer::invalid_dpop_proof(), "invalid_dpop_proof"),
                (Answer::invalid_token(), "invalid_token"),
            ] {
                let answer = add(answer.with_description(described.clone()));
                check_authorization_server(&answer.to_parts(&as_role), with_nonce, code, &text);
                check_resource_server(
                    &answer.to_parts(&rs_role),
                    with_nonce,
                    Some((code, &text)),
                    algs,
                );
            }
            let bare = add(Answer::no_credentials().with_description(described.clone()));
            check_authorization_server(
                &bare.to_parts(&as_role),
                with_nonce,
                "invalid_dpop_proof",
                &text,
            );
            check_resource_server(&bare.to_parts(&rs_role), with_nonce, None, algs);
        }
    }
});
