//! One test per check: an otherwise valid proof with exactly one defect is refused for exactly
//! that reason, and never reaches the replay cache.
//!
//! Every test first verifies the same proof without the defect (with a fresh `jti`), so a test
//! cannot pass because the baseline itself is broken.

mod proof_support;

use dpop_nonce::NonceSource as _;
use std::sync::Arc;

use dpop_nonce::proof::{
    Algorithm, Algorithms, Backend, MAX_JSON_DEPTH, MAX_PROOF_LEN, ProofRequest, PublicJwk, Reason,
    Rejection, RejectionKind, Verifier, dpop_access_token,
};
use dpop_nonce::render::{Answer, ErrorDescription, ResponseParts, Role};
use dpop_nonce::replay::{MAX_JTI_LEN, ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use dpop_nonce::{NonceValidator, RejectReason, Requirement};
use hmac::{Hmac, Mac as _};
use proof_support::{Fixture, HTU, Key, NOW, Proof, b64, jti, keys};
use serde_json::{Value, json};
use time::Duration;

fn p256() -> Key {
    Key::p256(9)
}

/// Runs `test` once per compiled backend, on a fresh fixture.
fn each_backend(test: impl Fn(&Fixture)) {
    for &backend in Backend::ALL {
        test(&Fixture::new(backend));
    }
}

/// A valid proof by `key`, with the current nonce.
fn valid(fixture: &Fixture, key: &Key) -> Proof {
    Proof::new(key, Some(fixture.nonce().as_str()))
}

/// Checks that the proof `make` builds verifies, then that the same proof edited by `defect`
/// (and signed by `key`) is refused for `reason` without touching the cache.
fn refused_for(fixture: &Fixture, key: &Key, defect: impl Fn(Proof) -> Proof, reason: Reason) {
    let _refused = refusal_for(fixture, key, defect, reason);
}

/// [`refused_for`], handing the rejection back.
fn refusal_for(
    fixture: &Fixture,
    key: &Key,
    defect: impl Fn(Proof) -> Proof,
    reason: Reason,
) -> dpop_nonce::proof::Rejection {
    let control = valid(fixture, key).sign(key);
    if let Err(refused) = fixture.verify(&control) {
        panic!("the control proof must verify: {refused}");
    }
    let proof = defect(valid(fixture, key)).sign(key);
    fixture.refusal(&proof, reason)
}

fn header(edit: impl Fn(&mut Value)) -> impl Fn(Proof) -> Proof {
    move |proof| proof.header(&edit)
}

fn claims(edit: impl Fn(&mut Value)) -> impl Fn(Proof) -> Proof {
    move |proof| proof.claims(&edit)
}

/// Verifies, as `method uri`, a valid proof whose `htu` is `htu`.
fn with_htu(fixture: &Fixture, htu: &str, method: &str, uri: &str) -> Result<(), Reason> {
    let key = p256();
    let proof = valid(fixture, &key)
        .claims(|claims| claims["htu"] = json!(htu))
        .sign(&key);
    fixture
        .verify_request(&ProofRequest::new(method, uri, [proof.as_str()]))
        .map(drop)
        .map_err(|refused| refused.reason())
}

// --- Header count, size and shape ------------------------------------------------------------

#[test]
fn zero_dpop_headers() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let none: [&str; 0] = [];
    let refused = fixture
        .verify_request(&ProofRequest::new("POST", HTU, none))
        .unwrap_err();
    assert_eq!(refused.reason(), Reason::MissingProof);
    assert_eq!(refused.error_code(), "invalid_dpop_proof");
}

#[test]
fn two_dpop_headers() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let key = p256();
    let (one, two) = (
        valid(&fixture, &key).sign(&key),
        valid(&fixture, &key).sign(&key),
    );
    assert!(fixture.verify(&one).is_ok());
    let refused = fixture
        .verify_request(&ProofRequest::new(
            "POST",
            HTU,
            [two.as_str(), two.as_str()],
        ))
        .unwrap_err();
    assert_eq!(refused.reason(), Reason::MultipleProofs);
    // The same proof alone passes.
    assert!(fixture.verify(&two).is_ok());
}

#[test]
fn oversized_proof() {
    each_backend(|fixture| {
        let key = p256();
        let pad = |len: usize| claims(move |c| c["pad"] = json!("x".repeat(len)));
        // Just under the cap verifies; just over it is refused before parsing.
        let small = pad(5_500)(valid(fixture, &key)).sign(&key);
        assert!(small.len() <= MAX_PROOF_LEN);
        assert!(fixture.verify(&small).is_ok());
        let large = pad(6_500)(valid(fixture, &key)).sign(&key);
        assert!(large.len() > MAX_PROOF_LEN);
        fixture.refuses(&large, Reason::ProofTooLarge);
    });
}

#[test]
fn malformed_compact_jws() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let key = p256();
    let proof = valid(&fixture, &key).sign(&key);
    let parts: Vec<&str> = proof.split('.').collect();
    for bad in [
        format!("{}.{}", parts[0], parts[1]),
        format!("{proof}.{}", parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{proof}=="),
        format!(" {proof}"),
    ] {
        fixture.refuses(&bad, Reason::MalformedJws);
    }
    assert!(fixture.verify(&proof).is_ok());
}

// --- JOSE header ------------------------------------------------------------------------------

#[test]
fn wrong_typ() {
    each_backend(|fixture| {
        for typ in [
            json!("JWT"),
            json!("DPOP+JWT"),
            json!("application/dpop+jwt"),
            json!(1),
        ] {
            refused_for(
                fixture,
                &p256(),
                header(|h| h["typ"] = typ.clone()),
                Reason::WrongTyp,
            );
        }
        refused_for(
            fixture,
            &p256(),
            header(|h| {
                h.as_object_mut().unwrap().remove("typ");
            }),
            Reason::WrongTyp,
        );
    });
}

#[test]
fn crit_header() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            header(|h| h["crit"] = json!(["b64"])),
            Reason::UnsupportedCrit,
        );
    });
}

#[test]
fn alg_none() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            header(|h| h["alg"] = json!("none")),
            Reason::UnsupportedAlg,
        );
    });
}

#[test]
fn alg_none_without_signature() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let proof = valid(&fixture, &p256()).header(|h| h["alg"] = json!("none"));
    let unsigned = format!("{}.{}.", b64(&proof.header), b64(&proof.claims));
    fixture.refuses(&unsigned, Reason::MalformedJws);
}

#[test]
fn hs256_keyed_with_the_public_jwk() {
    each_backend(|fixture| {
        let key = p256();
        // Control: the same proof with its real algorithm.
        assert!(fixture.verify(&valid(fixture, &key).sign(&key)).is_ok());
        let proof = valid(fixture, &key).header(|h| h["alg"] = json!("HS256"));
        let input = format!("{}.{}", b64(&proof.header), b64(&proof.claims));
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(key.jwk().to_string().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        let forged = format!("{input}.{}", b64(mac.finalize().into_bytes()));
        fixture.refuses(&forged, Reason::UnsupportedAlg);
    });
}

#[test]
fn alg_outside_the_allow_list() {
    for &backend in Backend::ALL {
        let fixture = Fixture::build(
            backend,
            Requirement::Required,
            Algorithms::new([Algorithm::Es256]),
        );
        let es = p256();
        assert!(fixture.verify(&valid(&fixture, &es).sign(&es)).is_ok());
        let ed = Key::ed25519(1);
        fixture.refuses(&valid(&fixture, &ed).sign(&ed), Reason::UnsupportedAlg);
    }
}

#[test]
fn alg_does_not_fit_the_key() {
    each_backend(|fixture| {
        for alg in ["ES384", "RS256", "PS256", "EdDSA", "Ed25519"] {
            let defect = move |proof: Proof| {
                let mut proof = proof.header(|h| h["alg"] = json!(alg));
                proof.alg = "ES256".to_owned(); // signed as ES256 all the same
                proof
            };
            refused_for(fixture, &p256(), defect, Reason::AlgKeyMismatch);
        }
        let defect = |proof: Proof| {
            let mut proof = proof.header(|h| h["alg"] = json!("ES256"));
            proof.alg = "RS256".to_owned();
            proof
        };
        refused_for(fixture, &Key::rsa2048(), defect, Reason::AlgKeyMismatch);
    });
}

#[test]
fn missing_jwk() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            header(|h| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
            Reason::MissingJwk,
        );
        refused_for(
            fixture,
            &p256(),
            header(|h| h["jwk"] = json!("key")),
            Reason::MissingJwk,
        );
    });
}

#[test]
fn private_jwk_members() {
    each_backend(|fixture| {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            refused_for(
                fixture,
                &p256(),
                header(|h| h["jwk"][member] = json!("AQAB")),
                Reason::PrivateKeyMember,
            );
        }
    });
}

#[test]
fn symmetric_jwk() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            header(|h| h["jwk"]["kty"] = json!("oct")),
            Reason::SymmetricKey,
        );
    });
}

#[test]
fn unsupported_key_type_and_curve() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            header(|h| h["jwk"]["kty"] = json!("XYZ")),
            Reason::UnsupportedKey,
        );
        refused_for(
            fixture,
            &p256(),
            header(|h| h["jwk"]["crv"] = json!("secp256k1")),
            Reason::UnsupportedKey,
        );
    });
}

#[test]
fn malformed_key_members() {
    each_backend(|fixture| {
        // A coordinate one byte short, padded base64, and a missing `y`.
        refused_for(
            fixture,
            &p256(),
            header(|h| h["jwk"]["x"] = json!(b64([1u8; 31]))),
            Reason::InvalidKey,
        );
        refused_for(
            fixture,
            &p256(),
            header(|h| {
                let x = h["jwk"]["x"].as_str().unwrap().to_owned();
                h["jwk"]["x"] = json!(format!("{x}="));
            }),
            Reason::InvalidKey,
        );
        refused_for(
            fixture,
            &p256(),
            header(|h| {
                h["jwk"].as_object_mut().unwrap().remove("y");
            }),
            Reason::InvalidKey,
        );
    });
}

#[test]
fn short_rsa_key() {
    each_backend(|fixture| {
        let short = Key::rsa(keys::RSA_1024_PEM);
        let proof = valid(fixture, &short).sign(&short);
        fixture.refuses(&proof, Reason::RsaKeyTooSmall);
        let long = Key::rsa2048();
        assert!(fixture.verify(&valid(fixture, &long).sign(&long)).is_ok());
    });
}

#[test]
fn oversized_rsa_key_is_refused_before_any_big_number_work() {
    let n = b64([0xffu8; 1025]);
    assert_eq!(
        PublicJwk::from_json(format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#).as_bytes()),
        Err(Reason::RsaKeyTooLarge)
    );
}

#[test]
fn duplicate_member_in_header() {
    each_backend(|fixture| {
        let defect = |mut proof: Proof| {
            proof.header = proof.header.replacen('{', r#"{"typ":"dpop+jwt","#, 1);
            proof
        };
        refused_for(fixture, &p256(), defect, Reason::DuplicateMember);
        let in_jwk = |mut proof: Proof| {
            proof.header = proof
                .header
                .replacen(r#""kty":"EC""#, r#""kty":"EC","kty":"EC""#, 1);
            proof
        };
        refused_for(fixture, &p256(), in_jwk, Reason::DuplicateMember);
    });
}

#[test]
fn too_deep_header() {
    each_backend(|fixture| {
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        let defect = move |mut proof: Proof| {
            proof.header = proof.header.replacen('{', &format!(r#"{{"x":{deep},"#), 1);
            proof
        };
        refused_for(fixture, &p256(), defect, Reason::NestingTooDeep);
    });
}

// --- Signature --------------------------------------------------------------------------------

#[test]
fn signature_by_another_key() {
    each_backend(|fixture| {
        let (key, other) = (p256(), Key::p256(10));
        assert!(fixture.verify(&valid(fixture, &key).sign(&key)).is_ok());
        let proof = valid(fixture, &key);
        let forged = {
            let input = format!("{}.{}", b64(&proof.header), b64(&proof.claims));
            format!("{input}.{}", b64(other.sign("ES256", input.as_bytes())))
        };
        fixture.refuses(&forged, Reason::BadSignature);
    });
}

#[test]
fn flipped_signature_bit_for_every_key_type() {
    each_backend(|fixture| {
        for (key, alg) in [
            (p256(), "ES256"),
            (Key::ed25519(3), "EdDSA"),
            (Key::rsa2048(), "RS256"),
            (Key::rsa2048(), "PS256"),
        ] {
            let claims = json!({"jti": jti(), "htm": "POST", "htu": HTU, "iat": NOW,
                                "nonce": fixture.nonce().as_str()});
            let good = Proof::from_values(&key, alg, claims.clone()).sign(&key);
            assert!(fixture.verify(&good).is_ok(), "{alg}");
            let mut claims = claims;
            claims["jti"] = json!(jti());
            let proof = Proof::from_values(&key, alg, claims).sign(&key);
            let (input, signature) = proof.rsplit_once('.').unwrap();
            let mut signature = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                signature,
            )
            .unwrap();
            signature[5] ^= 0x10;
            fixture.refuses(&format!("{input}.{}", b64(signature)), Reason::BadSignature);
        }
    });
}

#[test]
fn tampered_payload() {
    each_backend(|fixture| {
        let key = p256();
        let proof = valid(fixture, &key);
        let signed = proof.sign(&key);
        let parts: Vec<&str> = signed.split('.').collect();
        let tampered_claims = proof.claims.replace("\"POST\"", "\"GET\"");
        let tampered = format!("{}.{}.{}", parts[0], b64(tampered_claims), parts[2]);
        let refused = fixture
            .verify_request(&ProofRequest::new("GET", HTU, [tampered.as_str()]))
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::BadSignature);
        assert!(fixture.verify(&signed).is_ok());
    });
}

// --- Claims -----------------------------------------------------------------------------------

#[test]
fn wrong_htm() {
    each_backend(|fixture| {
        for htm in [json!("GET"), json!("post"), json!(1)] {
            refused_for(
                fixture,
                &p256(),
                claims(|c| c["htm"] = htm.clone()),
                Reason::HtmMismatch,
            );
        }
        refused_for(
            fixture,
            &p256(),
            claims(|c| {
                c.as_object_mut().unwrap().remove("htm");
            }),
            Reason::HtmMismatch,
        );
    });
}

#[test]
fn wrong_htu() {
    each_backend(|fixture| {
        for htu in [
            "https://server.example.com/other",
            "https://other.example.com/token",
            "http://server.example.com/token",
            "https://server.example.com:8443/token",
            "https://server.example.com/token/",
            "https://server.example.com/Token",
            "/token",
        ] {
            refused_for(
                fixture,
                &p256(),
                claims(|c| c["htu"] = json!(htu)),
                Reason::HtuMismatch,
            );
        }
    });
}

#[test]
fn htu_query_and_fragment_are_ignored() {
    let fixture = Fixture::new(Backend::DEFAULT);
    assert_eq!(
        with_htu(
            &fixture,
            "https://server.example.com/token?a=1#frag",
            "POST",
            HTU
        ),
        Ok(())
    );
    assert_eq!(
        with_htu(
            &fixture,
            HTU,
            "POST",
            "https://server.example.com/token?b=2"
        ),
        Ok(())
    );
}

#[test]
fn htu_normalization() {
    let fixture = Fixture::new(Backend::DEFAULT);
    for htu in [
        "HTTPS://Server.Example.com:443/token",
        "https://server.example.com:/token",
        "https://server.example.com/%74oken",
        "https://server.example.com/a/../token",
        "https://server.example.com/./token",
        "https://server.example.com/x/%2E%2E/token",
    ] {
        assert_eq!(with_htu(&fixture, htu, "POST", HTU), Ok(()), "{htu}");
    }
    // Percent-encoding case: `%2f` and `%2F` are the same octet; an encoded slash is not a `/`.
    let uri = "https://server.example.com/a%2Fb";
    assert_eq!(
        with_htu(&fixture, "https://server.example.com/a%2fb", "POST", uri),
        Ok(())
    );
    assert_eq!(
        with_htu(&fixture, "https://server.example.com/a/b", "POST", uri),
        Err(Reason::HtuMismatch)
    );
    // The empty path is `/`.
    assert_eq!(
        with_htu(
            &fixture,
            "https://server.example.com",
            "POST",
            "https://server.example.com/"
        ),
        Ok(())
    );
}

#[test]
fn public_base_url_ignores_the_request_host() {
    let clock = Arc::new(dpop_nonce::ManualClock::at_unix(Duration::seconds(NOW)));
    let source = Arc::new(
        dpop_nonce::InMemoryNonceSource::builder()
            .clock(Arc::clone(&clock))
            .build()
            .unwrap(),
    );
    let lifetime = source.max_nonce_lifetime();
    let cache = dpop_nonce::replay::InMemoryReplayCache::builder(lifetime)
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let verifier = Verifier::builder(NonceValidator::new(Arc::clone(&source)), cache)
        .public_base_url("https://server.example.com/")
        .clock(Arc::clone(&clock))
        .build()
        .unwrap();
    let key = p256();
    let sign = || Proof::new(&key, Some(verifier.validator().issue().as_str())).sign(&key);
    let proof = sign();
    assert!(
        verifier
            .verify(&ProofRequest::new("POST", "/token?x=1", [proof.as_str()]))
            .is_ok()
    );
    // A forged Host does not change what the proof must name.
    let proof = sign();
    assert!(
        verifier
            .verify(&ProofRequest::new(
                "POST",
                "http://internal:8080/token",
                [proof.as_str()]
            ))
            .is_ok()
    );
    let proof = sign();
    assert_eq!(
        verifier
            .verify(&ProofRequest::new("POST", "/other", [proof.as_str()]))
            .unwrap_err()
            .reason(),
        Reason::HtuMismatch
    );
}

#[test]
fn iat_window() {
    each_backend(|fixture| {
        let at = |iat: i64| claims(move |c| c["iat"] = json!(iat));
        refused_for(fixture, &p256(), at(NOW - 61), Reason::IatTooOld);
        refused_for(fixture, &p256(), at(NOW + 11), Reason::IatInFuture);
        refused_for(fixture, &p256(), at(NOW + 3_600), Reason::IatInFuture);
        // The bounds themselves are inside the window.
        for iat in [NOW - 60, NOW + 10] {
            let key = p256();
            assert!(
                fixture
                    .verify(&at(iat)(valid(fixture, &key)).sign(&key))
                    .is_ok()
            );
        }
    });
}

#[test]
fn iat_not_an_integer() {
    each_backend(|fixture| {
        for iat in [json!("1700000000"), json!(1_700_000_000.5), json!(null)] {
            refused_for(
                fixture,
                &p256(),
                claims(|c| c["iat"] = iat.clone()),
                Reason::InvalidIat,
            );
        }
        refused_for(
            fixture,
            &p256(),
            claims(|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
            Reason::InvalidIat,
        );
    });
}

#[test]
fn missing_or_empty_jti() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            claims(|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            Reason::InvalidJti,
        );
        refused_for(
            fixture,
            &p256(),
            claims(|c| c["jti"] = json!("")),
            Reason::InvalidJti,
        );
        refused_for(
            fixture,
            &p256(),
            claims(|c| c["jti"] = json!(7)),
            Reason::InvalidJti,
        );
    });
}

#[test]
fn over_long_jti() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            claims(|c| c["jti"] = json!("j".repeat(MAX_JTI_LEN + 1))),
            Reason::JtiTooLong,
        );
        let key = p256();
        let longest = valid(fixture, &key)
            .claims(|c| c["jti"] = json!("j".repeat(MAX_JTI_LEN)))
            .sign(&key);
        assert!(fixture.verify(&longest).is_ok());
    });
}

#[test]
fn duplicate_member_in_claims() {
    each_backend(|fixture| {
        let defect = |mut proof: Proof| {
            proof.claims = proof.claims.replacen('{', r#"{"jti":"first","#, 1);
            proof
        };
        refused_for(fixture, &p256(), defect, Reason::DuplicateMember);
    });
}

#[test]
fn too_deep_claims() {
    each_backend(|fixture| {
        let depth = MAX_JSON_DEPTH;
        let deep = format!("{}{}", r#"{"a":"#.repeat(depth) + "1", "}".repeat(depth));
        refused_for(
            fixture,
            &p256(),
            claims(move |c| c["x"] = serde_json::from_str(&deep).unwrap()),
            Reason::NestingTooDeep,
        );
        // One level less is fine.
        let key = p256();
        let ok = format!(
            "{}{}",
            r#"{"a":"#.repeat(depth - 1) + "1",
            "}".repeat(depth - 1)
        );
        let proof = valid(fixture, &key)
            .claims(|c| c["x"] = serde_json::from_str(&ok).unwrap())
            .sign(&key);
        assert!(fixture.verify(&proof).is_ok());
    });
}

#[test]
fn malformed_claims() {
    each_backend(|fixture| {
        let defect = |mut proof: Proof| {
            proof.claims = "[1]".to_owned();
            proof
        };
        refused_for(fixture, &p256(), defect, Reason::MalformedClaims);
    });
}

// --- Resource server and token endpoint bindings ----------------------------------------------

const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
const ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

fn jkt_of(key: &Key) -> String {
    PublicJwk::from_json(key.jwk().to_string().as_bytes())
        .unwrap()
        .thumbprint()
        .to_string()
}

/// Verifies a valid proof carrying `ath` at a resource server, for `token` bound to `jkt`.
fn at_resource(fixture: &Fixture, ath: Option<&str>, token: &str, jkt: &str) -> Result<(), Reason> {
    let key = p256();
    let mut proof = valid(fixture, &key);
    if let Some(ath) = ath {
        proof = proof.claims(|c| c["ath"] = json!(ath));
    }
    let proof = proof.sign(&key);
    fixture
        .verify_request(&ProofRequest::new("POST", HTU, [proof.as_str()]).access_token(token, jkt))
        .map(drop)
        .map_err(|refused| refused.reason())
}

#[test]
fn ath_mismatch() {
    each_backend(|fixture| {
        let jkt = jkt_of(&p256());
        assert_eq!(at_resource(fixture, Some(ATH), TOKEN, &jkt), Ok(()));
        assert_eq!(
            at_resource(fixture, Some(ATH), "another-token", &jkt),
            Err(Reason::AthMismatch)
        );
        assert_eq!(
            at_resource(fixture, Some(&ATH[1..]), TOKEN, &jkt),
            Err(Reason::AthMismatch)
        );
        assert_eq!(
            at_resource(fixture, None, TOKEN, &jkt),
            Err(Reason::MissingAth)
        );
    });
}

#[test]
fn jkt_mismatch() {
    each_backend(|fixture| {
        let other = jkt_of(&Key::p256(10));
        assert_eq!(
            at_resource(fixture, Some(ATH), TOKEN, &jkt_of(&p256())),
            Ok(())
        );
        assert_eq!(
            at_resource(fixture, Some(ATH), TOKEN, &other),
            Err(Reason::JktMismatch)
        );
        let key = p256();
        let proof = valid(fixture, &key)
            .claims(|c| c["ath"] = json!(ATH))
            .sign(&key);
        let refused = fixture
            .verify_request(
                &ProofRequest::new("POST", HTU, [proof.as_str()]).access_token(TOKEN, &other),
            )
            .unwrap_err();
        assert_eq!(refused.kind(), &RejectionKind::InvalidToken);
        assert_eq!(refused.error_code(), "invalid_token");
        assert_eq!(refused.description(), "Invalid DPoP key binding");
    });
}

#[test]
fn dpop_jkt_mismatch() {
    each_backend(|fixture| {
        let key = p256();
        let (mine, other) = (jkt_of(&key), jkt_of(&Key::p256(10)));
        let proof = valid(fixture, &key).sign(&key);
        assert!(
            fixture
                .verify_request(&ProofRequest::new("POST", HTU, [proof.as_str()]).dpop_jkt(&mine))
                .is_ok()
        );
        let proof = valid(fixture, &key).sign(&key);
        let refused = fixture
            .verify_request(&ProofRequest::new("POST", HTU, [proof.as_str()]).dpop_jkt(&other))
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::DpopJktMismatch);
    });
}

#[test]
fn authorization_header_helper() {
    assert_eq!(
        dpop_access_token([format!("dpop {TOKEN}").as_str()]),
        Ok(TOKEN)
    );
    let reason = |values: &[&str]| dpop_access_token(values.iter()).unwrap_err().reason();
    assert_eq!(reason(&[&format!("Bearer {TOKEN}")]), Reason::BearerScheme);
    assert_eq!(reason(&[&format!("bearer {TOKEN}")]), Reason::BearerScheme);
    assert_eq!(reason(&[]), Reason::MissingAccessToken);
    assert_eq!(reason(&["DPoP"]), Reason::MalformedAuthorization);
    assert_eq!(reason(&["DPoP a b"]), Reason::MalformedAuthorization);
    assert_eq!(reason(&["Basic abc"]), Reason::MalformedAuthorization);
    assert_eq!(
        reason(&[&format!("DPoP {TOKEN}"), &format!("DPoP {TOKEN}")]),
        Reason::MalformedAuthorization
    );
    let bearer = dpop_access_token(["Bearer x"]).unwrap_err();
    assert_eq!(bearer.error_code(), "invalid_token");
    assert!(
        dpop_access_token::<_, str>([])
            .unwrap_err()
            .is_missing_credentials()
    );
}

// --- Nonce ------------------------------------------------------------------------------------

#[test]
fn missing_nonce_is_use_dpop_nonce() {
    each_backend(|fixture| {
        let refused = refusal_for(
            fixture,
            &p256(),
            claims(|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            Reason::Nonce(RejectReason::Missing),
        );
        assert_eq!(refused.error_code(), "use_dpop_nonce");
        assert_eq!(refused.nonce(), Some(&fixture.nonce()));
    });
}

#[test]
fn stale_nonce_is_use_dpop_nonce_and_never_reaches_the_cache() {
    each_backend(|fixture| {
        let key = p256();
        let stale = fixture.nonce();
        fixture.clock.advance(fixture.source.max_nonce_lifetime());
        let now = NOW + fixture.source.max_nonce_lifetime().whole_seconds();
        let control = Proof::new(&key, Some(fixture.nonce().as_str()))
            .claims(|c| c["iat"] = json!(now))
            .sign(&key);
        assert!(fixture.verify(&control).is_ok());
        let proof = Proof::new(&key, Some(stale.as_str()))
            .claims(|c| c["iat"] = json!(now))
            .sign(&key);
        let refused = fixture.refusal(&proof, Reason::Nonce(RejectReason::Mismatch));
        assert_eq!(refused.error_code(), "use_dpop_nonce");
        let fresh = refused.nonce().unwrap();
        assert_ne!(fresh, &stale);
        assert_eq!(fresh, &fixture.nonce());
    });
}

#[test]
fn nonce_of_the_wrong_type_is_use_dpop_nonce() {
    each_backend(|fixture| {
        refused_for(
            fixture,
            &p256(),
            claims(|c| c["nonce"] = json!(12)),
            Reason::Nonce(RejectReason::Malformed),
        );
    });
}

// --- Replay -----------------------------------------------------------------------------------

#[test]
fn replayed_jti() {
    each_backend(|fixture| {
        let key = p256();
        let proof = valid(fixture, &key).sign(&key);
        assert!(fixture.verify(&proof).is_ok());
        let refused = fixture.verify(&proof).unwrap_err();
        assert_eq!(refused.reason(), Reason::Replayed);
        assert_eq!(refused.error_code(), "invalid_dpop_proof");
        assert_eq!(fixture.inserts(), 2);
        // The same jti with a new proof (new signature input) is still a replay.
        let again = valid(fixture, &key)
            .claims(|c| {
                let jti =
                    serde_json::from_str::<Value>(&proof_claims(&proof)).unwrap()["jti"].clone();
                c["jti"] = jti;
            })
            .sign(&key);
        assert_eq!(
            fixture.verify(&again).unwrap_err().reason(),
            Reason::Replayed
        );
    });
}

fn proof_claims(proof: &str) -> String {
    let payload = proof.split('.').nth(1).unwrap();
    String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap()
}

#[test]
fn no_replay_insert_for_a_bad_signature_or_a_stale_nonce() {
    each_backend(|fixture| {
        let key = p256();
        let proof = valid(fixture, &key);
        let input = format!("{}.{}", b64(&proof.header), b64(&proof.claims));
        let forged = format!(
            "{input}.{}",
            b64(Key::p256(11).sign("ES256", input.as_bytes()))
        );
        fixture.refuses(&forged, Reason::BadSignature);
        let no_nonce = Proof::new(&key, None).sign(&key);
        fixture.refuses(&no_nonce, Reason::Nonce(RejectReason::Missing));
        assert_eq!(fixture.inserts(), 0);
        // The genuine proof with the same jti is then still fresh.
        assert!(fixture.verify(&proof.sign(&key)).is_ok());
        assert_eq!(fixture.inserts(), 1);
    });
}

/// A cache whose backend is down, with entries said to live `0` seconds.
struct DownCache(i64);

impl ReplayCache for DownCache {
    fn insert(&self, _: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        Err(ReplayError::unavailable("down"))
    }

    fn lifetime(&self) -> Duration {
        Duration::seconds(self.0)
    }
}

struct FullCache;

impl ReplayCache for FullCache {
    fn insert(&self, _: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        Err(ReplayError::Full)
    }

    fn lifetime(&self) -> Duration {
        Duration::hours(1)
    }
}

#[test]
fn a_replay_cache_error_fails_closed() {
    fn check<R: ReplayCache>(cache: R, reason: Reason) {
        let clock = Arc::new(dpop_nonce::ManualClock::at_unix(Duration::seconds(NOW)));
        let source = dpop_nonce::InMemoryNonceSource::builder()
            .clock(Arc::clone(&clock))
            .build()
            .unwrap();
        let verifier = Verifier::builder(
            NonceValidator::new(source).with_requirement(Requirement::Optional),
            cache,
        )
        .clock(clock)
        .build()
        .unwrap();
        let key = p256();
        let proof = Proof::new(&key, None).sign(&key);
        let refused = verifier
            .verify(&ProofRequest::new("POST", HTU, [proof.as_str()]))
            .unwrap_err();
        assert_eq!(refused.reason(), reason);
        assert_eq!(refused.error_code(), "invalid_dpop_proof");
    }
    check(DownCache(3600), Reason::ReplayCacheUnavailable);
    check(FullCache, Reason::ReplayCacheFull);
}

// --- Configuration ----------------------------------------------------------------------------

/// A source whose nonces live `0` seconds and are never accepted.
struct Lifetime(i64);

impl dpop_nonce::NonceSource for Lifetime {
    fn issue(&self) -> dpop_nonce::Nonce {
        dpop_nonce::Nonce::parse("n").expect("a valid nonce")
    }

    fn check(&self, _: &str) -> dpop_nonce::NonceCheck {
        dpop_nonce::NonceCheck::Unknown
    }

    fn max_nonce_lifetime(&self) -> Duration {
        Duration::seconds(self.0)
    }
}

#[test]
fn builder_refuses_unsafe_settings() {
    use dpop_nonce::proof::BuildError;
    let build = |future: i64, replay: i64, algs: Algorithms, base: Option<&str>| {
        let mut builder = Verifier::builder(NonceValidator::new(Lifetime(100)), DownCache(replay))
            .algorithms(algs)
            .iat_leeway(Duration::seconds(60), Duration::seconds(future));
        assert_eq!(
            builder.required_replay_lifetime(),
            Duration::seconds(100.max(60 + future))
        );
        if let Some(base) = base {
            builder = builder.public_base_url(base);
        }
        builder.build().map(|verifier| {
            assert_eq!(verifier.replay_lifetime(), Duration::seconds(replay));
            assert_eq!(
                verifier.required_replay_lifetime(),
                Duration::seconds(100.max(60 + future))
            );
        })
    };
    // Both lifetimes come from the parts: the source's nonce lifetime, the cache's entries.
    assert_eq!(build(10, 100, Algorithms::DEFAULT, None), Ok(()));
    assert_eq!(
        build(10, 99, Algorithms::DEFAULT, None),
        Err(BuildError::ReplayLifetimeTooShort {
            configured: Duration::seconds(99),
            required: Duration::seconds(100),
        })
    );
    // With a 50 s future leeway the window (110 s) outgrows the nonce lifetime.
    assert!(matches!(
        build(50, 100, Algorithms::DEFAULT, None),
        Err(BuildError::ReplayLifetimeTooShort { required, .. }) if required == Duration::seconds(110)
    ));
    assert_eq!(build(50, 110, Algorithms::DEFAULT, None), Ok(()));
    assert!(matches!(
        build(61, 1_000, Algorithms::DEFAULT, None),
        Err(BuildError::FutureLeewayTooLong { .. })
    ));
    assert_eq!(
        build(-1, 1_000, Algorithms::DEFAULT, None),
        Err(BuildError::NegativeLeeway)
    );
    assert_eq!(
        build(10, 1_000, Algorithms::EMPTY, None),
        Err(BuildError::NoAlgorithms)
    );
    assert_eq!(
        build(10, 1_000, Algorithms::DEFAULT, Some("server.example.com")),
        Err(BuildError::InvalidBaseUrl)
    );

    // Through pointers (`Arc<dyn ReplayCache>`, `&C`) the cache's lifetime is still read.
    let shared: Arc<dyn ReplayCache> = Arc::new(DownCache(5));
    let refused = Verifier::builder(NonceValidator::new(Lifetime(100)), shared).build();
    assert!(matches!(
        refused,
        Err(BuildError::ReplayLifetimeTooShort { configured, .. }) if configured == Duration::seconds(5)
    ));
    let cache = DownCache(100);
    assert!(
        Verifier::builder(NonceValidator::new(Lifetime(100)), &cache)
            .build()
            .is_ok()
    );
}

#[test]
fn descriptions_never_echo_the_request() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let key = p256();
    let marker = "ECHO-MARKER";
    let proof = valid(&fixture, &key)
        .claims(|c| {
            c["htm"] = json!(marker);
            c["jti"] = json!(marker);
        })
        .sign(&key);
    let refused = fixture.refusal(&proof, Reason::HtmMismatch);
    assert!(!refused.to_string().contains(marker));
    assert!(!refused.description().contains(marker));
}

// --- Answers ----------------------------------------------------------------------------------

/// How many headers named `name` the answer has.
fn count(parts: &ResponseParts, name: &str) -> usize {
    parts
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .count()
}

#[test]
fn a_nonce_refusal_renders_use_dpop_nonce_with_its_one_fresh_nonce() {
    let fixture = Fixture::build(
        Backend::DEFAULT,
        Requirement::Required,
        Algorithms::new([Algorithm::Es256, Algorithm::Ed25519]),
    );
    let key = p256();
    let refused = fixture.refusal(
        &Proof::new(&key, None).sign(&key),
        Reason::Nonce(RejectReason::Missing),
    );
    let nonce = refused.nonce().expect("a fresh nonce").as_str().to_owned();

    let parts = refused.answer().to_parts(&Role::AuthorizationServer);
    assert_eq!(parts.status, 400);
    assert_eq!(
        parts.body,
        r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 1);
    assert_eq!(parts.header("DPoP-Nonce"), Some(nonce.as_str()));
    assert_eq!(parts.header("Cache-Control"), Some("no-store"));

    let api = Role::ResourceServer {
        algs: fixture.verifier.algs(),
    };
    let parts = Answer::from(refused).to_parts(&api);
    assert_eq!(parts.status, 401);
    assert_eq!(
        parts.header("WWW-Authenticate"),
        Some(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256 Ed25519""#
        )
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 1);
    assert_eq!(parts.header("DPoP-Nonce"), Some(nonce.as_str()));
    assert!(parts.body.is_empty());

    // A stale nonce: a different fresh one, with the mismatch text.
    let stale = fixture.refusal(
        &Proof::new(&key, Some("not-a-nonce-of-this-server")).sign(&key),
        Reason::Nonce(RejectReason::Mismatch),
    );
    let parts = stale.answer().to_parts(&Role::AuthorizationServer);
    assert!(parts.body.starts_with(r#"{"error":"use_dpop_nonce""#));
    assert_ne!(
        parts.header("DPoP-Nonce"),
        Some("not-a-nonce-of-this-server")
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 1);
}

#[test]
fn proof_and_token_refusals_render_their_fixed_description_without_a_nonce() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let api = Role::ResourceServer {
        algs: fixture.verifier.algs(),
    };
    assert_eq!(
        fixture.verifier.algs().as_str(),
        fixture.verifier.algorithms().to_string()
    );
    let key = p256();
    let mut proof = valid(&fixture, &key).sign(&key);
    proof.replace_range(proof.len() - 4.., "AAAA");
    let refused = fixture.refusal(&proof, Reason::BadSignature);

    let parts = refused.answer().to_parts(&Role::AuthorizationServer);
    assert_eq!(parts.status, 400);
    assert_eq!(
        parts.body,
        r#"{"error":"invalid_dpop_proof","error_description":"DPoP proof signature does not verify"}"#
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 0);

    let parts = refused.answer().to_parts(&api);
    assert_eq!(parts.status, 401);
    assert_eq!(
        parts.header("WWW-Authenticate").unwrap(),
        format!(
            r#"DPoP error="invalid_dpop_proof", error_description="DPoP proof signature does not verify", algs="{}""#,
            fixture.verifier.algorithms()
        )
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 0);

    let parts = Answer::from(Rejection::new(Reason::JktMismatch)).to_parts(&api);
    assert!(
        parts
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with(r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256 "#),
        "{parts:?}"
    );

    // No credentials at all: the bare challenge at a resource server.
    let missing = dpop_access_token::<_, str>([]).unwrap_err();
    let parts = missing.answer().to_parts(&api);
    assert_eq!(
        parts.header("WWW-Authenticate").unwrap(),
        format!(r#"DPoP algs="{}""#, fixture.verifier.algorithms())
    );
    assert_eq!(count(&parts, "DPoP-Nonce"), 0);
    let parts = missing.answer().to_parts(&Role::AuthorizationServer);
    assert_eq!(parts.status, 400);
    assert!(parts.body.starts_with(r#"{"error":"invalid_dpop_proof""#));

    // A server that wants the next proof to carry a nonce adds one; still exactly one header.
    let nonce = fixture.verifier.validator().issue();
    let parts = refused.answer().with_nonce(nonce.clone()).to_parts(&api);
    assert_eq!(count(&parts, "DPoP-Nonce"), 1);
    assert_eq!(parts.header("DPoP-Nonce"), Some(nonce.as_str()));
}

#[test]
fn every_reason_renders_its_own_fixed_description() {
    let reasons = [
        Reason::MissingProof,
        Reason::MultipleProofs,
        Reason::ProofTooLarge,
        Reason::MalformedJws,
        Reason::MalformedHeader,
        Reason::DuplicateMember,
        Reason::NestingTooDeep,
        Reason::WrongTyp,
        Reason::UnsupportedCrit,
        Reason::UnsupportedAlg,
        Reason::MissingJwk,
        Reason::PrivateKeyMember,
        Reason::SymmetricKey,
        Reason::UnsupportedKey,
        Reason::InvalidKey,
        Reason::AlgKeyMismatch,
        Reason::RsaKeyTooSmall,
        Reason::RsaKeyTooLarge,
        Reason::BadSignature,
        Reason::MalformedClaims,
        Reason::HtmMismatch,
        Reason::HtuMismatch,
        Reason::InvalidIat,
        Reason::IatTooOld,
        Reason::IatInFuture,
        Reason::InvalidJti,
        Reason::JtiTooLong,
        Reason::MissingAth,
        Reason::AthMismatch,
        Reason::JktMismatch,
        Reason::DpopJktMismatch,
        Reason::Replayed,
        Reason::ReplayCacheFull,
        Reason::ReplayCacheUnavailable,
        Reason::BearerScheme,
        Reason::MalformedAuthorization,
    ];
    for reason in reasons {
        assert!(
            ErrorDescription::new(reason.description()).is_ok(),
            "{reason:?}"
        );
        let refused = Rejection::new(reason);
        let parts = refused.answer().to_parts(&Role::AuthorizationServer);
        assert_eq!(
            parts.body,
            format!(
                r#"{{"error":"{}","error_description":"{}"}}"#,
                refused.error_code(),
                reason.description()
            )
        );
        assert_eq!(count(&parts, "DPoP-Nonce"), 0, "{reason:?}");
    }
}
