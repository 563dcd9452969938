//! RFC vectors and valid proofs of every supported kind, with every compiled backend.

mod proof_support;

use dpop_nonce::proof::{
    Algorithm, Backend, ProofRequest, PublicJwk, RejectionKind, dpop_access_token,
};
use dpop_nonce::{Requirement, replay::ReplayCache as _};
use proof_support::{Fixture, HTU, Key, Proof, b64};
use serde_json::json;
use sha2::Digest as _;
use time::Duration;

/// RFC 9449 Figure 5.
const FIGURE_5: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
const FIGURE_5_IAT: i64 = 1_562_262_616;
const FIGURE_5_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

/// RFC 7638 §3.1.
const RFC7638_JWK: &str = r#"{"e":"AQAB","kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
const RFC7638_JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/// RFC 9449 §7.1 access token and its `ath`.
const ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
const ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

#[test]
fn the_default_backend_is_ring_when_enabled() {
    #[cfg(feature = "proof-ring")]
    assert_eq!(Backend::DEFAULT, Backend::Ring);
    #[cfg(not(feature = "proof-ring"))]
    assert_eq!(Backend::DEFAULT, Backend::RustCrypto);
}

#[test]
fn figure_5_verifies_at_its_iat_with_every_backend() {
    for &backend in Backend::ALL {
        let fixture = Fixture::with(backend, Requirement::Optional);
        fixture
            .clock
            .advance(Duration::seconds(FIGURE_5_IAT - proof_support::NOW));
        let request = ProofRequest::new("POST", "https://server.example.com/token", [FIGURE_5]);
        let verified = fixture
            .verifier
            .verify(&request)
            .expect("Figure 5 verifies");
        assert_eq!(verified.jkt().as_str(), FIGURE_5_JKT, "{backend}");
        assert_eq!(verified.jti(), "-BwC3ESc6acc2lTc");
        assert_eq!(verified.iat(), FIGURE_5_IAT);
        assert_eq!(verified.htm(), "POST");
        assert_eq!(verified.htu(), "https://server.example.com/token");
        assert_eq!(verified.alg(), Algorithm::Es256);
        // No nonce in the proof, nonces optional: the answer carries one.
        assert!(verified.refresh_nonce().is_some());
        assert_eq!(fixture.inserts(), 1);
    }
}

#[test]
fn figure_5_thumbprint() {
    let jwk = PublicJwk::from_json(
        br#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#,
    )
    .unwrap();
    assert_eq!(jwk.thumbprint().as_str(), FIGURE_5_JKT);
    assert!(jwk.thumbprint().matches(FIGURE_5_JKT));
}

#[test]
fn rfc_7638_rsa_thumbprint() {
    let jwk = PublicJwk::from_json(RFC7638_JWK.as_bytes()).unwrap();
    assert_eq!(jwk.kty(), "RSA");
    assert_eq!(jwk.thumbprint().as_str(), RFC7638_JKT);
    // Member order and extra members do not change it.
    let reordered = RFC7638_JWK.replace(
        r#"{"e":"AQAB","#,
        r#"{"alg":"RS256","kid":"2011-04-29","e":"AQAB","#,
    );
    let jwk = PublicJwk::from_json(reordered.as_bytes()).unwrap();
    assert_eq!(jwk.thumbprint().as_str(), RFC7638_JKT);
}

#[test]
fn ath_vector() {
    assert_eq!(b64(sha2::Sha256::digest(ACCESS_TOKEN)), ATH);
    assert_eq!(
        dpop_access_token([format!("DPoP {ACCESS_TOKEN}").as_str()]),
        Ok(ACCESS_TOKEN)
    );
    for &backend in Backend::ALL {
        let fixture = Fixture::new(backend);
        let key = Key::p256(3);
        let jkt = PublicJwk::from_json(key.jwk().to_string().as_bytes())
            .unwrap()
            .thumbprint();
        let nonce = fixture.nonce();
        let proof = Proof::new(&key, Some(nonce.as_str()))
            .claims(|claims| claims["ath"] = json!(ATH))
            .sign(&key);
        let request = ProofRequest::new("POST", HTU, [proof.as_str()])
            .access_token(ACCESS_TOKEN, jkt.as_str());
        let verified = fixture.verifier.verify(&request).expect("ath matches");
        assert_eq!(verified.jkt(), &jkt);
        assert!(verified.refresh_nonce().is_none());
    }
}

#[test]
fn every_key_type_and_algorithm_verifies_with_every_backend() {
    let cases = [
        (Key::p256(1), "ES256", Algorithm::Es256),
        (Key::ed25519(2), "EdDSA", Algorithm::EdDsa),
        (Key::ed25519(2), "Ed25519", Algorithm::Ed25519),
        (Key::rsa2048(), "RS256", Algorithm::Rs256),
        (Key::rsa2048(), "PS256", Algorithm::Ps256),
    ];
    for &backend in Backend::ALL {
        let fixture = Fixture::new(backend);
        for (key, alg, expected) in &cases {
            let nonce = fixture.nonce();
            let claims = json!({
                "jti": proof_support::jti(),
                "htm": "POST",
                "htu": HTU,
                "iat": proof_support::NOW,
                "nonce": nonce.as_str(),
            });
            let proof = Proof::from_values(key, alg, claims).sign(key);
            let verified = fixture
                .verify(&proof)
                .unwrap_or_else(|refused| panic!("{backend} {alg}: {refused}"));
            assert_eq!(verified.alg(), *expected);
        }
    }
}

#[test]
fn nonce_flow_bootstraps_then_serves() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let key = Key::p256(4);
    let refused = fixture
        .verify(&Proof::new(&key, None).sign(&key))
        .unwrap_err();
    let RejectionKind::UseDpopNonce { nonce } = refused.kind() else {
        panic!("expected use_dpop_nonce, got {refused}");
    };
    assert_eq!(refused.error_code(), "use_dpop_nonce");
    assert_eq!(refused.nonce(), Some(nonce));
    let retry = Proof::new(&key, Some(nonce.as_str())).sign(&key);
    assert!(fixture.verify(&retry).is_ok());
    assert_eq!(fixture.inserts(), 1);
}

#[test]
fn the_replay_entry_is_scoped_by_the_thumbprint() {
    let fixture = Fixture::new(Backend::DEFAULT);
    let nonce = fixture.nonce();
    let (first, second) = (Key::p256(5), Key::p256(6));
    let claims = |_: &Key| {
        json!({"jti": "same-jti", "htm": "POST", "htu": HTU, "iat": proof_support::NOW,
               "nonce": nonce.as_str()})
    };
    assert!(
        fixture
            .verify(&Proof::from_values(&first, "ES256", claims(&first)).sign(&first))
            .is_ok()
    );
    assert!(
        fixture
            .verify(&Proof::from_values(&second, "ES256", claims(&second)).sign(&second))
            .is_ok()
    );
    // The cache really holds entries keyed by the thumbprint.
    let jkt = PublicJwk::from_json(first.jwk().to_string().as_bytes())
        .unwrap()
        .thumbprint();
    let key = dpop_nonce::replay::ReplayKey::new(jkt.as_str(), "same-jti").unwrap();
    assert!(!fixture.cache.inner.insert(&key).unwrap().is_fresh());
}
