//! Public JWKs (RFC 7517, RFC 7518 §6, RFC 8037) and their RFC 7638 SHA-256 thumbprint.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::alg::{Algorithm, KeyKind};
use super::backend::{self, Backend};
use super::json::{self, JsonError, Object, Value};
use super::rejection::Reason;

/// Members only private or symmetric keys have. A proof's key must be public.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits; larger keys are refused before any big-number work.
pub const MAX_RSA_BITS: usize = 8192;

/// The key material, decoded and checked for size.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    /// An uncompressed SEC1 point, `0x04 || x || y`, on P-256.
    P256([u8; 65]),
    /// An uncompressed SEC1 point, `0x04 || x || y`, on P-384.
    P384([u8; 97]),
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
    /// An RSA public key: big-endian modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// A public key from a proof's `jwk` header: EC (P-256, P-384), OKP (Ed25519) or RSA.
///
/// Parsing refuses private members and symmetric keys, checks the member sizes (RSA: 2048 to
/// 8192 bits), and keeps what the RFC 7638 thumbprint needs.
///
/// ```
/// use dpop_nonce::proof::PublicJwk;
///
/// let jwk = PublicJwk::from_json(br#"{"kty":"EC","crv":"P-256",
///     "x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
///     "y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#)?;
/// assert_eq!(jwk.thumbprint().as_str(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
/// # Ok::<(), dpop_nonce::proof::Reason>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PublicJwk {
    key: KeyMaterial,
    /// The RFC 7638 input: the required members, in lexicographic order, no whitespace.
    canonical: String,
}

impl PublicJwk {
    /// Parses a JWK from its JSON text (with the same bounds as a proof header).
    ///
    /// # Errors
    ///
    /// The [`Reason`] the verifier would give for this `jwk`: [`Reason::PrivateKeyMember`],
    /// [`Reason::SymmetricKey`], [`Reason::UnsupportedKey`], [`Reason::InvalidKey`],
    /// [`Reason::RsaKeyTooSmall`], [`Reason::RsaKeyTooLarge`], or a JSON reason.
    pub fn from_json(json: &[u8]) -> Result<Self, Reason> {
        let object = json::parse_object(json).map_err(|err| match err {
            JsonError::Syntax => Reason::InvalidKey,
            JsonError::Duplicate => Reason::DuplicateMember,
            JsonError::TooDeep => Reason::NestingTooDeep,
        })?;
        Self::from_object(&object)
    }

    pub(crate) fn from_object(jwk: &Object) -> Result<Self, Reason> {
        if PRIVATE_MEMBERS.iter().any(|member| jwk.contains(member)) {
            return Err(Reason::PrivateKeyMember);
        }
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        match jwk
            .get("kty")
            .map(|kty| kty.as_str().ok_or(Reason::InvalidKey))
        {
            None => Err(Reason::InvalidKey),
            Some(Err(reason)) => Err(reason),
            Some(Ok("oct")) => Err(Reason::SymmetricKey),
            Some(Ok("EC")) => {
                let (Some(crv), Some(x), Some(y)) = (text("crv"), text("x"), text("y")) else {
                    return Err(Reason::InvalidKey);
                };
                let key = match crv {
                    "P-256" => KeyMaterial::P256(point(x, y)?),
                    "P-384" => KeyMaterial::P384(point(x, y)?),
                    _ => return Err(Reason::UnsupportedKey),
                };
                let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
                Ok(Self { key, canonical })
            }
            Some(Ok("OKP")) => {
                let (Some(crv), Some(x)) = (text("crv"), text("x")) else {
                    return Err(Reason::InvalidKey);
                };
                if crv != "Ed25519" {
                    return Err(Reason::UnsupportedKey);
                }
                let key = KeyMaterial::Ed25519(fixed(x)?);
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                Ok(Self { key, canonical })
            }
            Some(Ok("RSA")) => {
                let (Some(n_text), Some(e_text)) = (text("n"), text("e")) else {
                    return Err(Reason::InvalidKey);
                };
                // 8192 bits are 1366 base64url characters: refuse longer ones before decoding.
                if n_text.len() > (MAX_RSA_BITS / 8).div_ceil(3) * 4 {
                    return Err(Reason::RsaKeyTooLarge);
                }
                let n = unsigned(n_text)?;
                let e = unsigned(e_text)?;
                let bits = n.len() * 8 - n.first().map_or(8, |top| top.leading_zeros() as usize);
                if bits < MIN_RSA_BITS {
                    return Err(Reason::RsaKeyTooSmall);
                }
                if bits > MAX_RSA_BITS {
                    return Err(Reason::RsaKeyTooLarge);
                }
                // An odd exponent of at least 3 and at most 33 bits, as every backend requires.
                let exponent = e
                    .iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                if e.len() > 5 || !(3..1 << 33).contains(&exponent) || exponent % 2 == 0 {
                    return Err(Reason::InvalidKey);
                }
                if n.last().is_none_or(|low| low % 2 == 0) {
                    return Err(Reason::InvalidKey);
                }
                let canonical = format!(r#"{{"e":"{e_text}","kty":"RSA","n":"{n_text}"}}"#);
                Ok(Self {
                    key: KeyMaterial::Rsa { n, e },
                    canonical,
                })
            }
            Some(Ok(_)) => Err(Reason::UnsupportedKey),
        }
    }

    /// The `kty` value: `EC`, `OKP` or `RSA`.
    pub fn kty(&self) -> &'static str {
        match self.key {
            KeyMaterial::P256(_) | KeyMaterial::P384(_) => "EC",
            KeyMaterial::Ed25519(_) => "OKP",
            KeyMaterial::Rsa { .. } => "RSA",
        }
    }

    /// Whether `alg` can be used with this key (type and curve).
    pub fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (alg.key_kind(), &self.key),
            (KeyKind::P256, KeyMaterial::P256(_))
                | (KeyKind::P384, KeyMaterial::P384(_))
                | (KeyKind::Ed25519, KeyMaterial::Ed25519(_))
                | (KeyKind::Rsa, KeyMaterial::Rsa { .. })
        )
    }

    /// The RFC 7638 JWK SHA-256 thumbprint (the `jkt`).
    pub fn thumbprint(&self) -> Thumbprint {
        let digest = Sha256::digest(self.canonical.as_bytes());
        let mut text = [0u8; Thumbprint::LEN];
        // 32 bytes always encode to 43 characters; on the impossible failure the zero bytes
        // would make a thumbprint that matches nothing real.
        let _ = URL_SAFE_NO_PAD.encode_slice(digest, &mut text);
        Thumbprint(text)
    }

    /// Checks `signature` over `signing_input` with this key, by `alg`, with `backend`.
    ///
    /// This is the bare signature step of proof verification, exposed for benchmarks and for
    /// callers with their own JOSE parsing.
    ///
    /// # Errors
    ///
    /// [`Reason::AlgKeyMismatch`] when `alg` does not fit the key, [`Reason::BadSignature`]
    /// when the signature does not verify (or the key is not a valid point or modulus).
    pub fn verify_signature(
        &self,
        alg: Algorithm,
        backend: Backend,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), Reason> {
        if !self.fits(alg) {
            return Err(Reason::AlgKeyMismatch);
        }
        let expected_len = match &self.key {
            KeyMaterial::P256(_) | KeyMaterial::Ed25519(_) => 64,
            KeyMaterial::P384(_) => 96,
            KeyMaterial::Rsa { n, .. } => n.len(),
        };
        if signature.len() != expected_len {
            return Err(Reason::BadSignature);
        }
        if backend::verify(backend, &self.key, alg, signing_input, signature) {
            Ok(())
        } else {
            Err(Reason::BadSignature)
        }
    }
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicJwk")
            .field("kty", &self.kty())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

/// Decodes strict base64url (no padding, canonical trailing bits).
pub(crate) fn b64(text: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| Reason::InvalidKey)
}

/// A fixed-length member.
fn fixed<const N: usize>(text: &str) -> Result<[u8; N], Reason> {
    if text.len() != (N * 4).div_ceil(3) {
        return Err(Reason::InvalidKey);
    }
    b64(text)?.try_into().map_err(|_| Reason::InvalidKey)
}

/// An uncompressed point from the `x` and `y` coordinates.
fn point<const N: usize>(x: &str, y: &str) -> Result<[u8; N], Reason> {
    let coordinate = (N - 1) / 2;
    let (x, y) = (b64(x)?, b64(y)?);
    if x.len() != coordinate || y.len() != coordinate {
        return Err(Reason::InvalidKey);
    }
    let mut point = [0u8; N];
    point[0] = 4;
    point[1..=coordinate].copy_from_slice(&x);
    point[coordinate + 1..].copy_from_slice(&y);
    Ok(point)
}

/// A big-endian unsigned integer in its shortest form (RFC 7518 §6.3.1: no leading zeros).
fn unsigned(text: &str) -> Result<Vec<u8>, Reason> {
    let bytes = b64(text)?;
    match bytes.first() {
        None | Some(0) => Err(Reason::InvalidKey),
        Some(_) => Ok(bytes),
    }
}

/// An RFC 7638 JWK SHA-256 thumbprint, base64url without padding (43 characters): the `jkt`
/// of RFC 9449 (`cnf.jkt` in tokens, `dpop_jkt` in authorization requests).
///
/// Comparison with [`Thumbprint::matches`] runs in constant time.
///
/// ```
/// use dpop_nonce::proof::PublicJwk;
///
/// let jwk = PublicJwk::from_json(br#"{"e":"AQAB","kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#)?;
/// let jkt = jwk.thumbprint();
/// assert!(jkt.matches("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
/// assert!(!jkt.matches("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
/// # Ok::<(), dpop_nonce::proof::Reason>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; Thumbprint::LEN]);

impl Thumbprint {
    /// Length of the base64url text: 43.
    pub const LEN: usize = 43;

    /// The base64url text.
    pub fn as_str(&self) -> &str {
        // Always base64url ASCII; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether `jkt` is this thumbprint, compared in constant time (only a length other than
    /// 43 ends the comparison early).
    pub fn matches(&self, jkt: &str) -> bool {
        jkt.len() == Self::LEN && bool::from(self.0.ct_eq(jkt.as_bytes()))
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.as_str())
    }
}

impl AsRef<str> for Thumbprint {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
