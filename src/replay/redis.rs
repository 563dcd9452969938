//! [`RedisReplayCache`]: the replay (`jti`) cache on Redis, atomic across replicas.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::{Client, Value};
use time::Duration;

use crate::error::ConfigError;
use crate::replay::{ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use crate::source::NonceSource;
use crate::source::redis::Health;
use crate::source::redis::connection::{Backoff, CallError, Connector, ConnectorConfig, Wait};
use crate::source::redis::keys;

/// Connections opened by default: enough for a few request threads to insert at once.
const DEFAULT_CONNECTIONS: usize = 4;
/// The most connections one cache opens.
const MAX_CONNECTIONS: usize = 64;

/// A [`ReplayCache`] on a Redis server shared by every replica.
///
/// [`insert`](ReplayCache::insert) is one command, `SET {prefix}:replay:{key} 1 NX PX
/// {lifetime_ms}`, where `{key}` is the [`ReplayKey`] in hex. Redis runs it atomically, so when
/// threads or replicas race on the same `jti` exactly one gets [`ReplayCheck::Fresh`]. Redis
/// expires the entry after the lifetime; pass the nonce source's longest nonce lifetime
/// ([`RedisNonceSource::max_nonce_lifetime`](super::RedisNonceSource::max_nonce_lifetime)).
///
/// # Failing closed
///
/// Any failure (Redis unreachable, a timeout, an unexpected answer, the connection held by other
/// threads for a whole call budget) is [`ReplayError::Unavailable`]: refuse the proof. After a
/// failure a back-off runs (100 ms doubling to 2 s by default) during which inserts on that
/// connection fail at once instead of each paying a timeout. Each insert waits at most one call
/// budget for a connection and one call budget for Redis (`connect_timeout + 4 × io_timeout`,
/// 650 ms with the defaults).
///
/// # What Redis must keep
///
/// The guarantee holds only while Redis keeps each entry for its whole lifetime. A Redis that
/// restarts without persistence, or evicts keys under memory pressure (`maxmemory-policy`
/// other than `noeviction`), forgets entries, and a proof seen before could then pass again
/// while its nonce is still accepted. Use persistence (AOF) and `noeviction` where that matters.
///
/// # Connections
///
/// The cache keeps a few connections (4 by default, see
/// [`connections`](RedisReplayCacheBuilder::connections)) and spreads inserts over them in
/// turn; each is opened on first use and reopened after a failure.
///
/// ```no_run
/// use dpop_nonce::replay::RedisReplayCache;
/// use dpop_nonce::replay::{ReplayCache, ReplayCheck, ReplayKey};
/// use time::Duration;
///
/// let client = redis::Client::open("redis://10.0.0.5:6379")?;
/// let cache = RedisReplayCache::builder(client, Duration::minutes(10))
///     .prefix("myapp:dpop")
///     .build()?;
/// let key = ReplayKey::new("jwk-thumbprint", "proof-jti")?;
/// match cache.insert(&key) {
///     Ok(ReplayCheck::Fresh) => { /* serve */ }
///     Ok(ReplayCheck::Replayed) | Err(_) => { /* refuse the proof */ }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisReplayCache {
    connections: Box<[Connector]>,
    next: AtomicUsize,
    prefix: String,
    lifetime: Duration,
    lifetime_ms: i64,
}

impl RedisReplayCache {
    /// A builder for a cache on `client`'s server whose entries live `lifetime` (the longest
    /// time a nonce is accepted).
    pub fn builder(client: Client, lifetime: Duration) -> RedisReplayCacheBuilder {
        RedisReplayCacheBuilder {
            client,
            lifetime,
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            connections: DEFAULT_CONNECTIONS,
            connector: ConnectorConfig::DEFAULT,
        }
    }

    /// A builder for a cache on `client`'s server whose entries live as long as the nonces of
    /// `source` are accepted ([`NonceSource::max_nonce_lifetime`]).
    pub fn for_source(client: Client, source: &impl NonceSource) -> RedisReplayCacheBuilder {
        Self::builder(client, source.max_nonce_lifetime())
    }

    /// How long entries live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The Redis key an entry for `key` is stored under.
    ///
    /// ```
    /// use dpop_nonce::replay::RedisReplayCache;
    /// use dpop_nonce::replay::ReplayKey;
    /// use time::Duration;
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let cache = RedisReplayCache::builder(client, Duration::minutes(10)).prefix("app").build()?;
    /// let key = ReplayKey::from_bytes([0xab; 32]);
    /// assert_eq!(cache.redis_key(&key), format!("app:replay:{}", "ab".repeat(32)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redis_key(&self, key: &ReplayKey) -> String {
        keys::replay_key(&self.prefix, &key.to_string())
    }

    /// [`Health::Healthy`] when the last call on every connection succeeded, otherwise the
    /// health of the first connection that failed.
    pub fn health(&self) -> Health {
        self.connections
            .iter()
            .map(Connector::health)
            .find(|health| !health.is_healthy())
            .unwrap_or(Health::Healthy)
    }

    /// `true` when the last call on every connection succeeded.
    pub fn is_healthy(&self) -> bool {
        self.connections.iter().all(Connector::is_healthy)
    }

    fn connector(&self) -> Option<&Connector> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.connections.get(turn % self.connections.len().max(1))
    }
}

impl ReplayCache for RedisReplayCache {
    fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        let Some(connector) = self.connector() else {
            return Err(ReplayError::unavailable("no Redis connection configured"));
        };
        let redis_key = self.redis_key(key);
        let outcome = connector.call(Wait::Bounded, Backoff::Respect, |connection| {
            redis::cmd("SET")
                .arg(&redis_key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(self.lifetime_ms)
                .query::<Value>(connection)
        });
        match outcome {
            Ok(Value::Okay) => Ok(ReplayCheck::Fresh),
            Ok(Value::SimpleString(text)) if text == "OK" => Ok(ReplayCheck::Fresh),
            Ok(Value::Nil) => Ok(ReplayCheck::Replayed),
            Ok(_) => Err(ReplayError::unavailable(
                "Redis answered SET NX with something other than OK or nil",
            )),
            Err(CallError::Busy) => Err(ReplayError::unavailable(
                "the Redis connection stayed busy for longer than the call budget",
            )),
            Err(CallError::BackingOff) => Err(ReplayError::unavailable(
                "Redis failed recently; refusing until the back-off runs out",
            )),
            Err(CallError::Redis(err)) => Err(ReplayError::unavailable(err)),
        }
    }
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .field("lifetime", &self.lifetime)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisReplayCache`]; see [`RedisReplayCache::builder`].
#[must_use]
pub struct RedisReplayCacheBuilder {
    client: Client,
    lifetime: Duration,
    prefix: String,
    connections: usize,
    connector: ConnectorConfig,
}

impl RedisReplayCacheBuilder {
    /// Sets the key prefix (default `dpop-nonce`): 1 to 128 visible ASCII characters. Keys are
    /// `{prefix}:replay:{hex key}`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how many connections to spread inserts over (default 4, at most 64).
    pub fn connections(mut self, count: usize) -> Self {
        self.connections = count;
        self
    }

    crate::source::redis::connection::connector_setters!();

    /// Builds the cache. Makes no Redis call: connections open on first use.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a lifetime under one millisecond or too long for Redis, a bad prefix,
    /// a connection count outside 1 to 64, or a timeout or back-off out of range.
    pub fn build(self) -> Result<RedisReplayCache, ConfigError> {
        let lifetime_ms = i64::try_from(self.lifetime.whole_milliseconds()).unwrap_or(i64::MAX);
        if lifetime_ms < 1 {
            return Err(ConfigError::LifetimeTooShort {
                min: Duration::MILLISECOND,
            });
        }
        if lifetime_ms > 1 << 50 {
            return Err(ConfigError::LifetimeTooLong {
                max: Duration::milliseconds(1 << 50),
            });
        }
        keys::check_prefix(&self.prefix)?;
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(ConfigError::CountOutOfRange {
                which: "number of Redis connections",
                min: 1,
                max: MAX_CONNECTIONS,
            });
        }
        self.connector.validate()?;
        let connections = (0..self.connections)
            .map(|_| Connector::new(self.client.clone(), self.connector))
            .collect();
        Ok(RedisReplayCache {
            connections,
            next: AtomicUsize::new(0),
            prefix: self.prefix,
            lifetime: self.lifetime,
            lifetime_ms,
        })
    }
}

impl fmt::Debug for RedisReplayCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCacheBuilder")
            .field("server", &self.client.get_connection_info().addr())
            .field("lifetime", &self.lifetime)
            .field("prefix", &self.prefix)
            .field("connections", &self.connections)
            .field("connector", &self.connector)
            .finish()
    }
}
