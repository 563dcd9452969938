//! The token endpoint's extractor: a refused proof is the authorization server's 400 answer, a
//! missing nonce takes one retry, and the handler gets the key's thumbprint to bind.

#[path = "proof_support/mod.rs"]
mod support;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use dpop_nonce::axum::TokenEndpointProof;
use dpop_nonce::proof::{PublicJwk, Verifier};
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource as _, NonceValidator};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use support::{Key, NOW, Proof};
use time::Duration;
use tower::ServiceExt as _;

type Source = InMemoryNonceSource<Arc<ManualClock>>;
type Cache = InMemoryReplayCache<Arc<ManualClock>>;
type TokenVerifier = Verifier<Source, Cache, Arc<ManualClock>>;

async fn token(proof: TokenEndpointProof<Source, Cache, Arc<ManualClock>>) -> String {
    format!("bound to {}", proof.jkt())
}

fn app() -> Router {
    let clock = Arc::new(ManualClock::at_unix(Duration::seconds(NOW)));
    let source = InMemoryNonceSource::builder()
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let replay = InMemoryReplayCache::builder(source.max_nonce_lifetime())
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let verifier: TokenVerifier = Verifier::builder_async(NonceValidator::new(source), replay)
        .public_base_url("https://server.example.com")
        .clock(clock)
        .build()
        .unwrap();
    Router::new()
        .route("/token", post(token))
        .with_state(Arc::new(verifier))
}

async fn send(app: &Router, dpop: Option<&str>) -> (StatusCode, Vec<String>, String) {
    let mut request = Request::post("/token");
    if let Some(dpop) = dpop {
        request = request.header("dpop", dpop);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let nonces = response
        .headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, nonces, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_nonce_takes_one_retry_and_the_handler_gets_the_thumbprint() {
    let app = app();
    let key = Key::p256(3);
    let (status, nonces, body) = send(&app, Some(&Proof::new(&key, None).sign(&key))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""error":"use_dpop_nonce""#), "{body}");
    assert_eq!(nonces.len(), 1);

    let retry = Proof::new(&key, Some(&nonces[0])).sign(&key);
    let (status, nonces, body) = send(&app, Some(&retry)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(nonces.is_empty());
    let jkt = PublicJwk::from_json(key.jwk().to_string().as_bytes())
        .unwrap()
        .thumbprint();
    assert_eq!(body, format!("bound to {}", jkt.as_str()));

    // The same proof again is a replay.
    let (status, _, body) = send(&app, Some(&retry)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""error":"invalid_dpop_proof""#), "{body}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_without_a_proof_or_with_a_bad_one_is_refused() {
    let app = app();
    let (status, nonces, body) = send(&app, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""error":"invalid_dpop_proof""#), "{body}");
    assert!(nonces.len() <= 1);
    let key = Key::p256(4);
    let unsigned = Proof::new(&key, None)
        .header(|header| header["alg"] = serde_json::json!("none"))
        .sign(&key);
    let (status, _, body) = send(&app, Some(&unsigned)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""error":"invalid_dpop_proof""#), "{body}");
}
