//! The `http` feature: answers as `http` types, one `DPoP-Nonce`, the CORS helper.

use dpop_nonce::http::{
    ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, DPOP, DPOP_NONCE, WWW_AUTHENTICATE,
    expose_dpop_headers, set_dpop_nonce,
};
use dpop_nonce::render::{self, Algs, Answer, ErrorDescription, Role};
use dpop_nonce::{
    Accepted, InMemoryNonceSource, Nonce, NonceCheck, NonceSource, NonceValidator, Requirement,
    UseDpopNonce,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// The nonce of RFC 9449 Figures 20 and 24.
const FIGURE_NONCE: &str = "eyJ7S_zG.eyJH0-Z.HX4w-7v";
/// The nonce of RFC 9449 Figure 23.
const FIGURE_23_NONCE: &str = "eyJ7S_zG.eyJbYu3.xQmBj-1";

/// A source that always hands out one fixed nonce and accepts nothing, to reproduce the figures.
struct Fixed(&'static str);

impl NonceSource for Fixed {
    fn issue(&self) -> Nonce {
        Nonce::parse(self.0).unwrap_or_else(|_| Nonce::generate())
    }
    fn check(&self, claim: &str) -> NonceCheck {
        if claim == "previous" {
            NonceCheck::Previous
        } else {
            NonceCheck::Unknown
        }
    }
    fn max_nonce_lifetime(&self) -> time::Duration {
        time::Duration::minutes(10)
    }
}

fn refused() -> UseDpopNonce {
    NonceValidator::new(Fixed(FIGURE_NONCE))
        .validate(None)
        .expect_err("no claim is refused")
}

fn refreshing() -> Accepted {
    NonceValidator::new(Fixed(FIGURE_23_NONCE))
        .validate(Some("previous"))
        .expect("the previous nonce is accepted")
}

fn values<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Vec<&'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect()
}

fn resource_server(algs: &[&str]) -> Role {
    Role::ResourceServer {
        algs: Algs::new(algs).expect("valid names"),
    }
}

#[test]
fn header_name_constants() {
    assert_eq!(DPOP_NONCE.as_str(), "dpop-nonce");
    assert_eq!(DPOP.as_str(), "dpop");
    assert_eq!(DPOP_NONCE, "DPoP-Nonce");
    assert_eq!(WWW_AUTHENTICATE, "www-authenticate");
}

/// The `HeaderName`s of this module and the `&str` names of `render::header` name the same
/// headers: there is one spelling per name.
#[test]
fn header_names_agree_with_the_core_names() {
    let pairs = [
        (&DPOP_NONCE, render::header::DPOP_NONCE),
        (&DPOP, render::header::DPOP),
        (&WWW_AUTHENTICATE, render::header::WWW_AUTHENTICATE),
        (&CACHE_CONTROL, render::header::CACHE_CONTROL),
        (&CONTENT_TYPE, render::header::CONTENT_TYPE),
        (
            &ACCESS_CONTROL_EXPOSE_HEADERS,
            render::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ),
    ];
    for (typed, text) in pairs {
        assert_eq!(*typed, text);
        assert_eq!(typed.as_str(), text.to_ascii_lowercase());
    }
}

#[test]
fn figure_20_authorization_server_answer() {
    let response = Answer::from(refused()).to_http_response(&Role::AuthorizationServer);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        values(response.headers(), &DPOP_NONCE),
        [FIGURE_NONCE.as_bytes()]
    );
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        response.body(),
        r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#
    );
}

#[test]
fn figure_24_resource_server_answer() {
    let response = Answer::from(refused()).to_http_response(&resource_server(&[]));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        values(response.headers(), &WWW_AUTHENTICATE),
        [br#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
            .as_slice()]
    );
    assert_eq!(
        values(response.headers(), &DPOP_NONCE),
        [FIGURE_NONCE.as_bytes()]
    );
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert!(response.body().is_empty());
}

#[test]
fn resource_server_answer_names_algs() {
    let response = Answer::from(refused()).to_http_response(&resource_server(&["ES256", "PS256"]));
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("ASCII");
    assert!(
        challenge.ends_with(r#", algs="ES256 PS256""#),
        "{challenge}"
    );
}

#[test]
fn tv5_bare_challenge_and_invalid_token_as_http() {
    let role = resource_server(&["ES256", "PS256"]);
    let bare = Answer::no_credentials().to_http_response(&role);
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        values(bare.headers(), &WWW_AUTHENTICATE),
        [br#"DPoP algs="ES256 PS256""#.as_slice()]
    );
    assert!(bare.headers().get(DPOP_NONCE).is_none());

    let binding = Answer::invalid_token()
        .with_description(ErrorDescription::new("Invalid DPoP key binding").expect("valid"))
        .to_http_response(&resource_server(&["ES256"]));
    assert_eq!(
        values(binding.headers(), &WWW_AUTHENTICATE),
        [br#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#
            .as_slice()]
    );
}

#[test]
fn http_response_matches_the_plain_parts() {
    let nonce = Nonce::parse("n-1").expect("valid");
    let answers = [
        Answer::from(refused()),
        Answer::invalid_dpop_proof().with_nonce(nonce.clone()),
        Answer::invalid_token().expose_to_browsers(),
        Answer::no_credentials().with_nonce(nonce),
    ];
    for answer in &answers {
        for role in [Role::AuthorizationServer, resource_server(&["ES256"])] {
            let parts = answer.to_parts(&role);
            let response = answer.to_http_response(&role);
            assert_eq!(response.status().as_u16(), parts.status);
            assert_eq!(response.body(), &parts.body);
            assert_eq!(response.headers().len(), parts.headers.len(), "{answer}");
            for (name, value) in &parts.headers {
                let sent: Vec<&[u8]> = response
                    .headers()
                    .get_all(*name)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                assert_eq!(sent, [value.as_bytes()], "{name} of {answer}");
            }
        }
    }
}

#[test]
fn custom_description_and_cors_header() {
    let description = ErrorDescription::new("Nonce needed").expect("valid text");
    let response = Answer::from(refused())
        .with_description(description)
        .expose_to_browsers()
        .to_http_response(&Role::AuthorizationServer);
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.body(),
        r#"{"error":"use_dpop_nonce","error_description":"Nonce needed"}"#
    );
    assert_eq!(
        values(response.headers(), &ACCESS_CONTROL_EXPOSE_HEADERS),
        [b"DPoP-Nonce, WWW-Authenticate".as_slice()]
    );
}

#[test]
fn figure_23_refresh_on_success() {
    let accepted = refreshing();
    let mut response = Response::new("{}");
    assert!(accepted.insert_refresh(response.headers_mut()));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        values(response.headers(), &DPOP_NONCE),
        [FIGURE_23_NONCE.as_bytes()]
    );
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
}

#[test]
fn exactly_one_dpop_nonce_replaces_two_existing() {
    let mut response = Response::new(());
    response
        .headers_mut()
        .append(DPOP_NONCE, HeaderValue::from_static("stale-1"));
    response
        .headers_mut()
        .append("DPoP-Nonce", HeaderValue::from_static("stale-2"));
    assert_eq!(response.headers().get_all(DPOP_NONCE).iter().count(), 2);

    assert!(refreshing().insert_refresh(response.headers_mut()));
    assert_eq!(
        values(response.headers(), &DPOP_NONCE),
        [FIGURE_23_NONCE.as_bytes()]
    );
}

#[test]
fn no_refresh_leaves_headers_alone() {
    let validator = NonceValidator::new(InMemoryNonceSource::new());
    let nonce = validator.issue();
    let accepted = validator
        .validate(Some(nonce.as_str()))
        .expect("current nonce");
    assert!(accepted.refresh().is_none());

    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    assert!(!accepted.insert_refresh(&mut headers));
    assert!(headers.get(DPOP_NONCE).is_none());
    assert_eq!(headers[CACHE_CONTROL], "max-age=60");
}

#[test]
fn optional_endpoint_hands_a_nonce_on_success() {
    let par =
        NonceValidator::new(InMemoryNonceSource::new()).with_requirement(Requirement::Optional);
    let accepted = par.validate(None).expect("optional");
    let mut headers = HeaderMap::new();
    assert!(accepted.insert_refresh(&mut headers));
    let sent = headers[DPOP_NONCE].to_str().expect("ASCII");
    assert!(par.validate(Some(sent)).is_ok());
}

#[test]
fn set_dpop_nonce_keeps_an_existing_no_store() {
    let nonce = Nonce::parse("n-1").expect("valid");
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, No-Store"));
    set_dpop_nonce(&mut headers, &nonce);
    assert_eq!(headers[CACHE_CONTROL], "private, No-Store");

    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    set_dpop_nonce(&mut headers, &nonce);
    assert_eq!(values(&headers, &CACHE_CONTROL), [b"no-store".as_slice()]);
}

/// The `Cache-Control` lines `set_dpop_nonce` leaves after starting from `lines`.
fn cache_control_after(lines: &[&'static str]) -> Vec<Vec<u8>> {
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append(CACHE_CONTROL, HeaderValue::from_static(line));
    }
    set_dpop_nonce(&mut headers, &Nonce::parse("n-1").expect("valid"));
    assert_eq!(headers[DPOP_NONCE], "n-1");
    values(&headers, &CACHE_CONTROL)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// The lines set to exactly one `no-store`.
fn replaced() -> Vec<Vec<u8>> {
    vec![b"no-store".to_vec()]
}

/// The lines left as they were.
fn kept(lines: &[&str]) -> Vec<Vec<u8>> {
    lines.iter().map(|l| l.as_bytes().to_vec()).collect()
}

#[test]
fn no_store_inside_a_quoted_string_does_not_count() {
    let cases: &[&[&str]] = &[
        &[r#"no-cache="Set-Cookie, no-store""#],
        &[r#"no-cache="Set-Cookie, no-store, Authorization""#],
        &[r#"private="X-A, no-store ,X-B", max-age=60"#],
        &[r#"no-cache="no-store""#],
        &[r#"private, no-cache="a\", no-store""#],
        &[r#"no-cache="Set-Cookie,no-store", max-age=60"#],
        &["private", r#"no-cache="x, NO-STORE""#],
        &["private", r#"no-cache="x, NO-STORE, y""#],
    ];
    let wrong: Vec<_> = cases
        .iter()
        .filter(|lines| cache_control_after(lines) != replaced())
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn a_real_no_store_is_kept_and_not_repeated() {
    let cases: &[&[&str]] = &[
        &["no-store"],
        &["NO-STORE"],
        &["private,no-store"],
        &[" no-store , max-age=0"],
        &[r#"no-cache="Set-Cookie, no-store", no-store"#],
        &[r#"no-cache="a\"b\\", No-Store"#],
        &["max-age=0", "no-store"],
        &["no-store", "private"],
        &[",, no-store,"],
    ];
    let wrong: Vec<_> = cases
        .iter()
        .filter(|lines| cache_control_after(lines) != kept(lines))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn odd_or_unparseable_cache_control_gets_no_store() {
    let cases: &[&[&str]] = &[
        // `no-store` takes no argument; a cache may not honour this form.
        &["no-store=1"],
        &[r#"no-store="true""#],
        // Not the grammar: taken as lacking `no-store`.
        &[r#"no-store, no-cache="open"#],
        &["no-store no-cache"],
        &["no-store;"],
        &["no-store", "max-age =60"],
        &["\"no-store\""],
        &["no-storex"],
        &[""],
    ];
    let wrong: Vec<_> = cases
        .iter()
        .filter(|lines| cache_control_after(lines) != replaced())
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn cors_helper_on_empty_headers() {
    let mut headers = HeaderMap::new();
    expose_dpop_headers(&mut headers);
    assert_eq!(
        values(&headers, &ACCESS_CONTROL_EXPOSE_HEADERS),
        [b"DPoP-Nonce, WWW-Authenticate".as_slice()]
    );
}

#[test]
fn cors_helper_merges_several_values_and_is_idempotent() {
    let mut headers = HeaderMap::new();
    headers.append(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Request-Id"),
    );
    headers.append(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(" www-authenticate ,, Link"),
    );
    expose_dpop_headers(&mut headers);
    let merged = [b"X-Request-Id, www-authenticate, Link, DPoP-Nonce".as_slice()];
    assert_eq!(values(&headers, &ACCESS_CONTROL_EXPOSE_HEADERS), merged);

    expose_dpop_headers(&mut headers);
    assert_eq!(values(&headers, &ACCESS_CONTROL_EXPOSE_HEADERS), merged);
}

#[test]
fn cors_helper_does_nothing_when_already_exposed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("dpop-nonce,WWW-AUTHENTICATE"),
    );
    expose_dpop_headers(&mut headers);
    assert_eq!(
        values(&headers, &ACCESS_CONTROL_EXPOSE_HEADERS),
        [b"dpop-nonce,WWW-AUTHENTICATE".as_slice()]
    );
}

#[test]
fn cors_helper_leaves_a_non_ascii_value_alone() {
    let mut headers = HeaderMap::new();
    let odd = HeaderValue::from_bytes(b"X-\xffOdd").expect("obs-text is allowed in values");
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, odd);
    expose_dpop_headers(&mut headers);
    assert_eq!(
        values(&headers, &ACCESS_CONTROL_EXPOSE_HEADERS),
        [
            b"X-\xffOdd".as_slice(),
            b"DPoP-Nonce, WWW-Authenticate".as_slice()
        ]
    );
}

#[test]
fn long_nonces_convert_too() {
    let long = "~".repeat(Nonce::MAX_LEN);
    let nonce = Nonce::parse(&long).expect("valid");
    let mut headers = HeaderMap::new();
    set_dpop_nonce(&mut headers, &nonce);
    assert_eq!(headers[DPOP_NONCE], long.as_str());
}
