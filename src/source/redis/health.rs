//! [`Health`]: whether the last call to Redis worked.

use std::fmt;

/// What the last call to Redis gave, as reported by
/// [`RedisNonceSource::health`](super::RedisNonceSource::health) and
/// [`RedisReplayCache::health`](crate::replay::RedisReplayCache::health).
///
/// ```
/// use dpop_nonce::redis::Health;
///
/// assert!(Health::Healthy.is_healthy());
/// let down = Health::Unavailable { consecutive_failures: 3, last_error: "refused".into() };
/// assert!(!down.is_healthy());
/// assert_eq!(down.to_string(), "unavailable after 3 consecutive failures: refused");
/// ```
///
/// # How fresh it is, and a health endpoint
///
/// A health record is only as fresh as the last call. In steady state a Redis nonce source
/// makes no Redis call on a check, so on its own it can report [`Health::Healthy`] for a while
/// after Redis died. Two things make it prompt:
///
/// - call [`RedisNonceSource::refresh`](super::RedisNonceSource::refresh) every few seconds
///   from a background thread or task: it always makes one round trip, so the health is at
///   most one period old;
/// - have the endpoint also look at
///   [`last_contact`](super::RedisNonceSource::last_contact), the time of the last successful
///   call, and report unhealthy when it is older than a few periods: that also catches a
///   refresh task that stopped, or one stuck behind a busy connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use dpop_nonce::redis::RedisNonceSource;
///
/// /// How often the background thread refreshes.
/// const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// /// Unhealthy once Redis has not answered for this long.
/// const STALE_AFTER: Duration = Duration::from_secs(5);
///
/// let client = redis::Client::open("redis://10.0.0.5:6379")?;
/// let source = Arc::new(RedisNonceSource::builder(client, "as").build_with_fallback()?);
///
/// let background = Arc::clone(&source);
/// std::thread::spawn(move || loop {
///     // An error is recorded in the health; the source serves its fallback meanwhile.
///     let _ = background.refresh();
///     std::thread::sleep(REFRESH_EVERY);
/// });
///
/// // The `/healthz` handler: 200 when this returns `Ok`, 503 with the text otherwise.
/// let healthz = |source: &RedisNonceSource| -> Result<(), String> {
///     let health = source.health();
///     if !health.is_healthy() {
///         return Err(health.to_string());
///     }
///     match source.last_contact() {
///         Some(at) if at.elapsed() <= STALE_AFTER => Ok(()),
///         Some(at) => Err(format!("no answer from Redis for {:?}", at.elapsed())),
///         None => Err("Redis has not answered yet".to_owned()),
///     }
/// };
/// # let _ = healthz(&source);
/// # Ok::<(), Box<dyn std::error::Error>>(())
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
