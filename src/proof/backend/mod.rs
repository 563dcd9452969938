//! Signature verification backends. Each backend file checks one signature with one key and
//! nothing else; the shapes and sizes were checked before.

use std::fmt;

use super::alg::Algorithm;
use super::jwk::KeyMaterial;

#[cfg(feature = "proof-ring")]
mod ring;
mod rust_crypto;

/// The library that checks signatures.
///
/// [`Backend::DEFAULT`] is `ring` when the `proof-ring` feature is on, RustCrypto otherwise.
/// Both accept the same algorithms and keys; choose one on a verifier with
/// [`VerifierBuilder::backend`](super::VerifierBuilder::backend).
///
/// ```
/// use dpop_nonce::proof::Backend;
///
/// # #[cfg(not(feature = "proof-ring"))]
/// assert_eq!(Backend::DEFAULT, Backend::RustCrypto);
/// assert_eq!(Backend::RustCrypto.name(), "rustcrypto");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The RustCrypto crates: `p256`, `p384`, `ed25519-dalek` (strict verification) and `rsa`.
    RustCrypto,
    /// The `ring` crate.
    #[cfg(feature = "proof-ring")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proof-ring")))]
    Ring,
}

impl Backend {
    /// The backend used unless another is chosen: `ring` with the `proof-ring` feature,
    /// RustCrypto otherwise.
    #[cfg(feature = "proof-ring")]
    pub const DEFAULT: Self = Self::Ring;
    /// The backend used unless another is chosen: `ring` with the `proof-ring` feature,
    /// RustCrypto otherwise.
    #[cfg(not(feature = "proof-ring"))]
    pub const DEFAULT: Self = Self::RustCrypto;

    /// Every backend compiled in.
    pub const ALL: &'static [Self] = &[
        Self::RustCrypto,
        #[cfg(feature = "proof-ring")]
        Self::Ring,
    ];

    /// A short name for logs and benchmarks: `rustcrypto` or `ring`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RustCrypto => "rustcrypto",
            #[cfg(feature = "proof-ring")]
            Self::Ring => "ring",
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `signature` over `message` verifies with `key` by `alg`. The caller has checked that
/// `alg` fits the key and that the signature has the right length.
pub(crate) fn verify(
    backend: Backend,
    key: &KeyMaterial,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match backend {
        Backend::RustCrypto => rust_crypto::verify(key, alg, message, signature),
        #[cfg(feature = "proof-ring")]
        Backend::Ring => ring::verify(key, alg, message, signature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::PublicJwk;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// RFC 9449 Figure 5.
    const FIGURE_5: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";

    const FIGURE_5_JWK: &[u8] = br#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;

    #[test]
    fn every_backend_verifies_figure_5_and_refuses_a_flipped_bit() {
        let jwk = PublicJwk::from_json(FIGURE_5_JWK).unwrap();
        let (input, signature) = FIGURE_5.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        for &backend in Backend::ALL {
            assert_eq!(
                jwk.verify_signature(Algorithm::Es256, backend, input.as_bytes(), &signature),
                Ok(()),
                "{backend}"
            );
        }
        signature[10] ^= 1;
        for &backend in Backend::ALL {
            assert_eq!(
                jwk.verify_signature(Algorithm::Es256, backend, input.as_bytes(), &signature),
                Err(crate::proof::Reason::BadSignature),
                "{backend}"
            );
        }
    }
}
