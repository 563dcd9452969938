//! The JWS algorithms a proof may be signed with, and the allow-list of a verifier.

use std::fmt;

/// An asymmetric JWS algorithm for DPoP proofs (RFC 7518, RFC 8037, RFC 9864).
///
/// There is no variant for `none` nor for any MAC (`HS256`, ...): a verifier cannot be
/// configured to accept them, and proofs naming them are refused.
///
/// ```
/// use dpop_nonce::proof::Algorithm;
///
/// assert_eq!(Algorithm::from_name("ES256"), Some(Algorithm::Es256));
/// assert_eq!(Algorithm::from_name("none"), None);
/// assert_eq!(Algorithm::from_name("HS256"), None);
/// assert_eq!(Algorithm::Ed25519.name(), "Ed25519");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    Es256,
    /// ECDSA with P-384 and SHA-384.
    Es384,
    /// EdDSA (RFC 8037), here with Ed25519 keys only.
    EdDsa,
    /// Ed25519 by its fully specified name (RFC 9864).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 (salt of 32 bytes).
    Ps256,
    /// RSASSA-PSS with SHA-384 (salt of 48 bytes).
    Ps384,
    /// RSASSA-PSS with SHA-512 (salt of 64 bytes).
    Ps512,
}

/// The key type an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 10] = [
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Ed25519,
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
    ];

    /// The `alg` value, as registered with IANA.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
        }
    }

    /// The algorithm named `name` (exact, case-sensitive match), if it is supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub(crate) const fn key_kind(self) -> KeyKind {
        match self {
            Self::Es256 => KeyKind::P256,
            Self::Es384 => KeyKind::P384,
            Self::EdDsa | Self::Ed25519 => KeyKind::Ed25519,
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512 => {
                KeyKind::Rsa
            }
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The algorithms one verifier accepts: a small set of [`Algorithm`]s.
///
/// Its [`Display`](fmt::Display) form is the space-separated list the `algs` parameter of a
/// `WWW-Authenticate: DPoP` challenge and the `dpop_signing_alg_values_supported` metadata want.
///
/// ```
/// use dpop_nonce::proof::{Algorithm, Algorithms};
///
/// let algs = Algorithms::new([Algorithm::Es256, Algorithm::Ps256]);
/// assert!(algs.contains(Algorithm::Es256));
/// assert!(!algs.contains(Algorithm::Rs256));
/// assert_eq!(algs.to_string(), "ES256 PS256");
/// assert_eq!(Algorithms::default().to_string(), "ES256 ES384 EdDSA Ed25519 RS256 PS256");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithms(u16);

impl Algorithms {
    /// The default set: ES256, ES384, EdDSA, Ed25519, RS256 and PS256, the algorithms clients
    /// use in practice.
    pub const DEFAULT: Self = Self(
        Algorithm::Es256.bit()
            | Algorithm::Es384.bit()
            | Algorithm::EdDsa.bit()
            | Algorithm::Ed25519.bit()
            | Algorithm::Rs256.bit()
            | Algorithm::Ps256.bit(),
    );

    /// No algorithm at all. A verifier refuses to be built with it.
    pub const EMPTY: Self = Self(0);

    /// The set of `algs`.
    pub fn new(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        Self(algs.into_iter().fold(0, |bits, alg| bits | alg.bit()))
    }

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set, in the order of [`Algorithm::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |alg| self.contains(*alg))
    }
}

impl Default for Algorithms {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromIterator<Algorithm> for Algorithms {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl fmt::Display for Algorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, alg) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(alg.name())?;
        }
        Ok(())
    }
}
