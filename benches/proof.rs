//! Whole-proof verification against the bare signature check, per backend and key type, and
//! against another verifier (the `dpop-verifier` crate) on the same kind of proof.
//!
//! "full" is `Verifier::verify` on a fresh proof: parsing, every check, the signature, the
//! in-memory nonce check and the in-memory replay insert (each proof has its own `jti`, so the
//! insert path is the real one). "signature" is `PublicJwk::verify_signature` alone, with the
//! same backend, on the same kind of proof. "dpop-verifier" is that crate's
//! `DpopVerifier::verify` (no nonce; a hash-set replay store) on an ES256 or EdDSA proof; it
//! has no RSA support.
//!
//! The replay cache stays at its steady state: the verifier runs on a manual clock that moves
//! one millisecond per proof, so entries expire as new ones come in and the cache never holds
//! more than one entry lifetime's worth (70,000) of them.
//!
//! ```text
//! cargo bench --features proof,proof-ring --bench proof -- --warm-up-time 1 --measurement-time 3
//! ```

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dpop_nonce::proof::{Algorithm, Algorithms, Backend, ProofRequest, PublicJwk, Verifier};
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::{
    Clock, InMemoryNonceSource, ManualClock, NonceSource as _, NonceValidator, SystemClock,
};
use p256::ecdsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use time::Duration;

#[allow(dead_code)]
#[path = "../tests/proof_support/keys.rs"]
mod keys;

const HTU: &str = "https://server.example.com/token";

/// Nonce rotation of the benchmarked verifier: nonces live a minute, shorter than the
/// 70-second `iat` window, which then sets the replay entry lifetime.
const ROTATION: Duration = Duration::seconds(30);
/// Room for one entry lifetime of proofs at one per millisecond, and some.
const CACHE_CAPACITY: usize = 80_000;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Key {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>, String),
}

impl Key {
    fn name(&self) -> &'static str {
        match self {
            Self::P256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
            Self::Rsa(..) => "RS256",
        }
    }

    fn jwk(&self) -> String {
        match self {
            Self::P256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                format!(
                    r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
                    b64(point.x().unwrap()),
                    b64(point.y().unwrap())
                )
            }
            Self::Ed25519(key) => format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                b64(key.verifying_key().as_bytes())
            ),
            Self::Rsa(_, jwk) => jwk.clone(),
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_vec()
            }
            Self::Ed25519(key) => key.sign(input).to_bytes().to_vec(),
            Self::Rsa(key, _) => key.sign(input).to_vec(),
        }
    }
}

fn keys() -> Vec<Key> {
    let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(keys::RSA_2048_PEM).unwrap();
    let jwk = format!(
        r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
        b64(rsa.n().to_bytes_be()),
        b64(rsa.e().to_bytes_be())
    );
    vec![
        Key::P256(p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap()),
        Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32])),
        Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(rsa)), jwk),
    ]
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A fresh proof for `POST HTU`, made at `iat`, with `nonce` if any.
fn proof(key: &Key, jwk: &str, iat: i64, nonce: Option<&str>) -> String {
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{jwk}}}"#, key.name());
    let nonce = nonce.map_or(String::new(), |nonce| format!(r#","nonce":"{nonce}""#));
    let claims = format!(
        r#"{{"jti":"bench-{}","htm":"POST","htu":"{HTU}","iat":{iat}{nonce}}}"#,
        JTI.fetch_add(1, Ordering::Relaxed),
    );
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

type BenchVerifier = Verifier<
    InMemoryNonceSource<Arc<ManualClock>>,
    InMemoryReplayCache<Arc<ManualClock>>,
    Arc<ManualClock>,
>;

/// A verifier with `backend` on a manual clock set to now, its replay cache sized for the run.
fn verifier(backend: Backend) -> (Arc<ManualClock>, BenchVerifier) {
    let clock = Arc::new(ManualClock::at_unix(SystemClock.unix_time()));
    let source = InMemoryNonceSource::builder()
        .rotation(ROTATION)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let lifetime = source.max_nonce_lifetime().max(Duration::seconds(70));
    let cache = InMemoryReplayCache::builder(lifetime)
        .capacity(CACHE_CAPACITY)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let verifier = Verifier::builder(NonceValidator::new(source), cache)
        .algorithms(Algorithms::new([
            Algorithm::Es256,
            Algorithm::EdDsa,
            Algorithm::Rs256,
        ]))
        .backend(backend)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    (clock, verifier)
}

/// A fresh proof for the verifier: the clock moves one millisecond, then the proof is made
/// at that time with the nonce handed out then.
fn next_proof(clock: &ManualClock, verifier: &BenchVerifier, key: &Key, jwk: &str) -> String {
    clock.advance(Duration::MILLISECOND);
    let nonce = verifier.validator().issue();
    proof(
        key,
        jwk,
        clock.unix_time().whole_seconds(),
        Some(nonce.as_str()),
    )
}

/// The replay store `dpop-verifier` asks its users for: a set of hashes, emptied when it holds
/// one entry lifetime's worth, so it stays as small as ours.
#[derive(Default)]
struct HashSetStore(HashSet<[u8; 32]>);

#[async_trait::async_trait]
impl dpop_verifier::ReplayStore for HashSetStore {
    async fn insert_once(
        &mut self,
        jti_hash: [u8; 32],
        _ctx: dpop_verifier::ReplayContext<'_>,
    ) -> Result<bool, dpop_verifier::DpopError> {
        if self.0.len() >= CACHE_CAPACITY {
            self.0.clear();
        }
        Ok(self.0.insert(jti_hash))
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("proof");
    for &backend in Backend::ALL {
        let (clock, verifier) = verifier(backend);
        for key in keys() {
            let jwk = key.jwk();
            let public = PublicJwk::from_json(jwk.as_bytes()).unwrap();
            let alg = Algorithm::from_name(key.name()).unwrap();
            let name = format!("{}/{}", key.name(), backend.name());

            group.bench_function(format!("{name}/full"), |b| {
                b.iter_batched(
                    || next_proof(&clock, &verifier, &key, &jwk),
                    |proof| {
                        let request = ProofRequest::new("POST", HTU, [proof.as_str()]);
                        verifier.verify(black_box(&request)).unwrap()
                    },
                    BatchSize::SmallInput,
                );
            });

            let sample = next_proof(&clock, &verifier, &key, &jwk);
            let (input, signature) = sample.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            group.bench_function(format!("{name}/signature"), |b| {
                b.iter(|| {
                    public
                        .verify_signature(
                            alg,
                            backend,
                            black_box(input.as_bytes()),
                            black_box(&signature),
                        )
                        .unwrap();
                });
            });
        }
    }

    // The same kind of proof through dpop-verifier: system clock, no nonce, its own checks.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let other = dpop_verifier::DpopVerifier::new();
    let mut store = HashSetStore::default();
    for key in keys()
        .into_iter()
        .filter(|key| !matches!(key, Key::Rsa(..)))
    {
        let jwk = key.jwk();
        let fresh = || proof(&key, &jwk, SystemClock.unix_time().whole_seconds(), None);
        group.bench_function(format!("{}/dpop-verifier", key.name()), |b| {
            b.iter_batched(
                fresh,
                |proof| {
                    runtime
                        .block_on(other.verify(&mut store, black_box(&proof), HTU, "POST", None))
                        .unwrap()
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
