//! Helpers for the end-to-end test: the server on a loopback port, a small HTTP client, P-256
//! keys that sign DPoP proofs, and a client that does the nonce dance with
//! `dpop_nonce::client`.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::client::{NonceAdvice, NonceStore, Origin};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::app;
use crate::stores::Backend;
use crate::tokens::TokenKey;

/// `Basic` credentials of the demo client.
pub const BASIC_AUTH: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";

/// How one replica of the server runs (the default: alone, in memory).
#[derive(Default)]
pub struct Replica {
    pub backend: Backend,
    pub token_secret: Option<[u8; 32]>,
    /// The URL clients use, shared by replicas behind one load balancer.
    pub public_url: Option<String>,
}

/// The example's router, served on a free loopback port until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    task: JoinHandle<()>,
}

impl Server {
    /// The server with in-memory state.
    pub async fn start(rotation_seconds: i64) -> Self {
        Self::start_with(rotation_seconds, Replica::default()).await
    }

    /// The server as one replica of several: its DPoP state, token secret and public URL.
    pub async fn start_with(rotation_seconds: i64, replica: Replica) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let base = replica
            .public_url
            .unwrap_or_else(|| format!("http://{addr}"));
        let mut config =
            app::Config::in_memory(base.clone(), time::Duration::seconds(rotation_seconds))
                .expect("config");
        config.backend = replica.backend;
        if let Some(secret) = replica.token_secret {
            config.token_key = TokenKey::new(&secret);
        }
        let router = app::router(config).expect("router");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self { addr, base, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the `Host` header set; the body may be empty.
    pub fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string())
    }

    /// A `client_credentials` token request with `Basic` authentication and a proof.
    pub fn token_request(&self, proof: &str) -> Request<Full<Bytes>> {
        self.request(Method::POST, "/token")
            .header(AUTHORIZATION, BASIC_AUTH)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(Full::from("grant_type=client_credentials"))
            .expect("token request")
    }

    /// A resource request with `Authorization: DPoP <token>` and a proof.
    pub fn resource_request(&self, token: &str, proof: &str) -> Request<Full<Bytes>> {
        self.request(Method::GET, "/resource")
            .header(AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Full::default())
            .expect("resource request")
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        send(self.addr, request).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }

    /// The OAuth `error` of the JSON body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {:?}", self.body))
            .to_owned()
    }

    /// The one `DPoP-Nonce` value, if the response carries one.
    pub fn nonce(&self) -> Option<String> {
        let value = self.headers.get("dpop-nonce")?;
        Some(value.to_str().expect("nonce is ASCII").to_owned())
    }

    /// The one `WWW-Authenticate` value.
    pub fn challenge(&self) -> String {
        let values: Vec<_> = self.headers.get_all("www-authenticate").iter().collect();
        assert_eq!(
            values.len(),
            1,
            "one WWW-Authenticate header: {:?}",
            self.headers
        );
        values[0].to_str().expect("challenge is ASCII").to_owned()
    }
}

/// Sends one request on a new connection. Every response is checked against RFC 9449 §8: at
/// most one `DPoP-Nonce` header, and its value `1*NQCHAR`.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("send");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let reply = Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    };
    let nonces: Vec<&HeaderValue> = reply.headers.get_all("dpop-nonce").iter().collect();
    assert!(
        nonces.len() <= 1,
        "more than one DPoP-Nonce: {:?}",
        reply.headers
    );
    if let Some(nonce) = nonces.first() {
        let bytes = nonce.as_bytes();
        assert!(
            nonce
                .to_str()
                .is_ok_and(|text| dpop_nonce::Nonce::parse(text).is_ok())
                && !bytes.is_empty(),
            "DPoP-Nonce is not 1*NQCHAR: {nonce:?}"
        );
        let cache_control = reply
            .headers
            .get("cache-control")
            .map(HeaderValue::as_bytes);
        assert_eq!(
            cache_control,
            Some(&b"no-store"[..]),
            "nonce responses are not cached"
        );
    }
    reply
}

/// `b64url(sha256(token))`, the `ath` of a proof that goes with `token`.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// 16 random bytes, base64url: a `jti`.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.try_fill_bytes(&mut bytes).expect("OS random");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A P-256 key pair that signs ES256 proofs.
pub struct Key {
    signing: SigningKey,
    /// The public key as a JWK.
    pub jwk: Value,
}

impl Key {
    pub fn generate() -> Self {
        let signing = loop {
            let mut secret = [0u8; 32];
            OsRng.try_fill_bytes(&mut secret).expect("OS random");
            // Out-of-range scalars are astronomically rare; draw again if one comes up.
            if let Ok(key) = SigningKey::from_slice(&secret) {
                break key;
            }
        };
        let point = signing.verifying_key().to_encoded_point(false);
        let coordinate =
            |c: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(c.expect("coordinate"));
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": coordinate(point.x()),
            "y": coordinate(point.y()),
        });
        Self { signing, jwk }
    }

    /// The RFC 7638 thumbprint, computed here independently of the server.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().expect("x"),
            self.jwk["y"].as_str().expect("y"),
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The standard proof header: `typ`, `alg` and this key.
    pub fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk })
    }

    /// A well-formed proof for `htm` and `htu`, fresh `jti` and `iat`.
    pub fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>) -> String {
        let mut claims = json!({ "jti": random_id(), "htm": htm, "htu": htu, "iat": now() });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(ath) = ath {
            claims["ath"] = json!(ath);
        }
        self.sign(&self.header(), &claims)
    }

    /// Signs any header and claims with this key, for proofs that are wrong on purpose.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// A DPoP client: one key, and the crate's nonce store for the server's origin.
pub struct Client<'a> {
    pub server: &'a Server,
    pub key: Key,
    pub store: NonceStore,
    origin: Origin,
}

/// The responses of one call: the first attempt, and the retry if there was one.
pub struct Dance {
    pub replies: Vec<Reply>,
}

impl Dance {
    pub fn retries(&self) -> usize {
        self.replies.len() - 1
    }

    pub fn last(&self) -> &Reply {
        self.replies.last().expect("at least one reply")
    }
}

impl<'a> Client<'a> {
    pub fn new(server: &'a Server) -> Self {
        let uri = server.base.parse().expect("base URI");
        Self {
            server,
            key: Key::generate(),
            store: NonceStore::new(),
            origin: Origin::from_uri(&uri).expect("origin"),
        }
    }

    /// Sends the request made by `build` with the stored nonce; when the crate's client module
    /// says the answer is `use_dpop_nonce`, sends it once more with the new nonce. Never more.
    pub async fn call(&self, build: impl Fn(Option<&str>) -> Request<Full<Bytes>>) -> Dance {
        let mut replies = Vec::new();
        let mut nonce = self.store.get(&self.origin).map(|n| n.as_str().to_owned());
        loop {
            let reply = self.server.send(build(nonce.as_deref())).await;
            let advice = self.store.observe(
                &self.origin,
                reply.status,
                &reply.headers,
                &reply.body,
                nonce.as_deref(),
            );
            replies.push(reply);
            match advice {
                NonceAdvice::Retry { nonce: fresh } if replies.len() == 1 => {
                    nonce = Some(fresh.as_str().to_owned());
                }
                _ => return Dance { replies },
            }
        }
    }

    /// The token request, with a nonce retry.
    pub async fn token(&self) -> Dance {
        let htu = self.server.url("/token");
        self.call(|nonce| {
            let proof = self.key.proof("POST", &htu, nonce, None);
            self.server.token_request(&proof)
        })
        .await
    }

    /// The resource request, with a nonce retry.
    pub async fn resource(&self, token: &str) -> Dance {
        let htu = self.server.url("/resource");
        let ath = ath(token);
        self.call(|nonce| {
            let proof = self.key.proof("GET", &htu, nonce, Some(&ath));
            self.server.resource_request(token, &proof)
        })
        .await
    }

    /// Gets an access token, checking the dance took exactly one retry.
    pub async fn access_token(&self) -> String {
        let dance = self.token().await;
        assert_eq!(
            dance.last().status,
            StatusCode::OK,
            "token: {:?}",
            dance.last()
        );
        dance.last().json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The same client (key and nonces) talking to `server`, another replica of the same
    /// public URL.
    pub fn switch_to<'b>(self, server: &'b Server) -> Client<'b> {
        assert_eq!(
            server.base, self.server.base,
            "replicas share the public URL"
        );
        Client {
            server,
            key: self.key,
            store: self.store,
            origin: self.origin,
        }
    }

    /// The nonce the store holds for the server.
    pub fn stored_nonce(&self) -> Option<String> {
        self.store.get(&self.origin).map(|n| n.as_str().to_owned())
    }
}
