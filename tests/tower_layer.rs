//! The tower layer in front of a resource server's route: every rejection path and its answer,
//! the bare challenge, a token bound to another key, a replayed proof, a stale nonce and its one
//! retry, and the refresh on success.

#[path = "proof_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dpop_nonce::proof::{PublicJwk, VerifiedProof, Verifier};
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::tower::{DpopLayer, TokenBinding};
use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceValidator};
use http::{Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use support::{Key, NOW, Proof, b64, jti};
use time::Duration;
use tower::{Layer as _, Service, ServiceExt as _};

const BASE: &str = "https://api.example.com";
const ROTATION: Duration = Duration::minutes(5);

/// Tokens and the key thumbprints they are bound to.
struct Tokens(HashMap<&'static str, String>);

impl TokenBinding for Tokens {
    async fn bound_jkt(&self, token: &str) -> Option<String> {
        self.0.get(token).cloned()
    }
}

fn thumbprint(key: &Key) -> String {
    PublicJwk::from_json(key.jwk().to_string().as_bytes())
        .expect("a public JWK")
        .thumbprint()
        .as_str()
        .to_owned()
}

struct Api {
    clock: Arc<ManualClock>,
    key: Key,
    calls: Arc<AtomicUsize>,
    service: tower::util::BoxCloneService<Request<String>, Response<String>, Infallible>,
}

fn api(expose: bool) -> Api {
    let clock = Arc::new(ManualClock::at_unix(Duration::seconds(NOW)));
    let source = InMemoryNonceSource::builder()
        .rotation(ROTATION)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let replay = InMemoryReplayCache::builder(dpop_nonce::NonceSource::max_nonce_lifetime(&source))
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let verifier = Verifier::builder_async(NonceValidator::new(source), replay)
        .public_base_url(BASE)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let key = Key::p256(7);
    let other = Key::p256(8);
    let tokens = Tokens(HashMap::from([
        ("token-for-key", thumbprint(&key)),
        ("token-for-another-key", thumbprint(&other)),
    ]));
    let mut layer = DpopLayer::new(Arc::new(verifier), tokens);
    if expose {
        layer = layer.expose_to_browsers();
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let inner = tower::service_fn(move |request: Request<String>| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            let proof = request
                .extensions()
                .get::<VerifiedProof>()
                .expect("the verified proof is in the extensions");
            Ok::<_, Infallible>(Response::new(format!("served {}", proof.jkt())))
        }
    });
    Api {
        clock,
        key,
        calls,
        service: tower::util::BoxCloneService::new(layer.layer(inner)),
    }
}

/// A proof for `GET {BASE}/items` presenting `token`, with `nonce`, made at `NOW`.
fn proof(key: &Key, token: &str, nonce: Option<&str>) -> String {
    proof_made(key, token, nonce, NOW)
}

/// A proof made at `iat` (seconds) carrying `nonce`.
fn proof_at(key: &Key, token: &str, nonce: &str, iat: i64) -> String {
    proof_made(key, token, Some(nonce), iat)
}

/// A proof for `GET {BASE}/items` presenting `token`, made at `iat`, with `nonce` if any.
fn proof_made(key: &Key, token: &str, nonce: Option<&str>, iat: i64) -> String {
    let mut claims = json!({
        "jti": jti(),
        "htm": "GET",
        "htu": format!("{BASE}/items"),
        "iat": iat,
        "ath": b64(Sha256::digest(token.as_bytes())),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    Proof::from_values(key, key.alg(), claims).sign(key)
}

fn get(authorization: Option<&str>, dpop: Option<&str>) -> Request<String> {
    let mut request = Request::get("/items");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(dpop) = dpop {
        request = request.header("dpop", dpop);
    }
    request.body(String::new()).unwrap()
}

impl Api {
    async fn send(&mut self, request: Request<String>) -> Response<String> {
        let ready = self.service.ready().await.unwrap();
        ready.call(request).await.unwrap()
    }

    async fn with_proof(&mut self, token: &str, proof: &str) -> Response<String> {
        let authorization = format!("DPoP {token}");
        self.send(get(Some(&authorization), Some(proof))).await
    }

    fn served(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

fn header<'a>(response: &'a Response<String>, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect()
}

/// A 401 with one `DPoP-Nonce`, returned with that nonce.
fn assert_refused<'a>(response: &'a Response<String>, challenge_start: &str) -> &'a str {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(response, "www-authenticate");
    assert_eq!(challenge.len(), 1);
    assert!(
        challenge[0].starts_with(challenge_start),
        "{challenge:?} starts with {challenge_start:?}"
    );
    assert!(challenge[0].ends_with(r#"algs="ES256 ES384 EdDSA Ed25519 RS256 PS256""#));
    let nonces = header(response, "dpop-nonce");
    assert_eq!(nonces.len(), 1, "exactly one DPoP-Nonce");
    assert_eq!(header(response, "cache-control"), ["no-store"]);
    nonces[0]
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_without_credentials_gets_the_bare_challenge() {
    let mut api = api(false);
    let response = api.send(get(None, None)).await;
    assert_refused(&response, "DPoP algs=");
    assert_eq!(api.served(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_bound_token_presented_as_bearer_is_refused() {
    let mut api = api(false);
    let response = api.send(get(Some("Bearer token-for-key"), None)).await;
    assert_refused(&response, r#"DPoP error="invalid_token""#);
    assert_eq!(api.served(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unknown_token_is_invalid() {
    let mut api = api(false);
    let nonce = {
        let response = api.with_proof("token-for-key", "not-a-proof").await;
        assert_refused(&response, r#"DPoP error="invalid_dpop_proof""#).to_owned()
    };
    let proof = proof(&api.key, "unknown-token", Some(&nonce));
    let response = api.with_proof("unknown-token", &proof).await;
    assert_refused(&response, r#"DPoP error="invalid_token""#);
    assert_eq!(api.served(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_token_bound_to_another_key_is_refused() {
    let mut api = api(false);
    let first = proof(&api.key, "token-for-another-key", None);
    let nonce = {
        let response = api.with_proof("token-for-another-key", &first).await;
        // No nonce yet: the nonce answer comes first only if the binding holds; a token bound
        // to another key is refused as such whatever the nonce.
        assert_refused(&response, r#"DPoP error="invalid_token""#).to_owned()
    };
    let again = proof(&api.key, "token-for-another-key", Some(&nonce));
    let response = api.with_proof("token-for-another-key", &again).await;
    assert_refused(&response, r#"DPoP error="invalid_token""#);
    assert_eq!(api.served(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_nonce_takes_one_retry_and_a_replay_is_refused() {
    let mut api = api(false);
    let first = proof(&api.key, "token-for-key", None);
    let response = api.with_proof("token-for-key", &first).await;
    let nonce = assert_refused(&response, r#"DPoP error="use_dpop_nonce""#).to_owned();
    assert_eq!(api.served(), 0);

    let retry = proof(&api.key, "token-for-key", Some(&nonce));
    let response = api.with_proof("token-for-key", &retry).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().starts_with("served "));
    assert!(
        header(&response, "dpop-nonce").is_empty(),
        "a current nonce needs no refresh"
    );
    assert_eq!(api.served(), 1);

    let response = api.with_proof("token-for-key", &retry).await;
    assert_refused(&response, r#"DPoP error="invalid_dpop_proof""#);
    assert_eq!(api.served(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_stale_nonce_takes_one_retry() {
    let mut api = api(false);
    let first = proof(&api.key, "token-for-key", None);
    let nonce = assert_refused(
        &api.with_proof("token-for-key", &first).await,
        r#"DPoP error="use_dpop_nonce""#,
    )
    .to_owned();
    api.clock.advance(ROTATION * 2);
    let stale = proof_at(&api.key, "token-for-key", &nonce, NOW + 600);
    let response = api.with_proof("token-for-key", &stale).await;
    let fresh = assert_refused(&response, r#"DPoP error="use_dpop_nonce""#).to_owned();
    assert_ne!(fresh, nonce);
    let retry = proof_at(&api.key, "token-for-key", &fresh, NOW + 600);
    assert_eq!(
        api.with_proof("token-for-key", &retry).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_previous_nonce_is_served_with_the_refresh() {
    let mut api = api(true);
    let first = proof(&api.key, "token-for-key", None);
    let response = api.with_proof("token-for-key", &first).await;
    let nonce = assert_refused(&response, r#"DPoP error="use_dpop_nonce""#).to_owned();
    assert_eq!(
        header(&response, "access-control-expose-headers"),
        ["DPoP-Nonce, WWW-Authenticate"]
    );
    api.clock.advance(ROTATION);
    let previous = proof_at(&api.key, "token-for-key", &nonce, NOW + 300);
    let response = api.with_proof("token-for-key", &previous).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refresh = header(&response, "dpop-nonce");
    assert_eq!(refresh.len(), 1);
    assert_ne!(refresh[0], nonce);
    assert_eq!(header(&response, "cache-control"), ["no-store"]);
    assert_eq!(
        header(&response, "access-control-expose-headers"),
        ["DPoP-Nonce, WWW-Authenticate"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_proof_for_another_route_or_method_is_refused() {
    let mut api = api(false);
    let first = proof(&api.key, "token-for-key", None);
    let nonce = assert_refused(
        &api.with_proof("token-for-key", &first).await,
        r#"DPoP error="use_dpop_nonce""#,
    )
    .to_owned();
    let elsewhere = Proof::from_values(
        &api.key,
        api.key.alg(),
        json!({
            "jti": jti(), "htm": "GET", "htu": format!("{BASE}/admin"), "iat": NOW,
            "ath": b64(Sha256::digest(b"token-for-key")), "nonce": nonce,
        }),
    )
    .sign(&api.key);
    let response = api.with_proof("token-for-key", &elsewhere).await;
    assert_refused(&response, r#"DPoP error="invalid_dpop_proof""#);
    let wrong_ath = Proof::from_values(
        &api.key,
        api.key.alg(),
        json!({
            "jti": jti(), "htm": "GET", "htu": format!("{BASE}/items"), "iat": NOW,
            "ath": b64(Sha256::digest(b"another token")), "nonce": nonce,
        }),
    )
    .sign(&api.key);
    let response = api.with_proof("token-for-key", &wrong_ath).await;
    assert_refused(&response, r#"DPoP error="invalid_dpop_proof""#);
    assert_eq!(api.served(), 0);
}
