//! [`AsyncRedisReplayCache`]: the replay (`jti`) cache on Redis for async servers (tokio).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use redis::Value;
use time::Duration;

use super::redis::classify;
use super::redis::replicated::{self, WaitForReplicas};
use super::redis::settings::{Checked, Settings};
use super::{AsyncReplayCache, ReplayCheck, ReplayError, ReplayKey};
use crate::error::ConfigError;
use crate::source::NonceSource;
use crate::source::redis::connection::Record;
use crate::source::redis::endpoint::AsyncLink;
use crate::source::redis::{Health, RedisEndpoint};

/// An [`AsyncReplayCache`] on a Redis shared by every replica, on the `redis` crate's async
/// connections (tokio): its multiplexed connection to one server or to the primary that Redis
/// Sentinel names, or its async cluster connection. Any [`RedisEndpoint`] will do, and a
/// `redis::Client` converts into one.
///
/// [`insert`](AsyncReplayCache::insert) sends the one command the synchronous
/// [`RedisReplayCache`](crate::replay::RedisReplayCache) sends, `SET {prefix}:replay:{key} 1
/// NX PX {lifetime_ms}`, under the same key: Redis runs it atomically, so when tasks or
/// replicas (sync or async) race on the same `jti`, exactly one gets [`ReplayCheck::Fresh`],
/// and both kinds of cache see each other's entries.
///
/// # Bounded, and failing closed
///
/// Every insert resolves within `connect_timeout + 2 × io_timeout` (450 ms with the defaults),
/// plus the `WAIT` timeout with
/// [`wait_for_replicas`](AsyncRedisReplayCacheBuilder::wait_for_replicas). On a cluster,
/// opening a connection (the seed nodes, the slot map, then every node) is given
/// `2 × (connect_timeout + io_timeout)`, plus twice the `WAIT` timeout, instead of
/// `connect_timeout`. A connection is opened
/// within that (on Sentinel, asking the sentinels included), and the commands are given the
/// rest; `tokio::time::timeout` enforces both and the whole, so an insert never waits longer,
/// whatever the servers do. Any failure (Redis unreachable or paused, a timeout, an error
/// reply, an answer that is neither `OK` nor nil, too few replicas) resolves to
/// [`ReplayError::Unavailable`]: refuse the proof. A timed-out `SET` may still run in Redis
/// later; the `jti` is then recorded, which only refuses a retry of the same proof.
///
/// A connection to one server (standalone, or the primary Sentinel named) that fails, times
/// out or answers with an error is dropped, and the next insert opens another (one task opens
/// it while the others wait, within their budget): on Sentinel, that asks the sentinels for
/// the primary again, so an insert after a failover reaches the promoted replica. A cluster
/// connection is kept: the `redis` crate's cluster client follows `MOVED`, reconnects to a node
/// that dropped and maps the slots again by itself; it is opened afresh from the seed nodes
/// when it reports that it cannot recover, or once three inserts have failed on it. After a
/// failure, a back-off runs (100 ms doubling to 2 s by default) during which inserts fail at
/// once instead of each paying a timeout. When many tasks fail together on one connection, the
/// back-off counts that as one failure (on a kept cluster connection: its first, and the one
/// that drops it).
///
/// # Failover
///
/// What a Sentinel or Cluster failover can lose, and what
/// [`wait_for_replicas`](AsyncRedisReplayCacheBuilder::wait_for_replicas) does about it, is as
/// for the synchronous cache: see [`RedisEndpoint`].
///
/// The same caveats as for the synchronous cache hold: the guarantee lasts only while Redis
/// keeps each entry for its whole lifetime (persistence, `maxmemory-policy noeviction`).
///
/// # Runtime
///
/// Inserts must run inside a tokio runtime with the time driver enabled (`enable_time`, or
/// `enable_all`); the connection's driver task runs on the runtime of the insert that opened
/// it. The cache makes no Redis call when built, and can be built outside a runtime.
///
/// ```no_run
/// use dpop_nonce::replay::{AsyncRedisReplayCache, AsyncReplayCache, ReplayCheck, ReplayKey};
/// use time::Duration;
///
/// # async fn handler() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://10.0.0.5:6379")?;
/// let cache = AsyncRedisReplayCache::builder(client, Duration::minutes(10))
///     .prefix("myapp:dpop")
///     .build()?;
/// let key = ReplayKey::new("jwk-thumbprint", "proof-jti")?;
/// match cache.insert(&key).await {
///     Ok(ReplayCheck::Fresh) => { /* serve */ }
///     Ok(ReplayCheck::Replayed) | Err(_) => { /* refuse the proof */ }
/// }
/// # Ok(())
/// # }
/// ```
pub struct AsyncRedisReplayCache {
    settings: Checked,
    /// The open connection and its generation, cloned out under a short lock.
    connection: Mutex<Option<(u64, AsyncLink)>>,
    /// Generations of connections opened so far.
    opened: AtomicU64,
    /// The generation of a connection and the inserts that failed on it since it opened.
    strikes: Mutex<(u64, u32)>,
    /// One task at a time opens a connection.
    connecting: tokio::sync::Mutex<()>,
    record: Record,
}

/// Failed inserts on one connection after which even a cluster connection, which reconnects to
/// its nodes by itself, is dropped and opened afresh from the seed nodes. Successes do not
/// reset the count: a node that hangs after a failover (its slots moved, the cluster client
/// still sending to it) must not keep its slots out of reach for long because other slots
/// still answer.
const MAX_STRIKES: u32 = 3;

/// Why an insert did not get an answer from Redis. `counted` is `false` when another task
/// already reported the failure of the same connection to the back-off.
struct Failure {
    cause: Box<dyn std::error::Error + Send + Sync + 'static>,
    counted: bool,
}

impl Failure {
    fn new(
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        counted: bool,
    ) -> Self {
        Self {
            cause: cause.into(),
            counted,
        }
    }
}

impl AsyncRedisReplayCache {
    /// A builder for a cache on `endpoint` (a [`RedisEndpoint`], or a `redis::Client` for one
    /// server) whose entries live `lifetime` (the longest time a nonce is accepted).
    ///
    /// ```
    /// use dpop_nonce::redis::RedisEndpoint;
    /// use dpop_nonce::replay::AsyncRedisReplayCache;
    /// use time::Duration;
    ///
    /// let cluster = RedisEndpoint::cluster(["redis://10.0.1.1:7000", "redis://10.0.1.2:7000"])?;
    /// let cache = AsyncRedisReplayCache::builder(cluster, Duration::minutes(10))
    ///     .wait_for_replicas(1, Duration::milliseconds(50))
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(
        endpoint: impl Into<RedisEndpoint>,
        lifetime: Duration,
    ) -> AsyncRedisReplayCacheBuilder {
        AsyncRedisReplayCacheBuilder {
            settings: Settings::new(endpoint.into(), lifetime),
        }
    }

    /// A builder for a cache on `endpoint` whose entries live as long as the nonces of
    /// `source` are accepted ([`NonceSource::max_nonce_lifetime`]).
    pub fn for_source(
        endpoint: impl Into<RedisEndpoint>,
        source: &impl NonceSource,
    ) -> AsyncRedisReplayCacheBuilder {
        Self::builder(endpoint, source.max_nonce_lifetime())
    }

    /// How long entries live.
    pub fn lifetime(&self) -> Duration {
        self.settings.lifetime
    }

    /// The Redis key an entry for `key` is stored under: the same as
    /// [`RedisReplayCache::redis_key`](crate::replay::RedisReplayCache::redis_key).
    ///
    /// ```
    /// use dpop_nonce::replay::{AsyncRedisReplayCache, ReplayKey};
    /// use time::Duration;
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let cache = AsyncRedisReplayCache::builder(client, Duration::minutes(10))
    ///     .prefix("app")
    ///     .build()?;
    /// let key = ReplayKey::from_bytes([0xab; 32]);
    /// assert_eq!(cache.redis_key(&key), format!("app:replay:{}", "ab".repeat(32)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redis_key(&self, key: &ReplayKey) -> String {
        self.settings.redis_key(key)
    }

    /// The outcome of the last insert that reached for Redis.
    pub fn health(&self) -> Health {
        self.record.health()
    }

    /// `true` when the last insert that reached for Redis succeeded.
    pub fn is_healthy(&self) -> bool {
        self.record.is_healthy()
    }

    /// When an insert last got an answer from Redis; `None` if none has yet. Does not call
    /// Redis.
    pub fn last_contact(&self) -> Option<Instant> {
        self.record.last_contact()
    }

    /// The longest the commands of an insert may take once sent: a write and a read, which
    /// with `WAIT` (sent with the `SET`) may also take the `WAIT` timeout.
    fn round_trip(&self) -> std::time::Duration {
        self.settings
            .connector
            .io_timeout
            .saturating_add(self.settings.connector.read_timeout())
    }

    /// The longest opening a connection may take: `connect_timeout`, or for a cluster (whose
    /// client connects to the seed nodes, reads the slot map, then connects to every node)
    /// twice the connect timeout and twice the read timeout.
    fn open_budget(&self) -> std::time::Duration {
        let connect = self.settings.connector.connect_timeout;
        if self.settings.endpoint.deployment() == "cluster" {
            connect
                .saturating_add(self.settings.connector.read_timeout())
                .saturating_mul(2)
        } else {
            connect
        }
    }

    /// The longest an insert may take in all.
    fn budget(&self) -> std::time::Duration {
        self.open_budget().saturating_add(self.round_trip())
    }

    async fn insert_key(&self, redis_key: String) -> Result<ReplayCheck, ReplayError> {
        // Checked before any I/O, so an outage costs requests nothing.
        if self.record.backing_off() {
            return Err(backing_off());
        }
        let outcome = tokio::time::timeout(self.budget(), self.set_nx(&redis_key)).await;
        let failure = match outcome {
            Ok(Ok((reply, acked))) => {
                self.record.success();
                return classify(&reply).and_then(|check| {
                    replicated::enough(check, acked, self.settings.wait.as_ref())
                });
            }
            Ok(Err(failure)) => failure,
            Err(_) => Failure::new("Redis did not answer within the insert budget", true),
        };
        if failure.counted {
            self.record.failure(&failure.cause);
        }
        Err(ReplayError::Unavailable(failure.cause))
    }

    /// `SET key 1 NX PX lifetime` (and `WAIT`, if set) on the shared connection, opening one
    /// if needed.
    async fn set_nx(&self, redis_key: &str) -> Result<(Value, Option<i64>), Failure> {
        let (generation, mut connection) = self.connection().await?;
        let reply = tokio::time::timeout(
            self.round_trip(),
            replicated::set_nx_async(
                &mut connection,
                redis_key,
                self.settings.lifetime_ms,
                self.settings.wait.as_ref(),
            ),
        )
        .await;
        let (err, cause): (
            Option<redis::RedisError>,
            Box<dyn std::error::Error + Send + Sync>,
        ) = match reply {
            Ok(Ok(replies)) => return Ok(replies),
            Ok(Err(err)) => (Some(err.clone()), Box::new(err)),
            // A reply may still come, but the server is slow or gone.
            Err(_) => (
                None,
                "Redis did not answer SET NX within the round-trip timeout".into(),
            ),
        };
        // A cluster connection heals itself, unless it says it cannot or keeps failing. Any
        // other connection starts afresh, after any error (a demoted primary answers
        // `READONLY`), so that the next insert finds the current primary.
        let failures = self.strike(generation);
        let counted = if connection.heals_after(err.as_ref()) && failures < MAX_STRIKES {
            // The back-off counts the first failure of a kept connection; the one that drops
            // it counts again.
            failures == 1
        } else {
            self.forget(generation)
        };
        Err(Failure { cause, counted })
    }

    /// The open connection, or a new one: one task opens it, the others wait for it.
    async fn connection(&self) -> Result<(u64, AsyncLink), Failure> {
        if let Some(open) = self.connection.lock().clone() {
            return Ok(open);
        }
        let _turn = self.connecting.lock().await;
        if let Some(open) = self.connection.lock().clone() {
            return Ok(open);
        }
        // The task that held the turn before may have just failed to connect.
        if self.record.backing_off() {
            return Err(Failure::new(backing_off_message(), false));
        }
        let opened = tokio::time::timeout(
            self.open_budget(),
            self.settings.endpoint.connect_async(
                self.settings.connector.connect_timeout,
                self.settings.connector.read_timeout(),
            ),
        )
        .await;
        let connection = match opened {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(Failure::new(err, true)),
            Err(_) => {
                return Err(Failure::new(
                    "Redis did not accept a connection within the connect timeout",
                    true,
                ));
            }
        };
        let generation = self.opened.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        *self.connection.lock() = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// Records a failed insert on the connection of `generation`; returns how many failed on
    /// it since it was opened (0 for a connection already replaced: its failures no longer
    /// count).
    fn strike(&self, generation: u64) -> u32 {
        let mut strikes = self.strikes.lock();
        match *strikes {
            (open, ref mut failures) if open == generation => {
                *failures = failures.saturating_add(1);
                *failures
            }
            (open, _) if open > generation => 0,
            _ => {
                *strikes = (generation, 1);
                1
            }
        }
    }

    /// Drops the connection of `generation` if it is still the open one; `true` if this call
    /// dropped it (so the failure is reported once per connection).
    fn forget(&self, generation: u64) -> bool {
        let mut slot = self.connection.lock();
        if slot.as_ref().is_some_and(|(open, _)| *open == generation) {
            *slot = None;
            true
        } else {
            false
        }
    }
}

fn backing_off_message() -> &'static str {
    "Redis failed recently; refusing until the back-off runs out"
}

fn backing_off() -> ReplayError {
    ReplayError::unavailable(backing_off_message())
}

impl AsyncReplayCache for AsyncRedisReplayCache {
    fn insert(
        &self,
        key: &ReplayKey,
    ) -> impl Future<Output = Result<ReplayCheck, ReplayError>> + Send {
        let redis_key = self.redis_key(key);
        self.insert_key(redis_key)
    }

    fn lifetime(&self) -> Duration {
        self.settings.lifetime
    }
}

impl fmt::Debug for AsyncRedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisReplayCache")
            .field("settings", &self.settings)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AsyncRedisReplayCache`]; see [`AsyncRedisReplayCache::builder`].
#[must_use]
pub struct AsyncRedisReplayCacheBuilder {
    settings: Settings,
}

impl AsyncRedisReplayCacheBuilder {
    /// Sets the key prefix (default `dpop-nonce`): 1 to 128 visible ASCII characters. Keys are
    /// `{prefix}:replay:{hex key}`, as for the synchronous cache.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    crate::source::redis::connection::connector_setters!(settings.connector);

    /// After each fresh insert, waits up to `timeout` for `replicas` replicas to acknowledge it
    /// (Redis `WAIT`, on the node that took the write), and refuses the proof
    /// ([`ReplayError::Unavailable`]) when fewer did: the entry could be lost in a failover.
    /// The same setting as the synchronous cache's
    /// [`wait_for_replicas`](crate::replay::RedisReplayCacheBuilder::wait_for_replicas).
    ///
    /// Each insert then takes a replication round trip more, and up to `timeout` more when a
    /// replica is slow or gone. `replicas` must be 1 or more, and `timeout` at least one
    /// millisecond.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.settings.wait = Some(WaitForReplicas::new(replicas, timeout));
        self
    }

    /// Builds the cache. Makes no Redis call, and needs no runtime: the connection opens on the
    /// first insert.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a lifetime under one millisecond or too long for Redis, a bad prefix,
    /// a timeout or back-off out of range, or a replica wait out of range.
    pub fn build(self) -> Result<AsyncRedisReplayCache, ConfigError> {
        let settings = self.settings.check()?;
        Ok(AsyncRedisReplayCache {
            record: Record::new(settings.connector),
            settings,
            connection: Mutex::new(None),
            opened: AtomicU64::new(0),
            strikes: Mutex::new((0, 0)),
            connecting: tokio::sync::Mutex::new(()),
        })
    }
}

impl fmt::Debug for AsyncRedisReplayCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisReplayCacheBuilder")
            .field("settings", &self.settings)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_per_connection_and_successes_do_not_reset_them() {
        let client = redis::Client::open("redis://127.0.0.1:1").expect("an address");
        let cache = AsyncRedisReplayCache::builder(client, Duration::minutes(1))
            .build()
            .expect("a cache");
        assert_eq!(cache.strike(1), 1);
        assert_eq!(cache.strike(1), 2);
        assert_eq!(cache.strike(1), MAX_STRIKES);
        // A new connection starts from one; a late failure of the old one counts for nothing.
        assert_eq!(cache.strike(2), 1);
        assert_eq!(cache.strike(1), 0);
        assert_eq!(cache.strike(2), 2);
    }
}
