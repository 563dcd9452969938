//! One simulated client: a P-256 key, a nonce store per server, and a loop of DPoP dances
//! (a token request, then resource requests with the bound token), each retried on
//! `use_dpop_nonce` as `dpop_nonce::client` advises. Along the way it re-sends some accepted
//! proofs to another replica, and sends some proofs with nonces no server issued; both must be
//! refused. In a run that kills Redis, it also re-sends the last proof accepted before the kill
//! once Redis is back, and names that proof's replay-cache key, so that the run can look for it
//! in Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::client::{NonceAdvice, NonceStore, Origin};
use dpop_nonce::replay::ReplayKey;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::http::{Method, Request, StatusCode};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::http::{Balancer, Connections};

/// `Basic` credentials of the demo client (`demo-client`, `demo-secret`).
const BASIC_AUTH: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";
/// Loop passes per client at most, whatever the duration.
const MAX_LOOPS: u64 = 1_000_000;
/// Pause after a failed token dance, so a broken server is not hammered.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(20);
/// Sends of the proof accepted before the kill at most, while the answer is that the replay
/// cache could not be reached (the replica still backing off), which says nothing.
const MAX_RESENDS: u32 = 5;
/// The server's `error_description` when its replay cache could not answer.
const CACHE_UNAVAILABLE: &str = "could not be checked for replay";

/// What every client shares: where to send, what to put in proofs, how long to run.
pub struct Plan {
    /// The public base URL (no trailing slash): the `htu` base and the nonce stores' origin.
    pub public_url: String,
    /// The `Host` header: the public URL's authority.
    pub host: String,
    pub resources_per_token: u32,
    /// Every this many accepted proofs, one is re-sent to another replica (0: never).
    pub replay_every: u64,
    /// Every this many dances, a probe with an unknown nonce goes first (0: never).
    pub unknown_every: u64,
    /// Requests per dance at most: the first and its retries.
    pub max_attempts: u32,
    pub start: Instant,
    pub deadline: Instant,
    /// When Redis is killed, in a `--kill-redis` run.
    pub kill_at: Option<Instant>,
    /// The prefix of the servers' Redis keys, to name replay-cache keys.
    pub redis_prefix: String,
    /// Set once Redis answers again after the kill: restarted, or a replica promoted.
    pub recovered: AtomicBool,
}

/// Which endpoint a dance calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Resource,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Resource => "resource",
        }
    }
}

/// One dance: its time span from the run's start, the retries it took, and why it failed.
pub struct DanceRecord {
    pub kind: Kind,
    pub start: Duration,
    pub end: Duration,
    pub retries: u32,
    pub failure: Option<String>,
}

/// A request that must be refused (a replay, an unknown nonce), and what it got.
pub struct ProbeRecord {
    pub kind: Kind,
    pub at: Duration,
    pub accepted: bool,
    /// `status error` of the answer, or `transport ...`.
    pub answer: String,
    /// The answer's `error_description`, if any.
    pub description: Option<String>,
}

/// Everything one client saw.
#[derive(Default)]
pub struct ClientLog {
    pub dances: Vec<DanceRecord>,
    pub replays: Vec<ProbeRecord>,
    pub unknown: Vec<ProbeRecord>,
    /// The last proof accepted before Redis was killed, sent again once it is back: the last
    /// answer (an answer saying the replay cache could not be reached is followed by another
    /// send, up to five).
    pub across_restart: Vec<ProbeRecord>,
    /// How many sends that took.
    pub across_restart_sends: u32,
    /// The Redis key under which the servers recorded that proof's `jti`.
    pub before_kill_replay_key: Option<String>,
    /// Latency of each dance request, in microseconds.
    pub latencies_us: Vec<u32>,
}

#[derive(Clone, Copy)]
enum Target<'t> {
    Token,
    Resource { token: &'t str, ath: &'t str },
}

impl Target<'_> {
    fn kind(self) -> Kind {
        match self {
            Self::Token => Kind::Token,
            Self::Resource { .. } => Kind::Resource,
        }
    }
}

/// A P-256 key that signs ES256 proofs.
struct Key {
    signing: SigningKey,
    /// The base64url proof header: `typ`, `alg` and the public JWK.
    header: String,
    /// The JWK SHA-256 thumbprint (RFC 7638), base64url: the scope of its replay keys.
    thumbprint: String,
}

impl Key {
    fn generate() -> Self {
        let signing = loop {
            let mut secret = [0u8; 32];
            OsRng.try_fill_bytes(&mut secret).expect("OS random");
            // Out-of-range scalars are astronomically rare; draw again if one comes up.
            if let Ok(key) = SigningKey::from_slice(&secret) {
                break key;
            }
        };
        let point = signing.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c));
        let (x, y) = (coordinate(point.x()), coordinate(point.y()));
        let header = json!({
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": { "kty": "EC", "crv": "P-256", "x": x, "y": y },
        });
        // The required members in lexicographic order, without white space (RFC 7638 §3).
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            x.unwrap_or_default(),
            y.unwrap_or_default()
        );
        Self {
            signing,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
        }
    }

    /// The Redis key a server with key prefix `prefix` records `proof` under: the replay key
    /// of this key's thumbprint and the proof's `jti`, as the verifier derives it.
    fn replay_redis_key(&self, prefix: &str, proof: &str) -> Option<String> {
        let payload = proof.split('.').nth(1)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let jti = claims.get("jti")?.as_str()?;
        let key = ReplayKey::new(&self.thumbprint, jti).ok()?;
        Some(format!("{prefix}:replay:{key}"))
    }

    /// A proof for `htm` and `htu` with a fresh `jti` and `iat`.
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>) -> String {
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({ "jti": random_text(22), "htm": htm, "htu": htu, "iat": iat });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(ath) = ath {
            claims["ath"] = json!(ath);
        }
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// `len` random base64url characters.
fn random_text(len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = vec![0u8; len];
    OsRng.try_fill_bytes(&mut bytes).expect("OS random");
    bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte % 64)]))
        .collect()
}

/// A nonce no server issued. Every other one is `current` with its last 8 characters drawn at
/// random (the same shape, a different value); the others are random text of its length.
fn unknown_nonce(current: Option<&str>, nth: u64) -> String {
    let len = current.map_or(43, str::len).max(1);
    for _ in 0..8 {
        let fake = match current {
            Some(current) if nth % 2 == 1 && current.is_ascii() => {
                let keep = len.saturating_sub(8);
                format!("{}{}", &current[..keep], random_text(len - keep))
            }
            _ => random_text(len),
        };
        if Some(fake.as_str()) != current {
            return fake;
        }
    }
    random_text(len + 1)
}

/// `b64url(sha256(token))`.
fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn build_request(plan: &Plan, target: Target<'_>, proof: &str) -> Request<Full<Bytes>> {
    let request = match target {
        Target::Token => Request::builder()
            .method(Method::POST)
            .uri("/token")
            .header(AUTHORIZATION, BASIC_AUTH)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(HOST, &plan.host)
            .header("dpop", proof)
            .body(Full::from("grant_type=client_credentials")),
        Target::Resource { token, .. } => Request::builder()
            .method(Method::GET)
            .uri("/resource")
            .header(AUTHORIZATION, format!("DPoP {token}"))
            .header(HOST, &plan.host)
            .header("dpop", proof)
            .body(Full::default()),
    };
    // Every part is ASCII made here or by the server (tokens are base64url).
    request.expect("a well-formed request")
}

/// One client.
pub struct Client<'a> {
    plan: &'a Plan,
    balancer: &'a Balancer,
    key: Key,
    connections: Connections,
    /// The authorization server's and the resource server's nonces are separate (RFC 9449
    /// §9): one store for each, as a client of a separate AS and RS keeps, though both sit
    /// behind the same public origin here.
    as_store: NonceStore,
    rs_store: NonceStore,
    origin: Origin,
    token_url: String,
    resource_url: String,
    /// Dances and accepted proofs so far, per endpoint: the probes are spread over both.
    dances: [u64; 2],
    accepted: [u64; 2],
    replays: usize,
    /// The last proof accepted before the kill, with its endpoint and token.
    before_kill: Option<(Kind, String, Option<String>)>,
    /// Whether that proof still has to be re-sent after the recovery.
    resend_pending: bool,
    log: ClientLog,
}

impl<'a> Client<'a> {
    pub fn new(plan: &'a Plan, balancer: &'a Balancer) -> Result<Self, String> {
        let uri = plan
            .public_url
            .parse()
            .map_err(|err| format!("public URL: {err}"))?;
        let origin = Origin::from_uri(&uri).map_err(|err| format!("public URL: {err}"))?;
        Ok(Self {
            plan,
            balancer,
            key: Key::generate(),
            connections: Connections::new(balancer),
            as_store: NonceStore::new(),
            rs_store: NonceStore::new(),
            origin,
            token_url: format!("{}/token", plan.public_url),
            resource_url: format!("{}/resource", plan.public_url),
            dances: [0; 2],
            accepted: [0; 2],
            replays: 0,
            before_kill: None,
            resend_pending: true,
            log: ClientLog::default(),
        })
    }

    fn since_start(&self) -> Duration {
        self.plan.start.elapsed()
    }

    /// Dances until the deadline: a token, then resource requests with it; again.
    pub async fn run(mut self) -> ClientLog {
        let mut loops = 0;
        while Instant::now() < self.plan.deadline && loops < MAX_LOOPS {
            loops += 1;
            let Some(reply) = self.dance(Target::Token).await else {
                tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                continue;
            };
            let token = serde_json::from_slice::<serde_json::Value>(&reply)
                .ok()
                .and_then(|json| json.get("access_token")?.as_str().map(str::to_owned));
            let Some(token) = token else {
                tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                continue;
            };
            let token_ath = ath(&token);
            for _ in 0..self.plan.resources_per_token {
                if Instant::now() >= self.plan.deadline {
                    break;
                }
                let target = Target::Resource {
                    token: &token,
                    ath: &token_ath,
                };
                let _ = self.dance(target).await;
            }
        }
        if let Some((_, proof, _)) = &self.before_kill {
            self.log.before_kill_replay_key =
                self.key.replay_redis_key(&self.plan.redis_prefix, proof);
        }
        self.log
    }

    /// One call with its nonce retries; the body of the 200 answer, if one came.
    async fn dance(&mut self, target: Target<'_>) -> Option<Bytes> {
        let kind = target.kind();
        let slot = kind as usize;
        self.dances[slot] += 1;
        if self.plan.unknown_every > 0 && self.dances[slot].is_multiple_of(self.plan.unknown_every)
        {
            self.probe_unknown(target).await;
        }
        let start = self.since_start();
        let store = match kind {
            Kind::Token => &self.as_store,
            Kind::Resource => &self.rs_store,
        };
        let mut nonce = store.get(&self.origin).map(|n| n.as_str().to_owned());
        let mut sends = 0;
        let failure = loop {
            if sends == self.plan.max_attempts {
                break format!("use_dpop_nonce after {} retries", sends - 1);
            }
            sends += 1;
            let replica = self.balancer.pick();
            let proof = self.proof(target, nonce.as_deref());
            let request = build_request(self.plan, target, &proof);
            let sent_at = Instant::now();
            let result = self.connections.send(self.balancer, replica, request).await;
            let micros = sent_at.elapsed().as_micros();
            self.log
                .latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
            let reply = match result {
                Ok(reply) => reply,
                Err(message) => break format!("transport {message}"),
            };
            let advice = store.observe(
                &self.origin,
                reply.status,
                &reply.headers,
                &reply.body,
                nonce.as_deref(),
            );
            if reply.status == StatusCode::OK {
                self.record(kind, start, sends - 1, None);
                if self.plan.kill_at.is_some_and(|kill| Instant::now() < kill) {
                    let token = match target {
                        Target::Token => None,
                        Target::Resource { token, .. } => Some(token.to_owned()),
                    };
                    self.before_kill = Some((kind, proof.clone(), token));
                }
                self.accepted[slot] += 1;
                if self.plan.replay_every > 0
                    && self.accepted[slot].is_multiple_of(self.plan.replay_every)
                {
                    self.replay(target, &proof, replica).await;
                }
                // A dance just passed after the recovery: the replicas reach Redis again.
                if self.resend_pending && self.plan.recovered.load(Ordering::Relaxed) {
                    self.resend_across_restart().await;
                }
                return Some(reply.body);
            }
            match advice {
                NonceAdvice::Retry { nonce: fresh } => nonce = Some(fresh.as_str().to_owned()),
                _ => break format!("{} {}", reply.status.as_u16(), reply.error_code()),
            }
        };
        self.record(kind, start, sends.saturating_sub(1), Some(failure));
        None
    }

    fn proof(&self, target: Target<'_>, nonce: Option<&str>) -> String {
        match target {
            Target::Token => self.key.proof("POST", &self.token_url, nonce, None),
            Target::Resource { ath, .. } => {
                self.key.proof("GET", &self.resource_url, nonce, Some(ath))
            }
        }
    }

    fn record(&mut self, kind: Kind, start: Duration, retries: u32, failure: Option<String>) {
        let end = self.since_start();
        self.log.dances.push(DanceRecord {
            kind,
            start,
            end,
            retries,
            failure,
        });
    }

    /// Re-sends an accepted proof, unchanged, to another replica.
    async fn replay(&mut self, target: Target<'_>, proof: &str, replica: usize) {
        self.replays += 1;
        let other = self.balancer.other_than(replica, self.replays);
        let request = build_request(self.plan, target, proof);
        let result = self.connections.send(self.balancer, other, request).await;
        let record = self.probe_record(target.kind(), result);
        self.log.replays.push(record);
    }

    /// Re-sends the last proof accepted before Redis was killed, now that Redis is back and a
    /// dance has passed since. An answer that the replay cache could not be reached (that
    /// replica still backing off) leaves it pending for the next passed dance, up to
    /// [`MAX_RESENDS`] sends; any other answer is final.
    async fn resend_across_restart(&mut self) {
        let Some((kind, proof, token)) = self.before_kill.clone() else {
            self.resend_pending = false;
            return;
        };
        let token_ath = token.as_deref().map(ath).unwrap_or_default();
        let target = match &token {
            None => Target::Token,
            Some(token) => Target::Resource {
                token,
                ath: &token_ath,
            },
        };
        let request = build_request(self.plan, target, &proof);
        let replica = self.balancer.pick();
        let result = self.connections.send(self.balancer, replica, request).await;
        let unavailable = result
            .as_ref()
            .is_ok_and(|reply| reply.error_description().contains(CACHE_UNAVAILABLE));
        let mut record = self.probe_record(kind, result);
        // Two refusals share this code: a replay, and a replay cache out of reach.
        if record.answer.ends_with("invalid_dpop_proof")
            && let Some(description) = record.description.take()
        {
            record.answer = format!("{} ({description})", record.answer);
        }
        self.log.across_restart_sends += 1;
        if unavailable && self.log.across_restart_sends < MAX_RESENDS {
            return;
        }
        self.resend_pending = false;
        self.log.across_restart.push(record);
    }

    /// Sends a proof whose nonce no server issued, to the next replica.
    async fn probe_unknown(&mut self, target: Target<'_>) {
        let store = match target.kind() {
            Kind::Token => &self.as_store,
            Kind::Resource => &self.rs_store,
        };
        let current = store.get(&self.origin);
        let nth = self.dances[target.kind() as usize] / self.plan.unknown_every.max(1);
        let fake = unknown_nonce(current.as_ref().map(|n| n.as_str()), nth);
        let proof = self.proof(target, Some(&fake));
        let request = build_request(self.plan, target, &proof);
        let replica = self.balancer.pick();
        let result = self.connections.send(self.balancer, replica, request).await;
        let record = self.probe_record(target.kind(), result);
        self.log.unknown.push(record);
    }

    fn probe_record(&self, kind: Kind, result: Result<crate::http::Reply, String>) -> ProbeRecord {
        let (accepted, answer, description) = match result {
            Ok(reply) => (
                reply.status == StatusCode::OK,
                format!("{} {}", reply.status.as_u16(), reply.error_code()),
                Some(reply.error_description()).filter(|text| !text.is_empty()),
            ),
            Err(message) => (false, format!("transport {message}"), None),
        };
        ProbeRecord {
            kind,
            at: self.since_start(),
            accepted,
            answer,
            description,
        }
    }
}
