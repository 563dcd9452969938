//! Error types for misuse and misconfiguration.
//!
//! A rejected nonce is *not* an error: it is the [`UseDpopNonce`](crate::UseDpopNonce) outcome of
//! [`NonceValidator::validate`](crate::NonceValidator::validate). The types here only describe
//! values that a caller built wrongly.

use thiserror::Error;
use time::Duration;

/// Why a string is not a valid [`Nonce`](crate::Nonce).
///
/// ```
/// use dpop_nonce::{Nonce, NonceError};
///
/// assert_eq!(Nonce::parse(""), Err(NonceError::Empty));
/// assert_eq!(Nonce::parse("a b"), Err(NonceError::InvalidChar { index: 1 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NonceError {
    /// The value is empty; RFC 9449 §8.1 asks for at least one character.
    #[error("a nonce must not be empty")]
    Empty,
    /// The value is longer than [`Nonce::MAX_LEN`](crate::Nonce::MAX_LEN).
    #[error("a nonce must be at most {max} bytes long, this one has {len}")]
    TooLong {
        /// The length of the rejected value, in bytes.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },
    /// The byte at `index` is not an NQCHAR (`%x21 / %x23-5B / %x5D-7E`).
    #[error("byte {index} of the nonce is not an NQCHAR (%x21 / %x23-5B / %x5D-7E)")]
    InvalidChar {
        /// Offset of the first offending byte.
        index: usize,
    },
}

/// A nonce source, a replay cache or one of their settings was given values it cannot work
/// with: the one configuration error of every builder in the crate.
///
/// Each variant names the setting and the range it takes; none carries a secret.
///
/// ```
/// use dpop_nonce::{ConfigError, InMemoryNonceSource};
/// use time::Duration;
///
/// let err = InMemoryNonceSource::builder().rotation(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err, ConfigError::NonPositiveRotation);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The rotation interval is zero or negative.
    #[error("the rotation interval must be positive")]
    NonPositiveRotation,
    /// The rotation interval is longer than [`Rotation::MAX`](crate::Rotation::MAX).
    #[error("the rotation interval must be at most 100 years")]
    RotationTooLong,
    /// The rotation interval is shorter than this source allows.
    #[error("this source needs a rotation interval of at least {min}")]
    RotationTooShort {
        /// The shortest interval the source accepts.
        min: Duration,
    },
    /// The lead (how long before a window starts its value is accepted) is negative, or too
    /// long for the rotation interval.
    #[error("the lead must be between zero and {max}")]
    LeadOutOfRange {
        /// The longest lead accepted with this rotation interval.
        max: Duration,
    },
    /// No secret was given to a derived source.
    #[error("a derived nonce source needs at least one secret")]
    NoSecret,
    /// More secrets than a derived source holds.
    #[error("a derived nonce source takes at most {max} secrets, {count} were given")]
    TooManySecrets {
        /// How many secrets were given.
        count: usize,
        /// The most accepted.
        max: usize,
    },
    /// A secret is too short. The message names its position and length, never its bytes.
    #[error("secret {index} is {len} bytes long, at least {min} are required")]
    SecretTooShort {
        /// Position of the secret in the list (0 is the issuing secret).
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The shortest length accepted.
        min: usize,
    },
    /// A label (naming the server a source issues for) is empty, too long, or holds a character
    /// the source cannot use.
    #[error("the label must be 1 to {max} bytes of {allowed}")]
    InvalidLabel {
        /// The longest label accepted.
        max: usize,
        /// The characters accepted.
        allowed: &'static str,
    },
    /// A Redis key prefix is empty, too long, or holds a character outside visible ASCII.
    #[error("the key prefix must be 1 to {max} bytes of visible ASCII")]
    InvalidPrefix {
        /// The longest prefix accepted.
        max: usize,
    },
    /// A timeout is zero or negative.
    #[error("the {which} timeout must be positive")]
    NonPositiveTimeout {
        /// Which timeout: `"connect"` or `"read/write"`.
        which: &'static str,
    },
    /// A back-off's minimum exceeds its maximum.
    #[error("the back-off minimum must not exceed its maximum")]
    BackoffReversed,
    /// A replay-cache entry lifetime is too short.
    #[error("the entry lifetime must be at least {min}")]
    LifetimeTooShort {
        /// The shortest lifetime accepted.
        min: Duration,
    },
    /// A replay-cache entry lifetime is too long for the backend.
    #[error("the entry lifetime must be at most {max}")]
    LifetimeTooLong {
        /// The longest lifetime accepted.
        max: Duration,
    },
    /// A count (capacity, shards, connections) is out of range.
    #[error("the {which} must be between {min} and {max}")]
    CountOutOfRange {
        /// Which setting.
        which: &'static str,
        /// The smallest value accepted.
        min: usize,
        /// The largest value accepted.
        max: usize,
    },
}

/// A value given to the renderer could break the HTTP answer (header injection, invalid JSON,
/// an oversized challenge) and was refused.
///
/// ```
/// use dpop_nonce::RenderError;
/// use dpop_nonce::render::{Algs, ErrorDescription};
///
/// assert_eq!(Algs::new(["ES256", "bad\"alg"]), Err(RenderError::InvalidAlg { index: 1 }));
/// assert_eq!(
///     ErrorDescription::new("line\nbreak"),
///     Err(RenderError::InvalidDescription { index: 4 })
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RenderError {
    /// An algorithm name is empty or holds a byte outside NQCHAR (space, `"`, `\`, controls,
    /// non-ASCII).
    #[error("algorithm name {index} is empty or holds a character outside NQCHAR")]
    InvalidAlg {
        /// Position of the offending name in the list.
        index: usize,
    },
    /// An error description holds a byte outside RFC 6749's `%x20-21 / %x23-5B / %x5D-7E`.
    #[error("byte {index} of the error description is outside %x20-21 / %x23-5B / %x5D-7E")]
    InvalidDescription {
        /// Offset of the first offending byte.
        index: usize,
    },
    /// An error description is empty; RFC 6749 §5.2 asks for at least one character.
    #[error("an error description must not be empty")]
    EmptyDescription,
    /// An error description is longer than
    /// [`ErrorDescription::MAX_LEN`](crate::render::ErrorDescription::MAX_LEN).
    #[error("an error description must be at most {max} bytes long, this one has {len}")]
    DescriptionTooLong {
        /// The length of the refused text, in bytes.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },
}
