//! Nonces and replay protection shared by many replicas through one Redis server.
//!
//! - [`RedisNonceSource`]: a [`NonceSource`](crate::NonceSource) whose nonce for each rotation
//!   window is created once in Redis (`SET NX PX`) and read by every replica, then cached: in
//!   steady state a check makes no Redis call. When Redis is down it hands out a local fallback
//!   and never accepts what it cannot verify; see its docs for the exact outage behaviour.
//! - [`RedisReplayCache`](crate::replay::RedisReplayCache) (in [`replay`](crate::replay), with
//!   the other replay caches): one atomic `SET NX PX` per proof; any Redis failure means "refuse
//!   the proof".
//! - [`Health`]: what the last Redis call gave, for health checks and metrics.
//!
//! - [`RedisEndpoint`]: where Redis is: one server, a primary managed by Redis Sentinel, or a
//!   Redis Cluster. Its docs say what each deployment guarantees during a failover, and what a
//!   failover can lose.
//!
//! Both use the synchronous API of the [`redis`](https://docs.rs/redis) crate (1.x) with a
//! reused connection, bounded connect, read and write timeouts, and a reconnect back-off; for
//! async servers (feature `tokio`),
//! [`AsyncRedisReplayCache`](crate::replay::AsyncRedisReplayCache) does the same on the
//! crate's async connections. All of them take a `redis::Client` (any address the crate understands: `redis://host:port`,
//! `redis+unix:///path/to/redis.sock`, or a `redis::ConnectionAddr`), or a [`RedisEndpoint`]
//! for Sentinel (the crate's `sentinel::SentinelClient`, following the primary across
//! failovers) or Cluster (the crate's `cluster::ClusterClient`). Any Redis since 2.6.12 (and
//! compatible servers) will do on one server; the replay cache's optional `WAIT` needs 3.0.
//!
//! Keys carry a prefix (default `dpop-nonce`) so one Redis serves many servers:
//! `{prefix}:{label}:nonce:{window}` for nonces and `{prefix}:replay:{hex}` for replay entries.
//!
//! ```no_run
//! use dpop_nonce::NonceValidator;
//! use dpop_nonce::redis::RedisNonceSource;
//! use dpop_nonce::replay::RedisReplayCache;
//!
//! let client = redis::Client::open("redis://10.0.0.5:6379")?;
//! let source = RedisNonceSource::builder(client.clone(), "as").build()?;
//! let replay = RedisReplayCache::for_source(client, &source).build()?;
//! let validator = NonceValidator::new(source);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same on a Sentinel deployment, with replay entries acknowledged by a replica before a
//! proof is served:
//!
//! ```no_run
//! use dpop_nonce::redis::{RedisEndpoint, RedisNonceSource};
//! use dpop_nonce::replay::RedisReplayCache;
//! use time::Duration;
//!
//! let endpoint = RedisEndpoint::sentinel(
//!     ["redis://10.0.0.7:26379", "redis://10.0.0.8:26379", "redis://10.0.0.9:26379"],
//!     "mymaster",
//! )?;
//! let source = RedisNonceSource::builder(endpoint.clone(), "as").build()?;
//! let replay = RedisReplayCache::for_source(endpoint, &source)
//!     .wait_for_replicas(1, Duration::milliseconds(50))
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod commands;
pub(crate) mod connection;
mod discovery;
pub(crate) mod endpoint;
mod error;
mod health;
pub(crate) mod keys;
mod recheck;
#[cfg(feature = "tokio")]
mod refresher;
mod shared;
mod source;

pub use builder::RedisNonceSourceBuilder;
pub use endpoint::RedisEndpoint;
pub use error::RedisSourceError;
pub use health::Health;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use refresher::Refresher;
pub use source::RedisNonceSource;

/// The `redis` crate's client, which the Redis builders take.
pub use ::redis::Client;
