//! [`RedisSourceError`]: why a Redis nonce source could not be built.

use thiserror::Error;

use crate::error::ConfigError;

/// Why [`RedisNonceSourceBuilder::build`](super::RedisNonceSourceBuilder::build) or
/// [`RedisNonceSource::refresh`](super::RedisNonceSource::refresh) failed.
///
/// ```
/// use dpop_nonce::redis::{RedisNonceSource, RedisSourceError};
///
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let err = RedisNonceSource::builder(client, "no:colons").build().unwrap_err();
/// assert!(matches!(err, RedisSourceError::Config(_)));
/// # Ok::<(), redis::RedisError>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RedisSourceError {
    /// A setting is out of range (rotation, timeouts, prefix or label).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis could not be reached in time, or answered something unusable. At start-up, use
    /// [`build_with_fallback`](super::RedisNonceSourceBuilder::build_with_fallback) to start
    /// anyway on the local fallback.
    #[error("Redis is unreachable: {0}")]
    Unreachable(#[source] redis::RedisError),
    /// Another thread held the connection for longer than the call budget (only from
    /// [`refresh`](super::RedisNonceSource::refresh)).
    #[error("the Redis connection stayed busy for longer than the call budget")]
    Busy,
}
