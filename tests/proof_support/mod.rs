//! Shared pieces of the proof tests: signing keys, a proof builder, and a verifier on a manual
//! clock whose replay cache counts its inserts.

#![allow(dead_code)]

pub mod keys;

use dpop_nonce::NonceSource as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::proof::{
    Algorithm, Algorithms, Backend, ProofRequest, Reason, Rejection, VerifiedProof, Verifier,
};
use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use dpop_nonce::{InMemoryNonceSource, ManualClock, Nonce, NonceValidator, Requirement};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use time::Duration;

/// The time the fixture's clock shows, in seconds since the epoch.
pub const NOW: i64 = 1_700_000_000;
/// The `htu` of the fixture's endpoint.
pub const HTU: &str = "https://server.example.com/token";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A deterministic RNG for PSS salts (tests only).
struct CountingRng(u64);

impl rsa::rand_core::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = (self.next_u64() >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for CountingRng {}

/// A signing key of one of the supported types.
pub enum Key {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl Key {
    /// A fixed P-256 key; `seed` picks which.
    pub fn p256(seed: u8) -> Self {
        let mut secret = [seed; 32];
        secret[0] = 1;
        Self::P256(p256::ecdsa::SigningKey::from_slice(&secret).expect("valid scalar"))
    }

    pub fn ed25519(seed: u8) -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    pub fn rsa(pem: &str) -> Self {
        Self::Rsa(Box::new(
            rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("test key parses"),
        ))
    }

    pub fn rsa2048() -> Self {
        Self::rsa(keys::RSA_2048_PEM)
    }

    /// The public JWK, members in a non-canonical order.
    pub fn jwk(&self) -> Value {
        match self {
            Self::P256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "x": b64(point.x().expect("uncompressed")),
                    "y": b64(point.y().expect("uncompressed")),
                    "crv": "P-256",
                })
            }
            Self::Ed25519(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(key.verifying_key().as_bytes()),
            }),
            Self::Rsa(key) => json!({
                "kty": "RSA",
                "n": b64(key.n().to_bytes_be()),
                "e": b64(key.e().to_bytes_be()),
            }),
        }
    }

    /// The natural `alg` for the key.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::P256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
            Self::Rsa(_) => "RS256",
        }
    }

    /// Signs `input` the way `alg` asks (for RSA, RS256 or PS256).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
        match self {
            Self::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            Self::Ed25519(key) => key.sign(input).to_bytes().to_vec(),
            Self::Rsa(key) => match alg {
                "PS256" => rsa::pss::BlindedSigningKey::<sha2::Sha256>::new((**key).clone())
                    .sign_with_rng(&mut CountingRng(7), input)
                    .to_vec(),
                _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**key).clone())
                    .sign(input)
                    .to_vec(),
            },
        }
    }
}

/// A proof under construction: header and claims as JSON text, so tests can write JSON that a
/// map cannot hold (duplicate members).
pub struct Proof {
    pub header: String,
    pub claims: String,
    pub alg: String,
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A fresh `jti`.
pub fn jti() -> String {
    format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed))
}

impl Proof {
    /// A valid proof for `POST HTU` at `NOW` with `nonce`, signed by `key` with its natural alg.
    pub fn new(key: &Key, nonce: Option<&str>) -> Self {
        let mut claims = json!({
            "jti": jti(),
            "htm": "POST",
            "htu": HTU,
            "iat": NOW,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        Self::from_values(key, key.alg(), claims)
    }

    pub fn from_values(key: &Key, alg: &str, claims: Value) -> Self {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()});
        Self {
            header: header.to_string(),
            claims: claims.to_string(),
            alg: alg.to_owned(),
        }
    }

    /// Edits the header as a JSON value.
    pub fn header(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        let mut value: Value = serde_json::from_str(&self.header).expect("header is JSON");
        edit(&mut value);
        self.header = value.to_string();
        self
    }

    /// Edits the claims as a JSON value.
    pub fn claims(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        let mut value: Value = serde_json::from_str(&self.claims).expect("claims are JSON");
        edit(&mut value);
        self.claims = value.to_string();
        self
    }

    /// The compact JWS, signed by `key` (with `self.alg`, as the key understands it).
    pub fn sign(&self, key: &Key) -> String {
        let input = format!("{}.{}", b64(&self.header), b64(&self.claims));
        let signature = key.sign(&self.alg, input.as_bytes());
        format!("{input}.{}", b64(signature))
    }
}

/// A replay cache that counts the inserts that reach it.
#[derive(Default)]
pub struct CountingCache<C> {
    pub inner: C,
    pub inserts: AtomicUsize,
}

impl<C: ReplayCache> ReplayCache for CountingCache<C> {
    fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(key)
    }

    fn lifetime(&self) -> time::Duration {
        self.inner.lifetime()
    }
}

pub type Source = InMemoryNonceSource<Arc<ManualClock>>;
pub type Cache = CountingCache<InMemoryReplayCache<Arc<ManualClock>>>;

/// A verifier for `POST HTU`, nonces required, on a manual clock at `NOW`.
pub struct Fixture {
    pub clock: Arc<ManualClock>,
    pub source: Arc<Source>,
    pub cache: Arc<Cache>,
    pub verifier: Verifier<Arc<Source>, Arc<Cache>, Arc<ManualClock>>,
}

impl Fixture {
    pub fn new(backend: Backend) -> Self {
        Self::with(backend, Requirement::Required)
    }

    pub fn with(backend: Backend, requirement: Requirement) -> Self {
        Self::build(backend, requirement, Algorithms::new(Algorithm::ALL))
    }

    pub fn build(backend: Backend, requirement: Requirement, algorithms: Algorithms) -> Self {
        let clock = Arc::new(ManualClock::at_unix(Duration::seconds(NOW)));
        let source = Arc::new(
            InMemoryNonceSource::builder()
                .clock(Arc::clone(&clock))
                .build()
                .expect("source"),
        );
        let lifetime = source.max_nonce_lifetime();
        let cache = Arc::new(CountingCache {
            inner: InMemoryReplayCache::builder(lifetime)
                .clock(Arc::clone(&clock))
                .build()
                .expect("cache"),
            inserts: AtomicUsize::new(0),
        });
        let validator = NonceValidator::new(Arc::clone(&source)).with_requirement(requirement);
        let verifier = Verifier::builder(validator, Arc::clone(&cache))
            .backend(backend)
            .algorithms(algorithms)
            .clock(Arc::clone(&clock))
            .build()
            .expect("verifier");
        Self {
            clock,
            source,
            cache,
            verifier,
        }
    }

    /// The nonce the server hands out now.
    pub fn nonce(&self) -> Nonce {
        self.verifier.validator().issue()
    }

    pub fn inserts(&self) -> usize {
        self.cache.inserts.load(Ordering::SeqCst)
    }

    /// Verifies `proof` as the one `DPoP` header of `POST HTU`.
    pub fn verify(&self, proof: &str) -> Result<VerifiedProof, Rejection> {
        self.verifier
            .verify(&ProofRequest::new("POST", HTU, [proof]))
    }

    /// Verifies `request`, asserting that a refusal leaves the replay cache untouched.
    pub fn verify_request(&self, request: &ProofRequest<'_>) -> Result<VerifiedProof, Rejection> {
        let before = self.inserts();
        let result = self.verifier.verify(request);
        if let Err(refused) = &result {
            let expected = usize::from(matches!(
                refused.reason(),
                Reason::Replayed | Reason::ReplayCacheFull | Reason::ReplayCacheUnavailable
            ));
            assert_eq!(self.inserts(), before + expected, "{refused}");
        }
        result
    }

    /// Asserts `proof` is refused for `reason`, without touching the replay cache.
    pub fn refuses(&self, proof: &str, reason: Reason) {
        let _refused = self.refusal(proof, reason);
    }

    /// [`Fixture::refuses`], handing the rejection back.
    pub fn refusal(&self, proof: &str, reason: Reason) -> Rejection {
        let before = self.inserts();
        let refused = self.verify(proof).expect_err("the proof must be refused");
        assert_eq!(refused.reason(), reason, "{refused}");
        assert_eq!(
            self.inserts(),
            before,
            "a refused proof reached the replay cache"
        );
        refused
    }
}
