//! [`RedisReplayCache`]: the replay (`jti`) cache on Redis, atomic across replicas.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use redis::Value;
use time::Duration;

use crate::error::ConfigError;
use crate::replay::{ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use crate::source::NonceSource;
use crate::source::redis::connection::{Backoff, CallError, Connector, Wait};
use crate::source::redis::{Health, RedisEndpoint};

use self::replicated::WaitForReplicas;
use self::settings::{Checked, Settings};

pub(super) mod replicated;
pub(super) mod settings;

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
/// ([`NonceSource::max_nonce_lifetime`](crate::NonceSource::max_nonce_lifetime)).
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
/// # Failover
///
/// On a Sentinel or Cluster [`RedisEndpoint`], an insert that meets a dead primary fails (the
/// proof is refused) and the next one after the back-off reconnects to the promoted replica.
/// Replication is asynchronous: an entry the old primary acknowledged but had not yet sent to
/// its replica is lost with it, and that proof could then pass once more while its nonce is
/// accepted. [`wait_for_replicas`](RedisReplayCacheBuilder::wait_for_replicas) closes that
/// window: an insert stands only once enough replicas acknowledged it (Redis `WAIT`), and is
/// refused otherwise.
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
    settings: Checked,
}

impl RedisReplayCache {
    /// A builder for a cache on `endpoint` (a `redis::Client` for one server, or a
    /// [`RedisEndpoint`] for Sentinel or Cluster) whose entries live `lifetime` (the longest
    /// time a nonce is accepted).
    pub fn builder(
        endpoint: impl Into<RedisEndpoint>,
        lifetime: Duration,
    ) -> RedisReplayCacheBuilder {
        RedisReplayCacheBuilder {
            settings: Settings::new(endpoint.into(), lifetime),
            connections: DEFAULT_CONNECTIONS,
        }
    }

    /// A builder for a cache on `client`'s server whose entries live as long as the nonces of
    /// `source` are accepted ([`NonceSource::max_nonce_lifetime`]).
    pub fn for_source(
        endpoint: impl Into<RedisEndpoint>,
        source: &impl NonceSource,
    ) -> RedisReplayCacheBuilder {
        Self::builder(endpoint, source.max_nonce_lifetime())
    }

    /// How long entries live.
    pub fn lifetime(&self) -> Duration {
        self.settings.lifetime
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
        self.settings.redis_key(key)
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

    /// When a call to Redis last succeeded, on any connection; `None` if none has yet. Does
    /// not call Redis. The cache calls Redis only on inserts, so this is as fresh as the last
    /// insert.
    pub fn last_contact(&self) -> Option<Instant> {
        self.connections
            .iter()
            .filter_map(Connector::last_contact)
            .max()
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
            replicated::set_nx(
                connection,
                &redis_key,
                self.settings.lifetime_ms,
                self.settings.wait.as_ref(),
            )
        });
        match outcome {
            Ok((reply, acked)) => {
                let check = classify(&reply)?;
                replicated::enough(check, acked, self.settings.wait.as_ref())
            }
            Err(CallError::Busy) => Err(ReplayError::unavailable(
                "the Redis connection stayed busy for longer than the call budget",
            )),
            Err(CallError::BackingOff) => Err(ReplayError::unavailable(
                "Redis failed recently; refusing until the back-off runs out",
            )),
            Err(CallError::Redis(err)) => Err(ReplayError::unavailable(err)),
        }
    }

    /// The lifetime Redis applies: the configured one rounded up to whole milliseconds.
    fn lifetime(&self) -> Duration {
        Duration::milliseconds(self.settings.lifetime_ms)
    }
}

/// What the reply to `SET key 1 NX PX ttl` means: `OK` (as a status reply) is a fresh entry,
/// nil an entry that was there already. Anything else, whatever its type or text (`OK` as a
/// bulk string, an integer, a boolean, an array, a reply wrapped in attributes), is
/// [`ReplayError::Unavailable`]: the proof is refused, never let through on an answer the
/// cache does not understand.
pub(super) fn classify(reply: &Value) -> Result<ReplayCheck, ReplayError> {
    match reply {
        Value::Okay => Ok(ReplayCheck::Fresh),
        Value::SimpleString(text) if text == "OK" => Ok(ReplayCheck::Fresh),
        Value::Nil => Ok(ReplayCheck::Replayed),
        _ => Err(ReplayError::unavailable(
            "Redis answered SET NX with something other than OK or nil",
        )),
    }
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.settings.prefix)
            .field("lifetime", &self.settings.lifetime)
            .field("wait", &self.settings.wait)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisReplayCache`]; see [`RedisReplayCache::builder`].
#[must_use]
pub struct RedisReplayCacheBuilder {
    settings: Settings,
    connections: usize,
}

impl RedisReplayCacheBuilder {
    /// Sets the key prefix (default `dpop-nonce`): 1 to 128 visible ASCII characters. Keys are
    /// `{prefix}:replay:{hex key}`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// Sets how many connections to spread inserts over (default 4, at most 64).
    pub fn connections(mut self, count: usize) -> Self {
        self.connections = count;
        self
    }

    crate::source::redis::connection::connector_setters!(settings.connector);

    /// After each insert, waits until at least `replicas` replicas acknowledged it (Redis
    /// `WAIT replicas timeout`, sent in one request with the insert, so that it runs on the
    /// node that took it: the server, the Sentinel primary, or the key's primary in a
    /// cluster), at most `timeout`. Fewer acknowledgements in time refuse
    /// the proof ([`ReplayError::Unavailable`]): an entry that only the primary holds could be
    /// lost by a failover, and the proof then pass again. Off by default.
    ///
    /// Each insert then takes a replication round trip more, and up to `timeout` more when a
    /// replica is slow or gone; reads wait up to `io_timeout + timeout`. `replicas` must be 1
    /// or more, and `timeout` at least one millisecond (`WAIT 0`, which blocks without a limit,
    /// cannot be configured).
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.settings.wait = Some(WaitForReplicas::new(replicas, timeout));
        self
    }

    /// Builds the cache. Makes no Redis call: connections open on first use.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a lifetime under one millisecond or too long for Redis, a bad prefix,
    /// a connection count outside 1 to 64, or a timeout or back-off out of range.
    pub fn build(self) -> Result<RedisReplayCache, ConfigError> {
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(ConfigError::CountOutOfRange {
                which: "number of Redis connections",
                min: 1,
                max: MAX_CONNECTIONS,
            });
        }
        let settings = self.settings.check()?;
        let connections = (0..self.connections)
            .map(|_| Connector::new(settings.endpoint.clone(), settings.connector))
            .collect();
        Ok(RedisReplayCache {
            connections,
            next: AtomicUsize::new(0),
            settings,
        })
    }
}

impl fmt::Debug for RedisReplayCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCacheBuilder")
            .field("settings", &self.settings)
            .field("connections", &self.connections)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use redis::VerbatimFormat;

    use super::*;

    #[test]
    fn only_ok_and_nil_are_answers() {
        assert_eq!(classify(&Value::Okay).ok(), Some(ReplayCheck::Fresh));
        assert_eq!(
            classify(&Value::SimpleString("OK".into())).ok(),
            Some(ReplayCheck::Fresh)
        );
        assert_eq!(classify(&Value::Nil).ok(), Some(ReplayCheck::Replayed));
    }

    #[test]
    fn every_other_reply_refuses_the_proof() {
        let refused = [
            Value::SimpleString("ok".into()),
            Value::SimpleString("QUEUED".into()),
            Value::SimpleString(String::new()),
            Value::BulkString(b"OK".to_vec()),
            Value::BulkString(Vec::new()),
            Value::Int(0),
            Value::Int(1),
            Value::Boolean(true),
            Value::Boolean(false),
            Value::Double(1.0),
            Value::Array(Vec::new()),
            Value::Array(vec![Value::Okay]),
            Value::Set(vec![Value::Okay]),
            Value::Map(vec![(Value::Okay, Value::Okay)]),
            Value::Attribute {
                data: Box::new(Value::Okay),
                attributes: Vec::new(),
            },
            Value::VerbatimString {
                format: VerbatimFormat::Text,
                text: "OK".into(),
            },
        ];
        for reply in refused {
            assert!(
                matches!(classify(&reply), Err(ReplayError::Unavailable(_))),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn a_lifetime_with_a_fraction_of_a_millisecond_is_rounded_up() {
        let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
        let cache = RedisReplayCache::builder(client.clone(), Duration::microseconds(1_500))
            .build()
            .unwrap();
        assert_eq!(cache.settings.lifetime_ms, 2);
        let exact = RedisReplayCache::builder(client.clone(), Duration::minutes(10))
            .build()
            .unwrap();
        assert_eq!(exact.settings.lifetime_ms, 600_000);
        assert!(
            RedisReplayCache::builder(client, Duration::microseconds(999))
                .build()
                .is_err()
        );
    }
}
