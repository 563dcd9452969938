//! Error types for misuse and misconfiguration.
//!
//! A rejected nonce is *not* an error: it is the [`UseDpopNonce`](crate::UseDpopNonce) outcome of
//! [`NonceValidator::validate`](crate::NonceValidator::validate). The types here only describe
//! values that a caller built wrongly.

use thiserror::Error;

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

/// A nonce source was configured with values it cannot work with.
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
    /// A value given to the source is not acceptable; the text says which and why.
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
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
