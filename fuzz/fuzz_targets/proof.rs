//! `proof::Verifier::verify` over arbitrary `DPoP` values and request fields.
//!
//! Input layout: byte 0 picks the mode, the rest is read as length-prefixed fields.
//!
//! - Mode 0 (even byte 0): the fields are the `DPoP` values (zero, one or more), the method
//!   and the URI, all arbitrary.
//! - Mode 1 (odd byte 0): the harness builds a proof from the fields (`typ`, `alg`, `htm`,
//!   `htu`, `iat` offset, `jti`, nonce choice, an extra raw header or claims member) and signs
//!   it with its own P-256 key, whose secret is drawn per process; then verifies it against
//!   the request method and URI from the fields.
//!
//! Invariants checked on every input:
//!
//! - `verify` never panics;
//! - a proof is accepted only if the harness itself signed exactly that value with its key,
//!   so arbitrary bytes never verify;
//! - an accepted proof matches the request (`htm` equals the method), carries the harness
//!   key's thumbprint, and its `iat` lies within the leeways.

#![no_main]

use std::cell::RefCell;
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::proof::{Algorithms, ProofRequest, PublicJwk, Thumbprint, Verifier};
use dpop_nonce::render::Role;
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource as _, NonceValidator, Requirement};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer as _;
use time::Duration;

const NOW: i64 = 1_767_225_600;

type Clock = Arc<ManualClock>;
type Source = InMemoryNonceSource<Clock>;

struct Harness {
    key: p256::ecdsa::SigningKey,
    jwk: String,
    jkt: Thumbprint,
    verifier: Verifier<Source, InMemoryReplayCache<Clock>, Clock>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // A secret the fuzzer cannot know: drawn from the process's hash seed.
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u8(1);
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        secret[0] = (secret[0] & 0x7f) | 1;
        let key = p256::ecdsa::SigningKey::from_slice(&secret).expect("a valid scalar");
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed")),
            URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed")),
        );
        let jkt = PublicJwk::from_json(jwk.as_bytes())
            .expect("a valid jwk")
            .thumbprint();
        let clock = Arc::new(ManualClock::at_unix(Duration::seconds(NOW)));
        let source = InMemoryNonceSource::builder()
            .clock(Arc::clone(&clock))
            .build()
            .expect("source");
        let lifetime = source.max_nonce_lifetime();
        let cache = InMemoryReplayCache::builder(lifetime)
            .capacity(100_000)
            .clock(Arc::clone(&clock))
            .build()
            .expect("cache");
        let verifier = Verifier::builder(
            NonceValidator::new(source).with_requirement(Requirement::Optional),
            cache,
        )
        .algorithms(Algorithms::new(dpop_nonce::proof::Algorithm::ALL))
        .clock(clock)
        .build()
        .expect("verifier");
        Harness {
            key,
            jwk,
            jkt,
            verifier,
        }
    })
}

thread_local! {
    /// Every `DPoP` value the harness signed (bounded).
    static SIGNED: RefCell<HashSet<Vec<u8>>> = RefCell::new(HashSet::new());
}

/// Reads length-prefixed fields.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()) * 8 + usize::from(self.byte() % 8);
        let (field, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        field
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

const HTMS: [&str; 4] = ["POST", "GET", "post", ""];
const HTUS: [&str; 4] = [
    "https://server.example.com/token",
    "HTTPS://Server.Example.com:443/a/../token?q#f",
    "https://server.example.com/%74oken",
    "http://server.example.com/token",
];
const TYPS: [&str; 3] = ["dpop+jwt", "JWT", "DPOP+JWT"];
const ALGS: [&str; 6] = ["ES256", "none", "HS256", "RS256", "ES384", "EdDSA"];

fn signed_proof(harness: &Harness, fields: &mut Fields<'_>) -> String {
    let typ = TYPS[usize::from(fields.byte()) % TYPS.len()];
    let alg = ALGS[usize::from(fields.byte()) % ALGS.len()];
    let extra_header = fields.text();
    let pick = fields.byte();
    let htm = HTMS[usize::from(pick) % HTMS.len()];
    let htu = match pick / 4 % 5 {
        4 => fields.text(),
        i => HTUS[usize::from(i)].to_owned(),
    };
    let iat = NOW + i64::from(fields.byte() as i8);
    let jti = fields.text();
    let nonce = match fields.byte() % 3 {
        0 => String::new(),
        1 => format!(r#","nonce":"{}""#, harness.verifier.validator().issue()),
        _ => format!(r#","nonce":"{}""#, fields.text().replace(['"', '\\'], "")),
    };
    let extra_claims = fields.text();
    let header = format!(
        r#"{{"typ":"{typ}","alg":"{alg}","jwk":{}{extra_header}}}"#,
        harness.jwk
    );
    let claims = format!(
        r#"{{"htm":"{htm}","htu":"{}","iat":{iat},"jti":"{}"{nonce}{extra_claims}}}"#,
        htu.replace(['"', '\\'], ""),
        jti.replace(['"', '\\'], ""),
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature: p256::ecdsa::Signature = harness.key.sign(input.as_bytes());
    let proof = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    SIGNED.with(|signed| {
        let mut signed = signed.borrow_mut();
        if signed.len() > 10_000 {
            signed.clear();
        }
        signed.insert(proof.as_bytes().to_vec());
    });
    proof
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let mut fields = Fields(data);
    let mode = fields.byte();
    let (values, method, uri) = if mode % 2 == 0 {
        let count = usize::from(fields.byte() % 4);
        let values: Vec<Vec<u8>> = (0..count).map(|_| fields.bytes().to_vec()).collect();
        (values, fields.text(), fields.text())
    } else {
        let proof = signed_proof(harness, &mut fields);
        let method = HTMS[usize::from(fields.byte()) % HTMS.len()].to_owned();
        let uri = match fields.byte() % 3 {
            0 => HTUS[0].to_owned(),
            1 => "https://server.example.com/token?x=1".to_owned(),
            _ => fields.text(),
        };
        (vec![proof.into_bytes()], method, uri)
    };
    let request = ProofRequest::new(&method, &uri, values.iter().map(Vec::as_slice));
    let verified = match harness.verifier.verify(&request) {
        Ok(verified) => verified,
        Err(refused) => {
            // Every refusal renders for both roles, small, with one `DPoP-Nonce` exactly when
            // it carries a fresh nonce.
            let roles = [
                Role::AuthorizationServer,
                Role::ResourceServer {
                    algs: harness.verifier.algs(),
                },
            ];
            for role in &roles {
                let parts = refused.answer().to_parts(role);
                let nonces = parts
                    .headers
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("dpop-nonce"))
                    .count();
                assert_eq!(nonces, usize::from(refused.nonce().is_some()));
                assert!(parts.body.len() < 512 && parts.headers.iter().all(|(_, v)| v.len() < 512));
            }
            return;
        }
    };
    assert_eq!(values.len(), 1);
    assert!(
        SIGNED.with(|signed| signed.borrow().contains(&values[0])),
        "accepted a proof the harness did not sign"
    );
    assert_eq!(verified.jkt(), &harness.jkt);
    assert_eq!(verified.htm(), method);
    assert!((NOW - 60..=NOW + 10).contains(&verified.iat()));
});
