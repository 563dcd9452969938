//! The `axum` feature: `IntoResponse` for an answer and its role, `IntoResponseParts` for the refresh,
//! driven through a real `Router` with `tower::ServiceExt::oneshot` (no network).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dpop_nonce::axum::Reply;
use dpop_nonce::render::{Algs, Answer, ErrorDescription, Role};
use dpop_nonce::{InMemoryNonceSource, RejectReason};
use dpop_nonce::{ManualClock, Nonce, NonceCheck, NonceSource, NonceValidator};
use time::Duration;
use tower::ServiceExt as _;

/// Header standing in for the `nonce` claim of a verified proof.
const CLAIM: &str = "x-test-nonce-claim";

struct App {
    token: NonceValidator<InMemoryNonceSource<Arc<ManualClock>>>,
    resource: NonceValidator<InMemoryNonceSource<Arc<ManualClock>>>,
    role: Role,
    clock: Arc<ManualClock>,
}

fn claim(headers: &HeaderMap) -> Option<&str> {
    headers.get(CLAIM).and_then(|v| v.to_str().ok())
}

async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Reply> {
    let accepted = app
        .token
        .validate(claim(&headers))
        .map_err(|refused| Answer::from(refused).into_axum(Role::AuthorizationServer))?;
    Ok((accepted, r#"{"access_token":"t","token_type":"DPoP"}"#))
}

async fn resource(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Reply> {
    let accepted = app.resource.validate(claim(&headers)).map_err(|refused| {
        Answer::from(refused)
            .expose_to_browsers()
            .into_axum(app.role.clone())
    })?;
    Ok((accepted, "protected"))
}

fn source(clock: &Arc<ManualClock>) -> InMemoryNonceSource<Arc<ManualClock>> {
    InMemoryNonceSource::builder()
        .rotation(Duration::minutes(5))
        .clock(Arc::clone(clock))
        .build()
        .expect("valid configuration")
}

fn app() -> (Router, Arc<App>) {
    let clock = Arc::new(ManualClock::at_unix(Duration::hours(1)));
    let state = Arc::new(App {
        token: NonceValidator::new(source(&clock)),
        resource: NonceValidator::new(source(&clock)),
        role: Role::ResourceServer {
            algs: Algs::new(["ES256", "EdDSA"]).expect("valid names"),
        },
        clock,
    });
    let router = Router::new()
        .route("/token", post(token))
        .route("/resource", get(resource))
        .with_state(Arc::clone(&state));
    (router, state)
}

async fn call(router: &Router, method: &str, path: &str, claim: Option<&str>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(claim) = claim {
        request = request.header(CLAIM, claim);
    }
    let request = request.body(Body::empty()).expect("valid request");
    router.clone().oneshot(request).await.expect("infallible")
}

fn one_nonce(response: &Response) -> String {
    let all: Vec<&HeaderValue> = response.headers().get_all("dpop-nonce").iter().collect();
    assert_eq!(all.len(), 1, "exactly one DPoP-Nonce: {all:?}");
    let nonce = all[0].to_str().expect("ASCII");
    assert!(Nonce::parse(nonce).is_ok(), "NQCHAR nonce: {nonce:?}");
    nonce.to_owned()
}

async fn body(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

#[tokio::test]
async fn token_endpoint_dance_through_router() {
    let (router, _) = app();

    let first = call(&router, "POST", "/token", None).await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let nonce = one_nonce(&first);
    assert_eq!(first.headers()["content-type"], "application/json");
    assert_eq!(first.headers()["cache-control"], "no-store");
    assert_eq!(
        body(first).await,
        r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#
    );

    let second = call(&router, "POST", "/token", Some(&nonce)).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert!(
        second.headers().get("dpop-nonce").is_none(),
        "current nonce needs no refresh"
    );
    assert!(body(second).await.contains("DPoP"));
}

#[tokio::test]
async fn resource_endpoint_answers_401_with_challenge_and_cors() {
    let (router, _) = app();

    let first = call(&router, "GET", "/resource", Some("not a nonce")).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let nonce = one_nonce(&first);
    let challenges: Vec<_> = first.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1);
    assert_eq!(
        challenges[0],
        r#"DPoP error="use_dpop_nonce", error_description="Resource server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce", algs="ES256 EdDSA""#
    );
    assert_eq!(
        first.headers()["access-control-expose-headers"],
        "DPoP-Nonce, WWW-Authenticate"
    );
    assert!(body(first).await.is_empty());

    let second = call(&router, "GET", "/resource", Some(&nonce)).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(body(second).await, "protected");
}

#[tokio::test]
async fn authorization_server_nonce_is_refused_at_resource_server() {
    let (router, _) = app();
    let as_nonce = one_nonce(&call(&router, "POST", "/token", None).await);
    let response = call(&router, "GET", "/resource", Some(&as_nonce)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(one_nonce(&response), as_nonce);
}

#[tokio::test]
async fn previous_nonce_succeeds_with_refresh_header() {
    let (router, state) = app();
    let old = one_nonce(&call(&router, "GET", "/resource", None).await);
    state.clock.advance(Duration::minutes(5));

    let response = call(&router, "GET", "/resource", Some(&old)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = one_nonce(&response);
    assert_ne!(fresh, old);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn refresh_replaces_a_dpop_nonce_set_by_the_handler() {
    struct Previous;
    impl NonceSource for Previous {
        fn issue(&self) -> Nonce {
            Nonce::parse("fresh").unwrap_or_else(|_| Nonce::generate())
        }
        fn max_nonce_lifetime(&self) -> time::Duration {
            time::Duration::minutes(10)
        }
        fn check(&self, _: &str) -> NonceCheck {
            NonceCheck::Previous
        }
    }
    let accepted = NonceValidator::new(Previous)
        .validate(Some("old"))
        .expect("accepted");
    let mut stale = HeaderMap::new();
    stale.append("dpop-nonce", HeaderValue::from_static("stale-1"));
    stale.append("dpop-nonce", HeaderValue::from_static("stale-2"));

    let response = (stale, accepted, "ok").into_response();
    let all: Vec<_> = response.headers().get_all("dpop-nonce").iter().collect();
    assert_eq!(all, ["fresh"]);
}

#[test]
fn reply_accessors_and_custom_description() {
    let refused = NonceValidator::new(InMemoryNonceSource::new())
        .validate(None)
        .expect_err("refused");
    assert_eq!(refused.reason(), RejectReason::Missing);
    let nonce = refused.nonce().clone();
    let reply = Answer::from(refused)
        .with_description(ErrorDescription::new("Send a nonce").expect("valid"))
        .into_axum(Role::AuthorizationServer);
    assert_eq!(reply.role(), &Role::AuthorizationServer);
    assert_eq!(reply.answer().nonce(), Some(&nonce));
    assert_eq!(reply.to_string(), "use_dpop_nonce (missing): Send a nonce");
    assert_eq!(
        reply.answer().to_parts(reply.role()).body,
        r#"{"error":"use_dpop_nonce","error_description":"Send a nonce"}"#
    );
    let response = reply.clone().into_response();
    assert_eq!(response.headers()["dpop-nonce"], nonce.as_str());
    assert!(
        response
            .headers()
            .get("access-control-expose-headers")
            .is_none()
    );
    let (answer, role) = reply.into_inner();
    assert_eq!(role, Role::AuthorizationServer);
    assert_eq!(answer.nonce(), Some(&nonce));
}

/// Every answer, not only `use_dpop_nonce`, goes out through the same `IntoResponse`.
#[tokio::test]
async fn every_answer_renders_through_into_response() {
    let role = Role::ResourceServer {
        algs: Algs::new(["ES256"]).expect("valid"),
    };
    let bare = Answer::no_credentials()
        .into_axum(role.clone())
        .into_response();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], r#"DPoP algs="ES256""#);
    assert!(bare.headers().get("dpop-nonce").is_none());

    let fresh = Nonce::parse("fresh-1").expect("valid");
    let proof = Answer::invalid_dpop_proof()
        .with_nonce(fresh.clone())
        .into_axum(Role::AuthorizationServer)
        .into_response();
    assert_eq!(proof.status(), StatusCode::BAD_REQUEST);
    assert_eq!(one_nonce(&proof), fresh.as_str());
    assert_eq!(proof.headers()["cache-control"], "no-store");
    assert_eq!(
        body(proof).await,
        r#"{"error":"invalid_dpop_proof","error_description":"Invalid DPoP proof"}"#
    );
}
