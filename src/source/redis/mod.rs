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
//! Both use the synchronous API of the [`redis`](https://docs.rs/redis) crate (1.x) with a
//! reused connection, bounded connect, read and write timeouts, and a reconnect back-off. They
//! take a `redis::Client`, so any address the crate understands works: `redis://host:port`,
//! `redis+unix:///path/to/redis.sock`, or a `redis::ConnectionAddr`. Any Redis since 2.6.12
//! (and compatible servers) will do.
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

mod builder;
mod commands;
pub(crate) mod connection;
mod error;
mod health;
pub(crate) mod keys;
mod recheck;
#[cfg(feature = "tokio")]
mod refresher;
mod shared;
mod source;

pub use builder::RedisNonceSourceBuilder;
pub use error::RedisSourceError;
pub use health::Health;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use refresher::Refresher;
pub use source::RedisNonceSource;
