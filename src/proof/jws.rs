//! The compact JWS serialization (RFC 7515 §7.1) and the proof's JOSE header (RFC 9449 §4.2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::alg::{Algorithm, Algorithms};
use super::json::{self, JsonError, Object, Value};
use super::jwk::PublicJwk;
use super::rejection::Reason;

/// The three parts of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactJws<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) header: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
}

impl<'a> CompactJws<'a> {
    /// Splits `value` into three non-empty parts of base64url characters.
    pub(crate) fn split(value: &'a [u8]) -> Result<Self, Reason> {
        if !value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Reason::MalformedJws);
        }
        let mut parts = value.split(|&b| b == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reason::MalformedJws);
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(Reason::MalformedJws);
        }
        let signing_input = &value[..header.len() + 1 + payload.len()];
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }
}

/// Decodes one part; `reason` when it is not strict base64url.
pub(crate) fn decode(part: &[u8], reason: Reason) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| reason)
}

/// Parses a JSON object, naming `malformed` for a syntax error.
pub(crate) fn object(bytes: &[u8], malformed: Reason) -> Result<Object, Reason> {
    json::parse_object(bytes).map_err(|err| match err {
        JsonError::Syntax => malformed,
        JsonError::Duplicate => Reason::DuplicateMember,
        JsonError::TooDeep => Reason::NestingTooDeep,
    })
}

/// The checked JOSE header of a proof.
#[derive(Debug)]
pub(crate) struct ProofHeader {
    pub(crate) alg: Algorithm,
    pub(crate) jwk: PublicJwk,
}

impl ProofHeader {
    /// Decodes and checks the header: `typ`, `crit`, `alg` against `allowed`, then the `jwk`
    /// (public, well formed, and fitting `alg`).
    pub(crate) fn parse(encoded: &[u8], allowed: Algorithms) -> Result<Self, Reason> {
        let bytes = decode(encoded, Reason::MalformedHeader)?;
        let header = object(&bytes, Reason::MalformedHeader)?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(Reason::WrongTyp);
        }
        if header.contains("crit") {
            return Err(Reason::UnsupportedCrit);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .filter(|alg| allowed.contains(*alg))
            .ok_or(Reason::UnsupportedAlg)?;
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or(Reason::MissingJwk)?;
        let jwk = PublicJwk::from_object(jwk)?;
        if !jwk.fits(alg) {
            return Err(Reason::AlgKeyMismatch);
        }
        Ok(Self { alg, jwk })
    }
}
