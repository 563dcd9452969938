//! Rendering the `use_dpop_nonce` answers with arbitrary nonces, `algs` and descriptions.
//!
//! Input layout: byte 0 picks the refusal (missing, mismatched or malformed claim); the rest is
//! split on `0xff` into the nonce the source hands out, the error description, and the `algs`
//! names (each converted to UTF-8 lossily).
//!
//! Invariants: `Algs` and `ErrorDescription` accept exactly their grammars; every rendered header
//! name and value is a valid `http` header name and value; exactly one `DPoP-Nonce`, equal to the
//! refusal's nonce; the authorization server's body is JSON with exactly the error code and the
//! description; the resource server's challenge carries exactly the error code, the description
//! and (when not empty) the `algs`.

#![no_main]

use dpop_nonce::response::{
    Algs, CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE, ErrorDescription, ResponseParts,
    WWW_AUTHENTICATE,
};
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

/// Common checks on any rendered answer; returns the headers by name.
fn check_parts(parts: &ResponseParts, status: u16, nonce: &Nonce) {
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
    assert_eq!(parts.header(DPOP_NONCE), Some(nonce.as_str()));
    assert_eq!(parts.header(CACHE_CONTROL), Some("no-store"));
}

fn check_authorization_server(parts: &ResponseParts, nonce: &Nonce, description: &str) {
    check_parts(parts, 400, nonce);
    assert_eq!(parts.header(CONTENT_TYPE), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&parts.body).expect("the body is JSON");
    let object = body.as_object().expect("the body is a JSON object");
    assert_eq!(object.len(), 2);
    assert_eq!(
        object.get("error").and_then(|v| v.as_str()),
        Some("use_dpop_nonce")
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

fn check_resource_server(parts: &ResponseParts, nonce: &Nonce, description: &str, algs: &str) {
    check_parts(parts, 401, nonce);
    assert!(parts.body.is_empty());
    let challenge = parts.header(WWW_AUTHENTICATE).expect("a challenge");
    let mut expected = vec![
        ("error", "use_dpop_nonce"),
        ("error_description", description),
    ];
    if !algs.is_empty() {
        expected.push(("algs", algs));
    }
    assert_eq!(challenge_params(challenge), expected);
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

    let description_valid = description.bytes().all(|b| b == b' ' || nqchar(b));
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

    let default_as = ErrorDescription::authorization_server(reason);
    check_authorization_server(&refused.authorization_server(), &nonce, default_as.as_str());
    let default_rs = ErrorDescription::resource_server(reason);
    check_resource_server(
        &refused.resource_server(&algs),
        &nonce,
        default_rs.as_str(),
        algs.as_str(),
    );
    if let Some(custom) = custom {
        check_authorization_server(
            &refused.authorization_server_with(&custom),
            &nonce,
            &description,
        );
        check_resource_server(
            &refused.resource_server_with(&algs, &custom),
            &nonce,
            &description,
            algs.as_str(),
        );
    }
});
