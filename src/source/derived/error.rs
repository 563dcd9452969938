//! [`DerivedConfigError`]: what a derived source refuses to be built with.

use thiserror::Error;

use crate::error::ConfigError;

/// A [`DerivedNonceSource`](super::DerivedNonceSource) was configured with values it cannot
/// work with.
///
/// ```
/// use dpop_nonce::derived::{DerivedConfigError, DerivedNonceSource};
///
/// let err = DerivedNonceSource::builder("as").secret([7u8; 16]).build().unwrap_err();
/// assert_eq!(err, DerivedConfigError::SecretTooShort { index: 0, len: 16, min: 32 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerivedConfigError {
    /// No secret was given.
    #[error("a derived nonce source needs at least one secret")]
    NoSecret,
    /// More secrets than [`DerivedNonceSource::MAX_SECRETS`](super::DerivedNonceSource::MAX_SECRETS).
    #[error("a derived nonce source takes at most {max} secrets, {count} were given")]
    TooManySecrets {
        /// How many secrets were given.
        count: usize,
        /// The most accepted.
        max: usize,
    },
    /// A secret is shorter than
    /// [`DerivedNonceSource::MIN_SECRET_LEN`](super::DerivedNonceSource::MIN_SECRET_LEN) bytes.
    /// The message names its position and length, never its bytes.
    #[error("secret {index} is {len} bytes long, at least {min} are required")]
    SecretTooShort {
        /// Position of the secret in the list (0 is the issuing secret).
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The shortest length accepted.
        min: usize,
    },
    /// The label is empty.
    #[error("the label of a derived nonce source must not be empty")]
    EmptyLabel,
    /// The label is longer than
    /// [`DerivedNonceSource::MAX_LABEL_LEN`](super::DerivedNonceSource::MAX_LABEL_LEN) bytes.
    #[error("the label is {len} bytes long, at most {max} are accepted")]
    LabelTooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest length accepted.
        max: usize,
    },
    /// The skew tolerance is negative or longer than half the rotation interval.
    #[error("the skew tolerance must be between zero and half the rotation interval")]
    SkewOutOfRange,
    /// The rotation interval was refused.
    #[error(transparent)]
    Rotation(#[from] ConfigError),
}
