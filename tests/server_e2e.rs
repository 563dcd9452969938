//! End-to-end test of the reference server (`examples/server`) over real HTTP.
//!
//! The example's router is compiled into this test from its source file, and served on a
//! loopback port: the test exercises the very code the example runs,
//! without building or locating a second binary. Proofs are signed with P-256 keys made here;
//! the client side of the nonce dance (nonce store, retry decision) is `dpop_nonce::client`.
//!
//! Every response goes through `e2e_support::send`, which asserts that it carries at most one
//! `DPoP-Nonce`, that the value is `1*NQCHAR`, and that it is not cacheable.
//!
//! The resource server's refusals come from `DpopLayer`: 401 with a `WWW-Authenticate: DPoP`
//! challenge that names the error, exactly one `DPoP-Nonce` on every refusal, and no body.

#[path = "../examples/server/app.rs"]
mod app;
mod e2e_support;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "../examples/server/stores.rs"]
mod stores;
#[path = "../examples/server/tokens.rs"]
mod tokens;

use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e_support::{BASIC_AUTH, Client, Key, Replica, Reply, Server, ath, now, random_id};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::http::{HeaderValue, Method, StatusCode};
use redis_server::RedisServer;
use serde_json::json;
use sha2::Digest as _;
use stores::Backend;

const ROTATION: i64 = 300;

fn assert_use_dpop_nonce_as(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert_eq!(reply.error(), "use_dpop_nonce");
    reply.nonce().expect("a DPoP-Nonce with use_dpop_nonce")
}

fn assert_use_dpop_nonce_rs(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    let challenge = reply.challenge();
    assert!(
        challenge.starts_with(r#"DPoP error="use_dpop_nonce""#),
        "challenge: {challenge}"
    );
    assert!(
        challenge.contains(r#"algs="ES256"#),
        "challenge: {challenge}"
    );
    reply.nonce().expect("a DPoP-Nonce with use_dpop_nonce")
}

/// A resource-server refusal: 401, the error in the challenge, and a nonce for the next proof.
fn assert_rs_error(reply: &Reply, error: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    let challenge = reply.challenge();
    assert!(
        challenge.starts_with(&format!(r#"DPoP error="{error}""#)),
        "challenge: {challenge}"
    );
    assert!(reply.nonce().is_some(), "every refusal carries a nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_names_the_endpoints_and_algorithms() {
    let server = Server::start(ROTATION).await;
    let reply = server
        .send(
            server
                .request(Method::GET, "/.well-known/oauth-authorization-server")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let metadata = reply.json();
    assert_eq!(metadata["issuer"], server.base);
    assert_eq!(metadata["token_endpoint"], server.url("/token"));
    let algs = metadata["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&json!("ES256")), "{algs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_resource_each_take_exactly_one_retry() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);

    let token = client.token().await;
    assert_eq!(token.retries(), 1);
    let as_nonce = assert_use_dpop_nonce_as(&token.replies[0]);
    let granted = token.last();
    assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
    let body = granted.json();
    assert_eq!(body["token_type"], "DPoP");
    assert!(body["expires_in"].as_i64().is_some_and(|s| s > 0), "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(client.stored_nonce().as_deref(), Some(as_nonce.as_str()));

    // The client holds the authorization server's nonce; the resource server refuses it and
    // hands out its own.
    let resource = client.resource(&access_token).await;
    assert_eq!(resource.retries(), 1);
    let rs_nonce = assert_use_dpop_nonce_rs(&resource.replies[0]);
    assert_ne!(rs_nonce, as_nonce);
    assert_eq!(
        resource.last().status,
        StatusCode::OK,
        "{:?}",
        resource.last()
    );
    let body = resource.last().json();
    assert_eq!(body["client_id"], "demo-client");
    assert_eq!(
        body["jkt"],
        client.key.thumbprint(),
        "token bound to the key"
    );

    // With the resource server's nonce in the store, the next call needs no retry.
    let again = client.resource(&access_token).await;
    assert_eq!(again.retries(), 0);
    assert_eq!(again.last().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_nonce_gets_a_fresh_different_nonce() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);
    let token_url = server.url("/token");

    for garbage in [
        "not-a-nonce-of-this-server",
        "bad nonce",
        "ü",
        &"x".repeat(600),
    ] {
        let proof = client.key.proof("POST", &token_url, Some(garbage), None);
        let reply = server.send(server.token_request(&proof)).await;
        let fresh = assert_use_dpop_nonce_as(&reply);
        assert_ne!(fresh, garbage);
        // The fresh nonce works at once.
        let proof = client.key.proof("POST", &token_url, Some(&fresh), None);
        let reply = server.send(server.token_request(&proof)).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }

    let access_token = client.access_token().await;
    let proof = client.key.proof(
        "GET",
        &server.url("/resource"),
        Some("garbage"),
        Some(&ath(&access_token)),
    );
    let reply = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    let fresh = assert_use_dpop_nonce_rs(&reply);
    assert_ne!(fresh, "garbage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_nonce_after_one_was_provided_is_refused() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);
    let access_token = client.access_token().await;
    assert!(
        client.stored_nonce().is_some(),
        "the server provided a nonce"
    );

    // RFC 9449 §11.3: a proof without a nonce is refused, with a nonce to use.
    let proof = client.key.proof("POST", &server.url("/token"), None, None);
    let reply = server.send(server.token_request(&proof)).await;
    assert_use_dpop_nonce_as(&reply);
    assert_eq!(
        reply.json()["error_description"],
        "Authorization server requires nonce in DPoP proof"
    );

    let resource = client.resource(&access_token).await;
    assert_eq!(resource.last().status, StatusCode::OK);
    let proof = client.key.proof(
        "GET",
        &server.url("/resource"),
        None,
        Some(&ath(&access_token)),
    );
    let reply = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    assert_use_dpop_nonce_rs(&reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_proof_is_refused() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);
    let access_token = client.access_token().await;
    let as_nonce = client.stored_nonce().unwrap();

    let proof = client
        .key
        .proof("POST", &server.url("/token"), Some(&as_nonce), None);
    let first = server.send(server.token_request(&proof)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let replay = server.send(server.token_request(&proof)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.error(), "invalid_dpop_proof");

    let resource = client.resource(&access_token).await;
    assert_eq!(resource.last().status, StatusCode::OK);
    let rs_nonce = client.stored_nonce().unwrap();
    let proof = client.key.proof(
        "GET",
        &server.url("/resource"),
        Some(&rs_nonce),
        Some(&ath(&access_token)),
    );
    let first = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let replay = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    assert_rs_error(&replay, "invalid_dpop_proof");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_of_one_server_are_refused_by_the_other() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);
    let access_token = client.access_token().await;
    let as_nonce = client.stored_nonce().unwrap();

    let proof = client.key.proof(
        "GET",
        &server.url("/resource"),
        Some(&as_nonce),
        Some(&ath(&access_token)),
    );
    let reply = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    let rs_nonce = assert_use_dpop_nonce_rs(&reply);
    assert_ne!(rs_nonce, as_nonce);

    let proof = client
        .key
        .proof("POST", &server.url("/token"), Some(&rs_nonce), None);
    let reply = server.send(server.token_request(&proof)).await;
    assert_ne!(assert_use_dpop_nonce_as(&reply), rs_nonce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_another_keys_proof_is_invalid_token() {
    let server = Server::start(ROTATION).await;
    let owner = Client::new(&server);
    let access_token = owner.access_token().await;
    let resource = owner.resource(&access_token).await;
    assert_eq!(resource.last().status, StatusCode::OK);
    let rs_nonce = owner.stored_nonce().unwrap();

    // Another key, with the right `ath` and a valid resource-server nonce, or no nonce at all:
    // a fresh nonce cannot fix this, so the answer is invalid_token, never use_dpop_nonce.
    let thief = Key::generate();
    for nonce in [Some(rs_nonce.as_str()), None] {
        let proof = thief.proof(
            "GET",
            &server.url("/resource"),
            nonce,
            Some(&ath(&access_token)),
        );
        let reply = server
            .send(server.resource_request(&access_token, &proof))
            .await;
        assert_rs_error(&reply, "invalid_token");
    }

    // The owner's key with an `ath` for another token: the proof was made for another
    // request (RFC 9449 §4.3, check 12), so the proof is invalid, not the token.
    let proof = owner.key.proof(
        "GET",
        &server.url("/resource"),
        Some(&rs_nonce),
        Some(&ath("some-other-token")),
    );
    let reply = server
        .send(server.resource_request(&access_token, &proof))
        .await;
    assert_rs_error(&reply, "invalid_dpop_proof");

    // An unknown token.
    let proof = owner.key.proof(
        "GET",
        &server.url("/resource"),
        Some(&rs_nonce),
        Some(&ath("unknown")),
    );
    let reply = server
        .send(server.resource_request("unknown", &proof))
        .await;
    assert_rs_error(&reply, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_each_retry_at_most_once() {
    let server = std::sync::Arc::new(Server::start(ROTATION).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let server = std::sync::Arc::clone(&server);
        tasks.spawn(async move {
            let client = Client::new(&server);
            let token = client.token().await;
            assert!(token.retries() <= 1, "token retries: {}", token.retries());
            assert_eq!(token.last().status, StatusCode::OK, "{:?}", token.last());
            let access_token = token.last().json()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            let resource = client.resource(&access_token).await;
            assert!(
                resource.retries() <= 1,
                "resource retries: {}",
                resource.retries()
            );
            assert_eq!(
                resource.last().status,
                StatusCode::OK,
                "{:?}",
                resource.last()
            );
            (token.retries(), resource.retries())
        });
    }
    let mut finished = 0;
    while let Some(outcome) = tasks.join_next().await {
        let (token_retries, resource_retries) = outcome.expect("client task");
        // A new client has no nonce, so its first call at each server is refused once.
        assert_eq!((token_retries, resource_retries), (1, 1));
        finished += 1;
    }
    assert_eq!(finished, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_nonce_is_accepted_with_a_refresh() {
    const SHORT: i64 = 2;
    let server = Server::start(SHORT).await;
    let client = Client::new(&server);
    client.access_token().await;
    let issued = client.stored_nonce().unwrap();

    // Wait for the start of the next rotation window, plus a margin: the nonce is now the
    // previous one, still accepted, and the success carries the current nonce (§8.2).
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let window_ms = i128::from(SHORT) * 1000;
    let wait_ms = window_ms - now_ms.rem_euclid(window_ms) + 200;
    tokio::time::sleep(StdDuration::from_millis(u64::try_from(wait_ms).unwrap())).await;

    let token = client.token().await;
    assert_eq!(token.retries(), 0);
    let granted = token.last();
    assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
    let refresh = granted.nonce().expect("a refresh nonce on the 200");
    assert_ne!(refresh, issued);
    assert_eq!(client.stored_nonce(), Some(refresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_client_authentication_methods_and_wrong_secrets() {
    let server = Server::start(ROTATION).await;
    let key = Key::generate();
    let token_url = server.url("/token");
    let post = |authorization: Option<&str>, form: &str| {
        let mut request = server
            .request(Method::POST, "/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("dpop", key.proof("POST", &token_url, None, None));
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        request.body(Full::from(form.to_owned())).unwrap()
    };

    // Right credentials reach the nonce check, either way.
    let reply = server
        .send(post(Some(BASIC_AUTH), "grant_type=client_credentials"))
        .await;
    assert_use_dpop_nonce_as(&reply);
    let form = "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret";
    let reply = server.send(post(None, form)).await;
    assert_use_dpop_nonce_as(&reply);

    // Wrong ones get invalid_client.
    let wrong_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("demo-client:nope")
    );
    let reply = server
        .send(post(Some(&wrong_basic), "grant_type=client_credentials"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
    let form = "grant_type=client_credentials&client_id=demo-client&client_secret=nope";
    let reply = server.send(post(None, form)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
    let reply = server
        .send(post(None, "grant_type=client_credentials"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proofs_get_invalid_dpop_proof() {
    let server = Server::start(ROTATION).await;
    let client = Client::new(&server);
    client.access_token().await;
    let nonce = client.stored_nonce().unwrap();
    let key = &client.key;
    let token_url = server.url("/token");
    let claims = |htm: &str, htu: &str, iat: i64| json!({ "jti": random_id(), "htm": htm, "htu": htu, "iat": iat, "nonce": nonce });
    let good = claims("POST", &token_url, now());
    let mut no_jwk = key.header();
    no_jwk.as_object_mut().unwrap().remove("jwk");
    let mut private_jwk = key.header();
    private_jwk["jwk"]["d"] = json!("AAAA");
    let mut wrong_typ = key.header();
    wrong_typ["typ"] = json!("jwt");
    let mut hs256 = key.header();
    hs256["alg"] = json!("HS256");
    let mut none = key.header();
    none["alg"] = json!("none");
    let mut no_jti = good.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    let other_key = Key::generate();
    let mut foreign_jwk = key.header();
    foreign_jwk["jwk"] = other_key.jwk.clone();
    let header_b64 = URL_SAFE_NO_PAD.encode(key.header().to_string());
    let claims_b64 = URL_SAFE_NO_PAD.encode(good.to_string());

    let cases: Vec<(&str, String)> = vec![
        ("no jwk", key.sign(&no_jwk, &good)),
        ("private jwk", key.sign(&private_jwk, &good)),
        ("wrong typ", key.sign(&wrong_typ, &good)),
        ("HS256", key.sign(&hs256, &good)),
        (
            "alg none",
            format!("{}.{claims_b64}.", URL_SAFE_NO_PAD.encode(none.to_string())),
        ),
        ("signed by another key", key.sign(&foreign_jwk, &good)),
        ("bad signature", format!("{header_b64}.{claims_b64}.AAAA")),
        (
            "header not JSON",
            format!("{}.{claims_b64}.AAAA", URL_SAFE_NO_PAD.encode("{oops")),
        ),
        (
            "claims not JSON",
            key.sign(&key.header(), &json!("just a string")),
        ),
        ("no jti", key.sign(&key.header(), &no_jti)),
        ("two segments", format!("{header_b64}.{claims_b64}")),
        (
            "wrong htm",
            key.sign(&key.header(), &claims("GET", &token_url, now())),
        ),
        (
            "wrong htu",
            key.sign(
                &key.header(),
                &claims("POST", &server.url("/tokens"), now()),
            ),
        ),
        (
            "iat too old",
            key.sign(&key.header(), &claims("POST", &token_url, now() - 600)),
        ),
        (
            "iat ahead",
            key.sign(&key.header(), &claims("POST", &token_url, now() + 600)),
        ),
        ("huge", "a".repeat(64 * 1024)),
    ];
    for (name, proof) in cases {
        let reply = server.send(server.token_request(&proof)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}: {reply:?}");
        assert_eq!(reply.error(), "invalid_dpop_proof", "{name}");
    }

    // htu is compared after normalization: query, fragment, case and default port do not count.
    let htu = format!("HTTP://{}/token?x=1#f", server.addr);
    let proof = key.proof("POST", &htu, Some(&nonce), None);
    let reply = server.send(server.token_request(&proof)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clean_json_error() {
    let server = Server::start(ROTATION).await;
    let key = Key::generate();
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let token = |content_type: &str, body: &str| {
        server
            .request(Method::POST, "/token")
            .header(AUTHORIZATION, BASIC_AUTH)
            .header(CONTENT_TYPE, content_type)
            .header("dpop", &proof)
            .body(Full::from(body.to_owned()))
            .unwrap()
    };

    let cases = vec![
        (
            "JSON body",
            token("application/json", r#"{"grant_type":"#),
            400,
            "invalid_request",
        ),
        (
            "repeated parameter",
            token(
                "application/x-www-form-urlencoded",
                "grant_type=client_credentials&grant_type=client_credentials",
            ),
            400,
            "invalid_request",
        ),
        (
            "no grant",
            token("application/x-www-form-urlencoded", "a=%FF%FE"),
            400,
            "invalid_request",
        ),
        (
            "other grant",
            token("application/x-www-form-urlencoded", "grant_type=password"),
            400,
            "unsupported_grant_type",
        ),
        (
            "non-UTF-8 DPoP header",
            server
                .request(Method::POST, "/token")
                .header(AUTHORIZATION, BASIC_AUTH)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("dpop", HeaderValue::from_bytes(b"ey\xff\xfe.a.b").unwrap())
                .body(Full::from("grant_type=client_credentials"))
                .unwrap(),
            400,
            "invalid_dpop_proof",
        ),
        (
            "two DPoP headers",
            server
                .request(Method::POST, "/token")
                .header(AUTHORIZATION, BASIC_AUTH)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("dpop", &proof)
                .header("dpop", &proof)
                .body(Full::from("grant_type=client_credentials"))
                .unwrap(),
            400,
            "invalid_dpop_proof",
        ),
        (
            "non-UTF-8 Basic credentials",
            server
                .request(Method::POST, "/token")
                .header(
                    AUTHORIZATION,
                    HeaderValue::from_bytes(b"Basic \xff\xff").unwrap(),
                )
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("dpop", &proof)
                .body(Full::from("grant_type=client_credentials"))
                .unwrap(),
            401,
            "invalid_client",
        ),
        (
            "non-UTF-8 access token",
            server
                .request(Method::GET, "/resource")
                .header(
                    AUTHORIZATION,
                    HeaderValue::from_bytes(b"DPoP \xff\xfe").unwrap(),
                )
                .header("dpop", &proof)
                .body(Full::default())
                .unwrap(),
            401,
            "invalid_token",
        ),
        (
            "huge access token",
            server
                .request(Method::GET, "/resource")
                .header(AUTHORIZATION, format!("DPoP {}", "a".repeat(64 * 1024)))
                .header("dpop", &proof)
                .body(Full::default())
                .unwrap(),
            401,
            "invalid_token",
        ),
        (
            "Bearer scheme",
            server
                .request(Method::GET, "/resource")
                .header(AUTHORIZATION, "Bearer abc")
                .header("dpop", &proof)
                .body(Full::default())
                .unwrap(),
            401,
            "invalid_token",
        ),
        (
            // The layer asks for the token's binding before it reads the proof.
            "unknown token, no proof",
            server
                .request(Method::GET, "/resource")
                .header(AUTHORIZATION, "DPoP abc")
                .body(Full::default())
                .unwrap(),
            401,
            "invalid_token",
        ),
        (
            "unknown path",
            server
                .request(Method::GET, "/nope")
                .body(Full::default())
                .unwrap(),
            404,
            "not_found",
        ),
        (
            "wrong method",
            server
                .request(Method::GET, "/token")
                .body(Full::<Bytes>::default())
                .unwrap(),
            405,
            "invalid_request",
        ),
    ];
    for (name, request, status, error) in cases {
        let resource = request.uri().path() == "/resource";
        let reply = server.send(request).await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {reply:?}");
        if resource {
            // The layer's answer: the error in the challenge, no body.
            assert_rs_error(&reply, error);
            assert!(reply.body.is_empty(), "{name}: {reply:?}");
        } else {
            assert_eq!(reply.error(), error, "{name}");
        }
        if status == 401 && reply.headers.contains_key("www-authenticate") {
            assert!(reply.challenge().len() < 512, "{name}: bounded challenge");
        }
    }

    // No credentials at all: the bare challenge (RFC 6750 §3.1), with a nonce for the proof.
    let reply = server
        .send(
            server
                .request(Method::GET, "/resource")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    let challenge = reply.challenge();
    assert!(
        challenge.starts_with("DPoP algs="),
        "challenge: {challenge}"
    );
    assert!(!challenge.contains("error="), "challenge: {challenge}");
    assert!(reply.nonce().is_some(), "{reply:?}");

    // The server is still up and serving.
    let client = Client::new(&server);
    let access_token = client.access_token().await;

    // A valid token without a proof.
    let reply = server
        .send(
            server
                .request(Method::GET, "/resource")
                .header(AUTHORIZATION, format!("DPoP {access_token}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_rs_error(&reply, "invalid_dpop_proof");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_proofs_are_verified() {
    // The key type by both of its algorithm names (RFC 8037 and RFC 9864).
    for alg in ["EdDSA", "Ed25519"] {
        ed25519_proofs_are_verified(alg).await;
    }
}

async fn ed25519_proofs_are_verified(alg: &str) {
    use ed25519_dalek::Signer as _;

    let server = Server::start(ROTATION).await;
    let mut secret = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut secret).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let header = json!({
        "typ": "dpop+jwt",
        "alg": alg,
        "jwk": { "kty": "OKP", "crv": "Ed25519", "x": x },
    });
    let proof = |htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>| {
        let claims = json!({
            "jti": random_id(), "htm": htm, "htu": htu, "iat": now(), "nonce": nonce, "ath": ath,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    };

    // `"nonce": null` is no nonce: refused with use_dpop_nonce, so the signature verified.
    let token_url = server.url("/token");
    let reply = server
        .send(server.token_request(&proof("POST", &token_url, None, None)))
        .await;
    let as_nonce = assert_use_dpop_nonce_as(&reply);
    let reply = server
        .send(server.token_request(&proof("POST", &token_url, Some(&as_nonce), None)))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let access_token = reply.json()["access_token"].as_str().unwrap().to_owned();

    let resource_url = server.url("/resource");
    let token_ath = ath(&access_token);
    let reply = server
        .send(server.resource_request(
            &access_token,
            &proof("GET", &resource_url, None, Some(&token_ath)),
        ))
        .await;
    let rs_nonce = assert_use_dpop_nonce_rs(&reply);
    let reply = server
        .send(server.resource_request(
            &access_token,
            &proof("GET", &resource_url, Some(&rs_nonce), Some(&token_ath)),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let thumbprint = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(reply.json()["jkt"], thumbprint);
}

/// Two replicas behind one public URL, with the same token secret and `backend`: a token
/// issued by one is accepted by the other, and so is a resource-server nonce one handed out.
/// With `shared_replay`, a proof accepted by one is refused by the other as a replay.
async fn replicas_share_state(backend: Backend, shared_replay: bool) {
    let token_secret = Some([7u8; 32]);
    let first = Server::start_with(
        ROTATION,
        Replica {
            backend: backend.clone(),
            token_secret,
            public_url: None,
        },
    )
    .await;
    let second = Server::start_with(
        ROTATION,
        Replica {
            backend,
            token_secret,
            public_url: Some(first.base.clone()),
        },
    )
    .await;
    // Room for the Redis sources' first background fetch.
    tokio::time::sleep(StdDuration::from_millis(300)).await;

    let client = Client::new(&first);
    let access_token = client.access_token().await;
    let resource = client.resource(&access_token).await;
    assert_eq!(resource.retries(), 1);
    assert_eq!(resource.last().status, StatusCode::OK);
    let rs_nonce = client.stored_nonce().unwrap();

    // The other replica: the token and the nonce are good there too.
    let client = client.switch_to(&second);
    let resource = client.resource(&access_token).await;
    assert_eq!(resource.retries(), 0, "{:?}", resource.replies);
    assert_eq!(resource.last().status, StatusCode::OK);
    assert_eq!(resource.last().json()["client_id"], "demo-client");

    let proof = client.key.proof(
        "GET",
        &first.url("/resource"),
        Some(&rs_nonce),
        Some(&ath(&access_token)),
    );
    let reply = first
        .send(first.resource_request(&access_token, &proof))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let replayed = second
        .send(second.resource_request(&access_token, &proof))
        .await;
    if shared_replay {
        assert_rs_error(&replayed, "invalid_dpop_proof");
    } else {
        assert_eq!(replayed.status, StatusCode::OK, "{replayed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_redis_share_nonces_tokens_and_replay() {
    let Some(redis) = RedisServer::start_or_skip("replicas_on_redis") else {
        return;
    };
    let backend = Backend {
        redis: Some(redis.client().into()),
        derived_secret: None,
    };
    replicas_share_state(backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_a_derived_secret_share_nonces_and_tokens() {
    let backend = Backend {
        redis: None,
        derived_secret: Some([9u8; 32]),
    };
    replicas_share_state(backend, false).await;

    let Some(redis) = RedisServer::start_or_skip("replicas_derived_on_redis") else {
        return;
    };
    let backend = Backend {
        redis: Some(redis.client().into()),
        derived_secret: Some([9u8; 32]),
    };
    replicas_share_state(backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_another_secret_are_refused() {
    let issuer = Server::start(ROTATION).await;
    let other = Server::start_with(
        ROTATION,
        Replica {
            public_url: Some(issuer.base.clone()),
            ..Replica::default()
        },
    )
    .await;
    let client = Client::new(&issuer);
    let access_token = client.access_token().await;
    let client = client.switch_to(&other);
    let dance = client.resource(&access_token).await;
    assert_rs_error(dance.last(), "invalid_token");

    // A token whose tag was tampered with is refused by its own issuer too.
    let client = client.switch_to(&issuer);
    let mut forged = access_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let dance = client.resource(&forged).await;
    assert_rs_error(dance.last(), "invalid_token");
}

#[test]
fn htu_normalization() {
    let cases = [
        (
            "https://server.example.com/token",
            Some("https://server.example.com/token"),
        ),
        (
            "HTTPS://Server.Example.COM:443/token?a=b#c",
            Some("https://server.example.com/token"),
        ),
        ("http://127.0.0.1:80", Some("http://127.0.0.1/")),
        (
            "http://127.0.0.1:8080/x#frag",
            Some("http://127.0.0.1:8080/x"),
        ),
        ("http://[::1]:443/", Some("http://[::1]:443/")),
        ("https://user@server.example.com/token", None),
        ("ftp://server.example.com/token", None),
        ("/token", None),
        ("https:///token", None),
    ];
    for (input, expected) in cases {
        assert_eq!(
            dpop_nonce::proof::normalize_htu(input).as_deref(),
            expected,
            "{input}"
        );
    }
}
