//! [`Health`]: whether the last call to Redis worked.

use std::fmt;

/// What the last call to Redis gave, as reported by
/// [`RedisNonceSource::health`](super::RedisNonceSource::health) and
/// [`RedisReplayCache::health`](super::RedisReplayCache::health).
///
/// In steady state a Redis nonce source makes no Redis call at all, so this reflects the last
/// call that was made: at the latest the one made around the last window change. Call
/// [`RedisNonceSource::refresh`](super::RedisNonceSource::refresh) from a periodic task if you
/// want a fresher signal.
///
/// ```
/// use dpop_nonce::redis::Health;
///
/// assert!(Health::Healthy.is_healthy());
/// let down = Health::Unavailable { consecutive_failures: 3, last_error: "refused".into() };
/// assert!(!down.is_healthy());
/// assert_eq!(down.to_string(), "unavailable after 3 consecutive failures: refused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// The last call succeeded, or no call has failed yet.
    Healthy,
    /// The last call failed. The source serves its local fallback; the replay cache refuses.
    Unavailable {
        /// Calls that failed in a row.
        consecutive_failures: u32,
        /// The last error, as text.
        last_error: String,
    },
}

impl Health {
    /// `true` for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy => f.write_str("healthy"),
            Self::Unavailable {
                consecutive_failures,
                last_error,
            } => write!(
                f,
                "unavailable after {consecutive_failures} consecutive failures: {last_error}"
            ),
        }
    }
}
