//! [`RedisEndpoint`]: where the Redis source and the Redis replay cache find Redis: one server,
//! a primary managed by Sentinel, or a Redis Cluster. The topology work (discovery, failover,
//! slot routing) is the `redis` crate's own; this module only picks which of its clients to use
//! and applies the crate's timeouts to the connection it gets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, ClusterConnection};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Client, Connection, ConnectionLike, IntoConnectionInfo, RedisResult};

use super::discovery::Discovery;

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "tokio")]
pub(crate) use asynchronous::AsyncLink;

/// Retries the cluster client makes inside one call before it gives up (after a `MOVED`, a
/// `TRYAGAIN`, a dropped node connection). The connector's own back-off does the rest.
const CLUSTER_RETRIES: u32 = 2;
/// Bounds of the cluster client's sleep between two of those retries, in milliseconds. Its
/// defaults (from 1.28 s, growing to minutes) would hold a request thread far beyond any
/// timeout of this crate during a failover.
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 50);

/// Where Redis is: a standalone server, a primary discovered through Redis Sentinel, or a Redis
/// Cluster. Accepted by [`RedisNonceSource::builder`](super::RedisNonceSource::builder),
/// [`RedisReplayCache::builder`](crate::replay::RedisReplayCache::builder) and, with feature
/// `tokio`, `AsyncRedisReplayCache::builder`; a [`redis::Client`](Client) converts into the
/// standalone form, so existing code keeps working.
///
/// Cloning is cheap and shares the underlying client (for Sentinel, one discovery client).
///
/// # The three deployments
///
/// | constructor | address | what a failover does |
/// |---|---|---|
/// | [`standalone`](Self::standalone) (or any `redis::Client`) | `redis://host:6379`, `redis+unix:///run/redis.sock` | no failover: while the server is down, the source serves its local fallback and the replay cache refuses proofs |
/// | [`sentinel`](Self::sentinel) | the sentinels, `redis://sentinel-1:26379`, …, and the master name | every reconnect asks the sentinels for the current primary, and checks with `ROLE` that it is one: once Sentinel has promoted a replica, the next reconnect after a failed call lands on it |
/// | [`cluster`](Self::cluster) | a few cluster nodes, `redis://node-1:7000`, … | the `redis` crate's cluster client routes each single-key command to its slot's primary and follows `MOVED` after a promotion; the sync caller drops the cluster connection after a failed call, and the next one maps the slots afresh; the async replay cache keeps it while it heals itself (see `AsyncRedisReplayCache`) |
///
/// In all three, a failed call starts the connector's back-off (see the builders'
/// `backoff`), during which the nonce source serves its local fallback and the replay cache
/// refuses proofs; the first call after it reconnects. Nothing here ever accepts a value it
/// did not read from Redis or make itself.
///
/// # What a failover can lose
///
/// Redis replicates asynchronously. A write acknowledged by a primary that dies before its
/// replica received it is gone once the replica is promoted: the window is the replication lag
/// at the moment of the crash (usually well under a second), plus, with Sentinel, anything a
/// partitioned old primary accepted before it stepped down.
///
/// - **A replay entry** (`jti`) lost that way lets the same proof pass once more on the new
///   primary while its nonce is still accepted. To close that window, ask the replay cache to
///   wait for replicas after each insert
///   ([`wait_for_replicas`](crate::replay::RedisReplayCacheBuilder::wait_for_replicas) on the
///   sync cache, the same setting on the async one; Redis `WAIT`, sent with the insert to the
///   node that takes it): an insert that fewer replicas acknowledged in time refuses the
///   proof. Give each primary two replicas: a promoted replica then still has one to wait for,
///   and inserts go on after a failover.
/// - **A nonce key** lost that way is re-created: the first source to fetch or
///   [re-read](super::RedisNonceSource::recheck_interval) the window after the failover writes
///   its cached value back with `SET NX`, and every source converges on the one value in Redis.
///   A client holding a value that lost the race gets one `use_dpop_nonce` answer with the
///   winner and succeeds on retry. No value unknown to a source is ever accepted.
///
/// # Keys in a cluster
///
/// Every command is single-key: `SET`/`GET` of one window's nonce key, `SET NX` of one replay
/// key. The nonce source's round trip (`SET` and `GET` of a window, and `GET` of the window
/// before) goes through the cluster client's pipeline, which sends each command to its own
/// slot's node; it is not atomic, and needs not be, since each value is written once with
/// `SET NX` and read back. Key names are the same as on one server (no hash tags), so moving
/// between deployments changes no key format.
///
/// # Time bounds
///
/// On one server, a call is bounded by the call budget (`connect_timeout + 4 × io_timeout`).
/// With Sentinel, finding the primary asks the sentinels and the named primary through the
/// `redis` crate's Sentinel client, which sets no socket timeouts of its own: a sentinel or a
/// primary that accepts connections but never answers can hold that reconnect until the
/// operating system gives up. Sentinels that are down (connection refused) cost nothing; give
/// `set_client_to_sentinel_tcp_settings` a TCP user timeout on the
/// [`SentinelClientBuilder`](redis::sentinel::SentinelClientBuilder) if hung hosts matter. The
/// async replay cache asks the sentinels through the same client, without blocking the
/// runtime, and bounds that by its connect timeout like any other connect. In a cluster, one
/// call may map the slots again and reconnect to several nodes, each bounded by
/// `connect_timeout` and `io_timeout`, with at most two retries that sleep 10 to 50 ms.
#[derive(Clone)]
pub struct RedisEndpoint {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Standalone(Client),
    Sentinel {
        discovery: Arc<Discovery>,
        service: Arc<str>,
    },
    Cluster(Box<ClusterClient>),
}

impl RedisEndpoint {
    /// One Redis server (or a proxy that looks like one).
    ///
    /// ```
    /// use dpop_nonce::redis::RedisEndpoint;
    ///
    /// let endpoint = RedisEndpoint::standalone(redis::Client::open("redis://10.0.0.5:6379")?);
    /// // The same, through the conversion every builder applies:
    /// let same: RedisEndpoint = redis::Client::open("redis://10.0.0.5:6379")?.into();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn standalone(client: Client) -> Self {
        Self {
            kind: Kind::Standalone(client),
        }
    }

    /// The primary of the set that the sentinels at `sentinels` monitor as `master_name`,
    /// found again on every reconnect, so a failover is followed.
    ///
    /// The sentinels' addresses are what `redis::Client::open` takes (`redis://host:26379`, a
    /// `ConnectionAddr`, …). The primary is reached at the address the sentinels report, with
    /// no password: for a password, TLS or another database on the primary, build a
    /// [`SentinelClient`] with
    /// [`SentinelClientBuilder`](redis::sentinel::SentinelClientBuilder) and pass it to
    /// [`sentinel_client`](Self::sentinel_client).
    ///
    /// ```
    /// use dpop_nonce::redis::RedisEndpoint;
    ///
    /// let endpoint = RedisEndpoint::sentinel(
    ///     ["redis://10.0.0.7:26379", "redis://10.0.0.8:26379", "redis://10.0.0.9:26379"],
    ///     "mymaster",
    /// )?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An address that does not parse, or an empty list.
    pub fn sentinel<T: IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = T>,
        master_name: &str,
    ) -> RedisResult<Self> {
        let client = SentinelClient::build(
            sentinels.into_iter().collect(),
            master_name.to_owned(),
            None,
            SentinelServerType::Master,
        )?;
        Ok(Self::sentinel_client(client, master_name))
    }

    /// A [`SentinelClient`] built by the caller (for passwords or TLS), which must have been
    /// built with [`SentinelServerType::Master`]: a client for replicas would make every write
    /// fail (`READONLY`), which the crate treats as Redis being down. `master_name` is the
    /// name it was built with, shown by `Debug`.
    pub fn sentinel_client(client: SentinelClient, master_name: &str) -> Self {
        Self {
            kind: Kind::Sentinel {
                discovery: Arc::new(Discovery::new(client)),
                service: Arc::from(master_name),
            },
        }
    }

    /// A Redis Cluster reached through any of `nodes` (a few are enough: the client learns the
    /// rest from `CLUSTER SLOTS`).
    ///
    /// ```
    /// use dpop_nonce::redis::RedisEndpoint;
    ///
    /// let endpoint = RedisEndpoint::cluster([
    ///     "redis://10.0.1.1:7000",
    ///     "redis://10.0.1.2:7000",
    ///     "redis://10.0.1.3:7000",
    /// ])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An address that does not parse, an empty list, or nodes with different credentials.
    pub fn cluster<T: IntoConnectionInfo>(nodes: impl IntoIterator<Item = T>) -> RedisResult<Self> {
        Self::cluster_builder(ClusterClient::builder(nodes))
    }

    /// A Redis Cluster from a [`ClusterClientBuilder`] the caller set up (for passwords or
    /// TLS). The builder's retries are set here to two, sleeping 10 to 50 ms between them, so
    /// that one call stays short during a failover; its timeouts are replaced by the crate's
    /// (`connect_timeout`, `io_timeout`) on each connection.
    ///
    /// # Errors
    ///
    /// Whatever [`ClusterClientBuilder::build`] refuses.
    pub fn cluster_builder(builder: ClusterClientBuilder) -> RedisResult<Self> {
        let (min_wait, max_wait) = CLUSTER_RETRY_WAIT_MS;
        let client = builder
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(min_wait)
            .max_retry_wait(max_wait)
            .build()?;
        Ok(Self {
            kind: Kind::Cluster(Box::new(client)),
        })
    }

    /// Which deployment this is: `"standalone"`, `"sentinel"` or `"cluster"`.
    pub fn deployment(&self) -> &'static str {
        match self.kind {
            Kind::Standalone(_) => "standalone",
            Kind::Sentinel { .. } => "sentinel",
            Kind::Cluster(_) => "cluster",
        }
    }

    /// Opens a connection to the current primary (standalone, Sentinel) or to the cluster,
    /// with `io_timeout` on writes and `read_timeout` on reads.
    pub(crate) fn connect(
        &self,
        connect_timeout: Duration,
        io_timeout: Duration,
        read_timeout: Duration,
    ) -> RedisResult<Link> {
        let connection = match &self.kind {
            Kind::Standalone(client) => client.get_connection_with_timeout(connect_timeout)?,
            Kind::Sentinel { discovery, .. } => {
                // Discovery first: the sentinels name the primary, which is asked for its role.
                let primary = discovery.primary(connect_timeout)?;
                primary.get_connection_with_timeout(connect_timeout)?
            }
            Kind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(read_timeout);
                let connection = client.get_connection_with_config(config)?;
                connection.set_write_timeout(Some(io_timeout))?;
                connection.set_read_timeout(Some(read_timeout))?;
                return Ok(Link::Cluster(Box::new(connection)));
            }
        };
        connection.set_read_timeout(Some(read_timeout))?;
        connection.set_write_timeout(Some(io_timeout))?;
        Ok(Link::Single(connection))
    }
}

impl From<Client> for RedisEndpoint {
    fn from(client: Client) -> Self {
        Self::standalone(client)
    }
}

impl fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Standalone(client) => f
                .debug_struct("Standalone")
                .field("server", client.get_connection_info().addr())
                .finish(),
            Kind::Sentinel { service, .. } => f
                .debug_struct("Sentinel")
                .field("master_name", service)
                .finish_non_exhaustive(),
            Kind::Cluster(_) => f.debug_struct("Cluster").finish_non_exhaustive(),
        }
    }
}

/// An open connection: to one server (standalone, or the primary Sentinel named), or to a
/// cluster (one connection per node, owned by the `redis` crate's cluster client).
pub(crate) enum Link {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Link {
    /// The connection, for single commands (which the cluster client routes by their key).
    pub(crate) fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Single(connection) => connection,
            Self::Cluster(connection) => connection.as_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_constructor_names_its_deployment() {
        let client = Client::open("redis://127.0.0.1:1").expect("an address");
        assert_eq!(RedisEndpoint::from(client).deployment(), "standalone");
        let sentinel = RedisEndpoint::sentinel(["redis://127.0.0.1:2"], "mymaster");
        assert_eq!(sentinel.map(|e| e.deployment()).ok(), Some("sentinel"));
        let cluster = RedisEndpoint::cluster(["redis://127.0.0.1:3"]);
        assert_eq!(cluster.map(|e| e.deployment()).ok(), Some("cluster"));
    }

    #[test]
    fn empty_or_bad_lists_are_refused() {
        assert!(RedisEndpoint::sentinel(Vec::<String>::new(), "mymaster").is_err());
        assert!(RedisEndpoint::sentinel(["not a url"], "mymaster").is_err());
        assert!(RedisEndpoint::cluster(["not a url"]).is_err());
    }

    #[test]
    fn a_dead_endpoint_fails_within_the_timeouts() {
        let endpoint = RedisEndpoint::cluster(["redis://127.0.0.1:1"]).expect("an address");
        let short = Duration::from_millis(100);
        assert!(endpoint.connect(short, short, short).is_err());
        let sentinel =
            RedisEndpoint::sentinel(["redis://127.0.0.1:1"], "mymaster").expect("an address");
        assert!(sentinel.connect(short, short, short).is_err());
    }
}
