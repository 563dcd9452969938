//! The `client` feature: recognising `use_dpop_nonce` answers, the loop guard, and the nonce
//! store.

use std::sync::Arc;

use dpop_nonce::client::{
    NonceAdvice, NonceHeaderError, NonceStore, Origin, OriginError, check_response,
};
use dpop_nonce::render::{Algs, Answer, Role};
use dpop_nonce::{InMemoryNonceSource, Nonce, NonceError, NonceValidator};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use proptest::prelude::*;

const FIGURE_NONCE: &str = "eyJ7S_zG.eyJH0-Z.HX4w-7v";
const FIGURE_20_BODY: &[u8] = br#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#;
const FIGURE_24_CHALLENGE: &str = r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#;

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("valid name");
        map.append(name, HeaderValue::from_bytes(value).expect("valid value"));
    }
    map
}

fn challenge_401(challenges: &[&str], nonce: &str) -> HeaderMap {
    let mut pairs: Vec<(&str, &[u8])> = challenges
        .iter()
        .map(|c| ("www-authenticate", c.as_bytes()))
        .collect();
    pairs.push(("dpop-nonce", nonce.as_bytes()));
    headers(&pairs)
}

fn advice_401(challenges: &[&str], sent: Option<&str>) -> NonceAdvice {
    let headers = challenge_401(challenges, FIGURE_NONCE);
    check_response(StatusCode::UNAUTHORIZED, &headers, b"", sent)
}

fn retries_with(advice: &NonceAdvice, nonce: &str) -> bool {
    advice.retry_nonce().is_some_and(|n| n == nonce)
}

fn origin(uri: &str) -> Origin {
    Origin::from_uri(&uri.parse().expect("valid URI")).expect("absolute URI")
}

fn nonce(value: &str) -> Nonce {
    Nonce::parse(value).expect("valid nonce")
}

// --- Recognising the answers --------------------------------------------------------------

#[test]
fn figure_20_authorization_server_answer_is_retried() {
    let headers = headers(&[
        ("dpop-nonce", FIGURE_NONCE.as_bytes()),
        ("content-type", b"application/json"),
    ]);
    let advice = check_response(StatusCode::BAD_REQUEST, &headers, FIGURE_20_BODY, None);
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
    assert!(advice.should_retry());
}

#[test]
fn figure_24_resource_server_answer_is_retried() {
    let advice = advice_401(&[FIGURE_24_CHALLENGE], None);
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
}

#[test]
fn lowercase_and_uppercase_scheme() {
    for scheme in ["dpop", "DPOP", "dPoP"] {
        let challenge = format!(r#"{scheme} error="use_dpop_nonce""#);
        assert!(
            retries_with(&advice_401(&[&challenge], None), FIGURE_NONCE),
            "{scheme}"
        );
    }
}

#[test]
fn several_challenges_in_one_header() {
    let advice = advice_401(&[r#"Bearer realm="x", DPoP error="use_dpop_nonce""#], None);
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");

    let advice = advice_401(
        &[r#"Basic YWxhZGRpbg==, DPoP algs="ES256 PS256", error="use_dpop_nonce", Bearer"#],
        None,
    );
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
}

#[test]
fn challenges_in_several_headers() {
    let advice = advice_401(&[r#"Bearer realm="x""#, FIGURE_24_CHALLENGE], None);
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
}

#[test]
fn unquoted_and_escaped_error_values() {
    assert!(retries_with(
        &advice_401(&["DPoP error=use_dpop_nonce"], None),
        FIGURE_NONCE
    ));
    let escaped = r#"DPoP error="use\_dpop\_nonce", error_description="say \"nonce\"""#;
    assert!(retries_with(&advice_401(&[escaped], None), FIGURE_NONCE));
}

#[test]
fn several_dpop_challenges_are_ambiguous() {
    let one_header = advice_401(&[r#"DPoP error="use_dpop_nonce", DPoP algs="ES256""#], None);
    assert_eq!(one_header, NonceAdvice::AmbiguousChallenge);
    let two_headers = advice_401(&[FIGURE_24_CHALLENGE, FIGURE_24_CHALLENGE], None);
    assert_eq!(two_headers, NonceAdvice::AmbiguousChallenge);
}

#[test]
fn other_errors_are_not_nonce_answers() {
    let cases: [&[&str]; 4] = [
        &[
            r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#,
        ],
        &[r#"DPoP algs="ES256 PS256""#],
        &[r#"Bearer error="use_dpop_nonce""#],
        &[],
    ];
    for challenges in cases {
        assert_eq!(
            advice_401(challenges, None),
            NonceAdvice::NotUseDpopNonce,
            "{challenges:?}"
        );
    }
    // A parameter whose *name* differs is not the error.
    assert_eq!(
        advice_401(&[r#"DPoP error_description="use_dpop_nonce""#], None),
        NonceAdvice::NotUseDpopNonce
    );
}

#[test]
fn status_must_match_the_form() {
    let json = headers(&[("dpop-nonce", FIGURE_NONCE.as_bytes())]);
    for status in [
        StatusCode::OK,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    ] {
        assert_eq!(
            check_response(status, &json, FIGURE_20_BODY, None),
            NonceAdvice::NotUseDpopNonce,
            "{status}"
        );
    }
    let challenge = challenge_401(&[FIGURE_24_CHALLENGE], FIGURE_NONCE);
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::FORBIDDEN,
        StatusCode::OK,
    ] {
        assert_eq!(
            check_response(status, &challenge, b"", None),
            NonceAdvice::NotUseDpopNonce,
            "{status}"
        );
    }
}

#[test]
fn json_bodies_that_are_not_the_answer() {
    let nonce_only = headers(&[("dpop-nonce", FIGURE_NONCE.as_bytes())]);
    let bodies: [&[u8]; 7] = [
        br#"{"error":"invalid_dpop_proof"}"#,
        br#"{"error":["use_dpop_nonce"]}"#,
        br#"["use_dpop_nonce"]"#,
        br#""use_dpop_nonce""#,
        br#"{"error":"use_dpop_nonce""#,
        b"error=use_dpop_nonce",
        b"\xff\xfe{}",
    ];
    for body in bodies {
        assert_eq!(
            check_response(StatusCode::BAD_REQUEST, &nonce_only, body, None),
            NonceAdvice::NotUseDpopNonce,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn same_nonce_is_not_retried() {
    let advice = advice_401(&[FIGURE_24_CHALLENGE], Some(FIGURE_NONCE));
    assert_eq!(
        advice,
        NonceAdvice::SameNonce {
            nonce: nonce(FIGURE_NONCE)
        }
    );
    assert!(!advice.should_retry());

    let headers = headers(&[("dpop-nonce", FIGURE_NONCE.as_bytes())]);
    let advice = check_response(
        StatusCode::BAD_REQUEST,
        &headers,
        FIGURE_20_BODY,
        Some(FIGURE_NONCE),
    );
    assert!(matches!(advice, NonceAdvice::SameNonce { .. }));

    // A different nonce sent before: retry.
    assert!(advice_401(&[FIGURE_24_CHALLENGE], Some("older")).should_retry());
}

#[test]
fn unusable_dpop_nonce_headers() {
    let body = FIGURE_20_BODY;
    let check = |headers: &HeaderMap| check_response(StatusCode::BAD_REQUEST, headers, body, None);

    assert_eq!(
        check(&HeaderMap::new()),
        NonceAdvice::UnusableNonce {
            error: NonceHeaderError::Missing
        }
    );
    assert_eq!(
        check(&headers(&[("dpop-nonce", b"n-1"), ("DPoP-Nonce", b"n-2")])),
        NonceAdvice::UnusableNonce {
            error: NonceHeaderError::Several { count: 2 }
        }
    );
    for bad in [&b"a b"[..], b"a\"b", b"a\\b", b"n\xc3\xb6nce", b"\xff", b""] {
        let advice = check(&headers(&[("dpop-nonce", bad)]));
        assert!(
            matches!(
                advice,
                NonceAdvice::UnusableNonce {
                    error: NonceHeaderError::Invalid(_)
                }
            ),
            "{bad:?}: {advice:?}"
        );
    }
    let huge = vec![b'a'; Nonce::MAX_LEN + 1];
    assert_eq!(
        check(&headers(&[("dpop-nonce", &huge)])),
        NonceAdvice::UnusableNonce {
            error: NonceHeaderError::Invalid(NonceError::TooLong {
                len: Nonce::MAX_LEN + 1,
                max: Nonce::MAX_LEN
            })
        }
    );
}

/// [`check_response`] on the parts of a whole `http::Response`.
fn check_whole<B: AsRef<[u8]>>(response: &Response<B>, sent: Option<&str>) -> NonceAdvice {
    check_response(
        response.status(),
        response.headers(),
        response.body().as_ref(),
        sent,
    )
}

#[test]
fn answers_rendered_by_this_crate_are_recognised() {
    let validator = NonceValidator::new(InMemoryNonceSource::new());
    let refused = validator
        .validate(Some("stale"))
        .expect_err("unknown nonce");
    let fresh = refused.nonce().as_str();

    let as_answer = Answer::from(refused.clone()).to_http_response(&Role::AuthorizationServer);
    let body = as_answer.body().clone().into_bytes();
    let as_answer = as_answer.map(|_| body);
    assert!(retries_with(&check_whole(&as_answer, Some("stale")), fresh));

    let rs_answer = Answer::from(refused.clone()).to_http_response(&Role::ResourceServer {
        algs: Algs::new(["ES256"]).expect("valid"),
    });
    assert!(retries_with(&check_whole(&rs_answer, Some("stale")), fresh));
}

// --- Hostile input ------------------------------------------------------------------------

#[test]
fn hostile_headers_do_not_panic() {
    let huge_quoted = format!("DPoP error=\"{}", "\\\"".repeat(200_000));
    let huge_params = format!("DPoP {}", "a=b, ".repeat(100_000));
    let huge_commas = ",".repeat(500_000);
    let values: Vec<Vec<u8>> = vec![
        b"DPoP error=\"use_dpop_nonce".to_vec(),
        b"DPoP error=\"use_dpop_nonce\\".to_vec(),
        b"DPoP error=use_dpop_nonce\"".to_vec(),
        b"DPoP error==use_dpop_nonce".to_vec(),
        b"DPoP =\"x\"".to_vec(),
        b"\"DPoP\" error=\"use_dpop_nonce\"".to_vec(),
        b"DPoP error=\"\xff\xfe\"".to_vec(),
        b"\xffDPoP error=\"use_dpop_nonce\"".to_vec(),
        b"DPoP\terror=\"use_dpop_nonce\"".to_vec(),
        huge_quoted.into_bytes(),
        huge_params.into_bytes(),
        huge_commas.into_bytes(),
    ];
    for value in &values {
        let headers = headers(&[("www-authenticate", value), ("dpop-nonce", b"n-1")]);
        let advice = check_response(StatusCode::UNAUTHORIZED, &headers, b"", None);
        // Only a tab after the scheme is valid (1*SP is strict, but OWS is accepted).
        assert!(
            matches!(
                advice,
                NonceAdvice::NotUseDpopNonce | NonceAdvice::Retry { .. }
            ),
            "{advice:?}"
        );
    }
    let huge_body = vec![b'['; 1 << 20];
    let headers = headers(&[("dpop-nonce", b"n-1")]);
    assert_eq!(
        check_response(StatusCode::BAD_REQUEST, &headers, &huge_body, None),
        NonceAdvice::NotUseDpopNonce
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        check_response(StatusCode::BAD_REQUEST, &headers, deep.as_bytes(), None),
        NonceAdvice::NotUseDpopNonce
    );
}

#[test]
fn malformed_header_is_skipped_but_a_good_one_still_counts() {
    let advice = advice_401(&["DPoP error=\"open", FIGURE_24_CHALLENGE], None);
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
}

// --- Caps and repeated parameters in WWW-Authenticate ----------------------------------

/// The caps documented on `check_response`.
const MAX_VALUE_LEN: usize = 16 * 1024;
const MAX_CHALLENGES: usize = 16;
const MAX_PARAMS: usize = 32;

/// `count` challenges: `count - 1` of other schemes, then Figure 24's.
fn with_other_challenges(count: usize) -> String {
    let mut list: Vec<String> = (1..count).map(|i| format!("Other{i} realm=x")).collect();
    list.push(FIGURE_24_CHALLENGE.to_owned());
    list.join(", ")
}

/// A `DPoP` challenge asking for a nonce, with `count` parameters in all.
fn with_params(count: usize) -> String {
    let mut list = vec![r#"error="use_dpop_nonce""#.to_owned()];
    list.extend((1..count).map(|i| format!("p{i}=1")));
    format!("DPoP {}", list.join(", "))
}

#[test]
fn challenge_value_length_is_capped() {
    let head = r#"DPoP error="use_dpop_nonce", error_description=""#;
    let pad = |len: usize| format!("{head}{}\"", "x".repeat(len - head.len() - 1));
    let at_cap = pad(MAX_VALUE_LEN);
    assert_eq!(at_cap.len(), MAX_VALUE_LEN);
    assert!(retries_with(&advice_401(&[&at_cap], None), FIGURE_NONCE));

    let over = pad(MAX_VALUE_LEN + 1);
    assert_eq!(
        advice_401(&[&over], None),
        NonceAdvice::NotUseDpopNonce,
        "a value over the cap is skipped"
    );
    // The cap is per value: a good challenge in another header still counts.
    assert!(retries_with(
        &advice_401(&[&over, FIGURE_24_CHALLENGE], None),
        FIGURE_NONCE
    ));
    // The hostile header of many distinct parameters is refused too.
    let hostile = format!(
        "{FIGURE_24_CHALLENGE}, {}",
        (0..30_000)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(advice_401(&[&hostile], None), NonceAdvice::NotUseDpopNonce);
}

#[test]
fn challenges_per_value_are_capped() {
    let at_cap = with_other_challenges(MAX_CHALLENGES);
    assert!(retries_with(&advice_401(&[&at_cap], None), FIGURE_NONCE));
    let over = with_other_challenges(MAX_CHALLENGES + 1);
    assert_eq!(advice_401(&[&over], None), NonceAdvice::NotUseDpopNonce);
}

#[test]
fn parameters_per_challenge_are_capped() {
    let at_cap = with_params(MAX_PARAMS);
    assert!(retries_with(&advice_401(&[&at_cap], None), FIGURE_NONCE));
    let over = with_params(MAX_PARAMS + 1);
    assert_eq!(advice_401(&[&over], None), NonceAdvice::NotUseDpopNonce);
}

#[test]
fn repeated_parameters_make_a_challenge_malformed() {
    for repeated in [
        r#"DPoP error="use_dpop_nonce", error="use_dpop_nonce""#,
        r#"DPoP error="use_dpop_nonce", ERROR="invalid_token""#,
        r#"DPoP Error="invalid_token", algs="ES256", eRRoR="use_dpop_nonce""#,
    ] {
        assert_eq!(
            advice_401(&[repeated], None),
            NonceAdvice::NotUseDpopNonce,
            "{repeated}"
        );
    }
    // The same name in another challenge is no repeat.
    let advice = advice_401(
        &[r#"Bearer error="invalid_token", DPoP error="use_dpop_nonce""#],
        None,
    );
    assert!(retries_with(&advice, FIGURE_NONCE), "{advice:?}");
}

// --- Origins ------------------------------------------------------------------------------

#[test]
fn origins_are_normalized() {
    assert_eq!(
        origin("https://AS.Example.com/token"),
        origin("https://as.example.com:443/x?y#z")
    );
    assert_eq!(
        origin("http://example.com"),
        origin("HTTP://EXAMPLE.COM:80/")
    );
    assert_ne!(origin("https://example.com"), origin("http://example.com"));
    assert_ne!(
        origin("https://example.com"),
        origin("https://example.com:8443")
    );
    assert_eq!(origin("http://[0:0::1]:8080/"), origin("http://[::1]:8080"));
    assert_eq!(
        origin("https://user@example.com/").to_string(),
        "https://example.com:443"
    );
    let o = origin("https://example.com:8443");
    assert_eq!(
        (o.scheme(), o.host(), o.port()),
        ("https", "example.com", 8443)
    );

    let error = |uri: &str| Origin::from_uri(&uri.parse().expect("valid URI")).unwrap_err();
    assert_eq!(error("/token"), OriginError::MissingScheme);
    assert_eq!(error("ftp://example.com/"), OriginError::MissingPort);
    assert!(Origin::from_uri(&"ftp://example.com:21/".parse().expect("valid")).is_ok());
}

// --- Store --------------------------------------------------------------------------------

#[test]
fn store_learns_from_success_and_errors_alike() {
    let store = NonceStore::new();
    let o = origin("https://rs.example.com");

    let ok = headers(&[("dpop-nonce", b"n-1")]);
    assert_eq!(
        store.observe(&o, StatusCode::OK, &ok, b"{}", None),
        NonceAdvice::NotUseDpopNonce
    );
    assert_eq!(store.get(&o), Some(nonce("n-1")));

    let advice = store.observe(
        &o,
        StatusCode::UNAUTHORIZED,
        &challenge_401(&[FIGURE_24_CHALLENGE], "n-2"),
        b"",
        Some("n-1"),
    );
    assert!(retries_with(&advice, "n-2"));
    assert_eq!(store.get(&o), Some(nonce("n-2")));

    let server_error = headers(&[("dpop-nonce", b"n-3")]);
    let _ = store.observe(
        &o,
        StatusCode::INTERNAL_SERVER_ERROR,
        &server_error,
        b"",
        None,
    );
    assert_eq!(store.get(&o), Some(nonce("n-3")));
}

#[test]
fn store_ignores_several_or_invalid_nonces() {
    let store = NonceStore::new();
    let o = origin("https://rs.example.com");
    let observe = |headers: &HeaderMap| store.observe(&o, StatusCode::OK, headers, b"", None);

    assert_eq!(
        observe(&headers(&[("dpop-nonce", b"good")])),
        NonceAdvice::NotUseDpopNonce
    );
    assert_eq!(store.get(&o), Some(nonce("good")));
    let _ = observe(&headers(&[("dpop-nonce", b"a"), ("dpop-nonce", b"b")]));
    let _ = observe(&headers(&[("dpop-nonce", b"bad value")]));
    let _ = observe(&HeaderMap::new());
    assert_eq!(store.get(&o), Some(nonce("good")));

    // Not even a use_dpop_nonce answer with an unusable header changes it.
    let advice = store.observe(
        &o,
        StatusCode::BAD_REQUEST,
        &headers(&[("dpop-nonce", b"a"), ("dpop-nonce", b"b")]),
        FIGURE_20_BODY,
        None,
    );
    assert_eq!(
        advice,
        NonceAdvice::UnusableNonce {
            error: NonceHeaderError::Several { count: 2 }
        }
    );
    assert_eq!(store.get(&o), Some(nonce("good")));
}

#[test]
fn store_keeps_origins_apart() {
    let store = NonceStore::new();
    store.insert(origin("https://as.example.com"), nonce("as"));
    store.insert(origin("https://rs.example.com"), nonce("rs"));
    assert_eq!(
        store.get(&origin("https://AS.example.com:443/token")),
        Some(nonce("as"))
    );
    assert_eq!(
        store.get(&origin("https://rs.example.com/api")),
        Some(nonce("rs"))
    );
    assert_eq!(store.get(&origin("http://rs.example.com/api")), None);
}

#[test]
fn store_is_bounded_and_evicts_least_recently_used() {
    let store = NonceStore::with_capacity(2);
    assert_eq!(store.capacity(), 2);
    let (a, b, c) = (
        origin("https://a.test"),
        origin("https://b.test"),
        origin("https://c.test"),
    );
    store.insert(a.clone(), nonce("a"));
    store.insert(b.clone(), nonce("b"));
    // Reading `a` makes `b` the least recently used.
    assert!(store.get(&a).is_some());
    store.insert(c.clone(), nonce("c"));
    assert_eq!(store.len(), 2);
    assert_eq!(store.get(&b), None);
    assert_eq!(store.get(&a), Some(nonce("a")));
    assert_eq!(store.get(&c), Some(nonce("c")));

    // Replacing a known origin's nonce evicts nothing.
    assert_eq!(store.insert(a.clone(), nonce("a2")), Some(nonce("a")));
    assert_eq!(store.len(), 2);

    assert_eq!(store.remove(&a), Some(nonce("a2")));
    store.clear();
    assert!(store.is_empty());
    assert_eq!(NonceStore::with_capacity(0).capacity(), 1);
}

#[test]
fn store_is_shared_across_threads() {
    let store = Arc::new(NonceStore::with_capacity(16));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let o = origin(&format!("https://h{}.test", (t * 200 + i) % 40));
                    store.insert(o.clone(), nonce(&format!("n{t}-{i}")));
                    let _ = store.get(&o);
                    assert!(store.len() <= 16);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    assert_eq!(store.len(), 16);
}

// --- Properties ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn advice_never_panics(
        status in 100u16..600,
        challenge in proptest::collection::vec(any::<u8>(), 0..256),
        nonce_value in proptest::collection::vec(any::<u8>(), 0..64),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut map = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&challenge) {
            map.append("www-authenticate", value);
        }
        if let Ok(value) = HeaderValue::from_bytes(&nonce_value) {
            map.append("dpop-nonce", value);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        let _ = check_response(status, &map, &body, Some("sent"));
    }
}
