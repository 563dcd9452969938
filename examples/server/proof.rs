//! DPoP proof verification (RFC 9449 §4.3) with the `jsonwebtoken` crate.
//!
//! This module checks everything about a proof except its `nonce` (which `dpop_nonce` checks)
//! and its `jti` (which the replay cache checks): the JWS shape, `typ`, `alg`, the embedded public
//! `jwk`, the signature, `htm`, `htu` and `iat`. It hands back what the caller needs next: the
//! key's RFC 7638 thumbprint, the `jti`, the `nonce` and the `ath` claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The longest `DPoP` header accepted, in bytes. An ES256 proof is about 500 bytes and an RS256
/// proof with a 4096-bit key about 1.5 KiB; anything far larger is refused before any parsing.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The JWS algorithms accepted in proofs, as advertised in the metadata and the `algs`
/// challenge parameter.
pub const SUPPORTED_ALGS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];

/// How far in the past a proof's `iat` may lie, in seconds.
const IAT_MAX_AGE: i64 = 60;
/// How far in the future a proof's `iat` may lie (client clocks run ahead), in seconds.
const IAT_MAX_AHEAD: i64 = 10;

/// JWK members that only private (or symmetric) keys have. A proof's key must be public.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// What the request looked like, for the `htm`, `htu` and `iat` checks.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The public URL of the endpoint, without query or fragment.
    pub url: &'a str,
    /// The current time, in seconds since the UNIX epoch.
    pub now: i64,
}

/// A proof whose signature and request binding were verified.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url (the `jkt`).
    pub jkt: String,
    /// The proof's unique identifier, for the replay cache.
    pub jti: String,
    /// The `nonce` claim, for `dpop_nonce`'s validator.
    pub nonce: Option<String>,
    /// The `ath` claim (hash of the access token), for the resource server.
    pub ath: Option<String>,
}

/// Why a proof was refused. The text is safe to send in an `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofError(pub &'static str);

/// The claims a proof must (or may) carry.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    nonce: Option<String>,
    ath: Option<String>,
}

/// Verifies a `DPoP` header value against the request it came with.
pub fn verify(proof: &str, expected: Expected<'_>) -> Result<VerifiedProof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError("DPoP proof is too large"));
    }
    let mut segments = proof.split('.');
    let (Some(header), Some(_), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(ProofError("DPoP proof is not a compact JWS"));
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(ProofError("DPoP proof header is not a JSON object"))?;

    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError("DPoP proof typ must be dpop+jwt"));
    }
    if header.contains_key("crit") {
        return Err(ProofError(
            "DPoP proof carries unsupported critical header parameters",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(algorithm)
        .ok_or(ProofError("DPoP proof alg is missing or not supported"))?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError("DPoP proof header has no jwk"))?;
    check_public_key(jwk, alg)?;
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|_| ProofError("DPoP proof jwk is not a valid key"))?;
    let key =
        DecodingKey::from_jwk(&jwk).map_err(|_| ProofError("DPoP proof jwk is not a valid key"))?;

    // The signature, through the JOSE crate. Registered time claims are checked below by hand:
    // a proof has `iat` but no `exp`.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                ProofError("DPoP proof signature does not verify")
            }
            jsonwebtoken::errors::ErrorKind::Json(_) => ProofError(
                "DPoP proof lacks a required claim (jti, htm, htu, iat) or has a malformed one",
            ),
            _ => ProofError("DPoP proof could not be verified"),
        })?
        .claims;

    if claims.htm != expected.method {
        return Err(ProofError(
            "DPoP proof htm does not match the request method",
        ));
    }
    match (normalize_htu(&claims.htu), normalize_htu(expected.url)) {
        (Some(claimed), Some(actual)) if claimed == actual => {}
        _ => return Err(ProofError("DPoP proof htu does not match the request URL")),
    }
    if claims.iat < expected.now.saturating_sub(IAT_MAX_AGE) {
        return Err(ProofError("DPoP proof iat is too old"));
    }
    if claims.iat > expected.now.saturating_add(IAT_MAX_AHEAD) {
        return Err(ProofError("DPoP proof iat is in the future"));
    }
    if claims.jti.is_empty() {
        return Err(ProofError("DPoP proof jti is empty"));
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| ProofError("DPoP proof jwk has no thumbprint"))?;
    Ok(VerifiedProof {
        jkt,
        jti: claims.jti,
        nonce: claims.nonce,
        ath: claims.ath,
    })
}

/// The JOSE algorithm for an `alg` value, if it is on the allow-list. `none` and every
/// symmetric algorithm are absent by construction.
fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        _ => None,
    }
}

/// The key must be public and of the type the algorithm needs.
fn check_public_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<(), ProofError> {
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| jwk.contains_key(*member))
    {
        return Err(ProofError(
            "DPoP proof jwk must not hold private key material",
        ));
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let fits = match alg {
        Algorithm::ES256 => member("kty") == Some("EC") && member("crv") == Some("P-256"),
        Algorithm::EdDSA => member("kty") == Some("OKP") && member("crv") == Some("Ed25519"),
        Algorithm::RS256 | Algorithm::PS256 => {
            let modulus_len = member("n")
                .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                .map(|n| n.iter().skip_while(|b| **b == 0).count());
            member("kty") == Some("RSA")
                && modulus_len.is_some_and(|len| len >= MIN_RSA_MODULUS_LEN)
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(ProofError("DPoP proof jwk does not fit its alg"))
    }
}

/// Normalizes an `http(s)` URL for the `htu` comparison (RFC 9449 §4.3 check 9, RFC 3986 §6):
/// drops query and fragment, lowercases scheme and host, drops the scheme's default port and
/// turns an empty path into `/`. Refuses other schemes and URLs with user information.
pub fn normalize_htu(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (scheme, rest) = url[..end].split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}
