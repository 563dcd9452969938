//! Whole-proof verification against the bare signature check, per backend and key type.
//!
//! "full" is `Verifier::verify` on a fresh proof: parsing, every check, the signature, the
//! in-memory nonce check and the in-memory replay insert (each proof has its own `jti`, so the
//! insert path is the real one). "signature" is `PublicJwk::verify_signature` alone, with the
//! same backend, on the same kind of proof.
//!
//! ```text
//! cargo bench --features proof,proof-ring --bench proof -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dpop_nonce::proof::{Algorithm, Algorithms, Backend, ProofRequest, PublicJwk, Verifier};
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::{Clock as _, InMemoryNonceSource, NonceSource as _, NonceValidator, SystemClock};
use p256::ecdsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;

#[allow(dead_code)]
#[path = "../tests/proof_support/keys.rs"]
mod keys;

const HTU: &str = "https://server.example.com/token";

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

/// A fresh proof for `POST HTU`, now, with `nonce`.
fn proof(key: &Key, jwk: &str, nonce: &str) -> String {
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{jwk}}}"#, key.name());
    let claims = format!(
        r#"{{"jti":"bench-{}","htm":"POST","htu":"{HTU}","iat":{},"nonce":"{nonce}"}}"#,
        JTI.fetch_add(1, Ordering::Relaxed),
        SystemClock.unix_time().whole_seconds()
    );
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("proof");
    for &backend in Backend::ALL {
        let source = InMemoryNonceSource::new();
        let lifetime = source.max_nonce_lifetime();
        let cache = InMemoryReplayCache::builder(lifetime)
            .capacity(4_000_000)
            .build()
            .unwrap();
        let verifier = Verifier::builder(NonceValidator::new(source), cache)
            .algorithms(Algorithms::new([
                Algorithm::Es256,
                Algorithm::EdDsa,
                Algorithm::Rs256,
            ]))
            .backend(backend)
            .build()
            .unwrap();
        for key in keys() {
            let jwk = key.jwk();
            let public = PublicJwk::from_json(jwk.as_bytes()).unwrap();
            let alg = Algorithm::from_name(key.name()).unwrap();
            let name = format!("{}/{}", key.name(), backend.name());

            group.bench_function(format!("{name}/full"), |b| {
                b.iter_batched(
                    || proof(&key, &jwk, verifier.validator().issue().as_str()),
                    |proof| {
                        let request = ProofRequest::new("POST", HTU, [proof.as_str()]);
                        verifier.verify(black_box(&request)).unwrap()
                    },
                    BatchSize::SmallInput,
                );
            });

            let sample = proof(&key, &jwk, verifier.validator().issue().as_str());
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
