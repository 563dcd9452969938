//! [`RedisNonceSourceBuilder`]: settings of a [`RedisNonceSource`], checked before it starts.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64};

use time::Duration;

use super::connection::{Connector, ConnectorConfig};
use super::endpoint::RedisEndpoint;
use super::error::RedisSourceError;
use super::keys;
use super::shared::Shared;
use super::source::RedisNonceSource;
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::rotation::Rotation;
use crate::source::engine::Engine;

/// The shortest rotation the Redis source takes: each window costs a Redis round trip.
const MIN_ROTATION: Duration = Duration::SECOND;

impl RedisNonceSource<SystemClock> {
    /// A builder for a source on `endpoint` (a `redis::Client` for one server, or a
    /// [`RedisEndpoint`] for Sentinel or Cluster), for the server named `label` (for example
    /// `"as"` and `"rs"`, or a short name per API). Sources with different labels, or different
    /// [prefixes](RedisNonceSourceBuilder::prefix), never accept each other's nonces.
    pub fn builder(
        endpoint: impl Into<RedisEndpoint>,
        label: impl Into<String>,
    ) -> RedisNonceSourceBuilder {
        RedisNonceSourceBuilder {
            endpoint: endpoint.into(),
            label: label.into(),
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            rotation: Rotation::DEFAULT.interval(),
            lead: None,
            clock: SystemClock,
            connector: ConnectorConfig::DEFAULT,
            #[cfg(feature = "tokio")]
            refresh_every: Duration::SECOND,
        }
    }
}

/// Builds a [`RedisNonceSource`]; see [`RedisNonceSource::builder`].
///
/// ```no_run
/// use dpop_nonce::redis::RedisNonceSource;
/// use time::Duration;
///
/// let client = redis::Client::open("redis+unix:///run/redis/redis.sock")?;
/// let source = RedisNonceSource::builder(client, "rs")
///     .prefix("shop:dpop")
///     .rotation(Duration::minutes(2))
///     .connect_timeout(Duration::milliseconds(100))
///     .io_timeout(Duration::milliseconds(50))
///     .build_with_fallback()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct RedisNonceSourceBuilder<C = SystemClock> {
    endpoint: RedisEndpoint,
    label: String,
    prefix: String,
    rotation: Duration,
    lead: Option<Duration>,
    clock: C,
    connector: ConnectorConfig,
    #[cfg(feature = "tokio")]
    pub(super) refresh_every: Duration,
}

impl<C: Clock> RedisNonceSourceBuilder<C> {
    /// Sets the key prefix (default `dpop-nonce`): 1 to 128 visible ASCII characters. Keys are
    /// `{prefix}:{label}:nonce:{window}`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the rotation interval (default 5 minutes; at least 1 second for this source).
    pub fn rotation(mut self, interval: Duration) -> Self {
        self.rotation = interval;
        self
    }

    /// Sets the lead: how long before a window starts its value is fetched, and accepted
    /// (default: 5 seconds, or a quarter of the interval if that is shorter). Must be under the
    /// interval. Replicas whose clocks differ by less than this agree without retries.
    pub fn lead(mut self, lead: Duration) -> Self {
        self.lead = Some(lead);
        self
    }

    super::connection::connector_setters!();

    /// Sets the clock (default [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> RedisNonceSourceBuilder<D> {
        RedisNonceSourceBuilder {
            endpoint: self.endpoint,
            label: self.label,
            prefix: self.prefix,
            rotation: self.rotation,
            lead: self.lead,
            clock,
            connector: self.connector,
            #[cfg(feature = "tokio")]
            refresh_every: self.refresh_every,
        }
    }

    /// Sets how often the background task of
    /// [`build_with_refresher`](Self::build_with_refresher) refreshes the source (default 1
    /// second). It runs at least once per [lead](Self::lead) (or per quarter of the interval
    /// with a zero lead), so that the next window's value is fetched before the window
    /// starts, and at most every 10 ms.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// Builds the source and fetches the current window's value: a start-up with Redis
    /// unreachable fails here, with a typed error, after at most one call budget.
    ///
    /// # Errors
    ///
    /// [`RedisSourceError::Config`] for a setting out of range, or
    /// [`RedisSourceError::Unreachable`] when Redis did not give the first value.
    pub fn build(self) -> Result<RedisNonceSource<C>, RedisSourceError> {
        let source = self.assemble()?;
        source.fetch_first()?;
        Ok(source)
    }

    /// Builds the source without waiting for Redis: if Redis cannot be reached now, the source
    /// starts on its local fallback, exactly as during an outage, and converges once Redis
    /// answers. Tries Redis once (bounded by one call budget).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a setting out of range.
    pub fn build_with_fallback(self) -> Result<RedisNonceSource<C>, ConfigError> {
        let source = self.assemble()?;
        source.prepare_now();
        Ok(source)
    }

    pub(super) fn assemble(self) -> Result<RedisNonceSource<C>, ConfigError> {
        let rotation = Rotation::new(self.rotation)?;
        if rotation.interval() < MIN_ROTATION {
            return Err(ConfigError::RotationTooShort { min: MIN_ROTATION });
        }
        keys::check_prefix(&self.prefix)?;
        keys::check_label(&self.label)?;
        self.connector.validate()?;
        let interval = rotation.interval();
        let lead = self
            .lead
            .unwrap_or_else(|| Duration::seconds(5).min(interval / 4));
        if lead.is_negative() || lead >= interval {
            return Err(ConfigError::LeadOutOfRange {
                max: interval - Duration::NANOSECOND,
            });
        }
        let shared = Shared {
            rotation,
            prefix: self.prefix,
            label: self.label,
            connector: Connector::new(self.endpoint, self.connector),
            forced_window: AtomicI64::new(i64::MIN),
            background: AtomicBool::new(false),
        };
        Ok(RedisNonceSource {
            engine: Engine::new(self.clock, rotation, lead, shared),
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for RedisNonceSourceBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNonceSourceBuilder")
            .field("endpoint", &self.endpoint)
            .field("label", &self.label)
            .field("prefix", &self.prefix)
            .field("rotation", &self.rotation)
            .field("lead", &self.lead)
            .field("clock", &self.clock)
            .field("connector", &self.connector)
            .finish()
    }
}
