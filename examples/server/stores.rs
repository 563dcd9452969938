//! Where the server keeps its DPoP state: the nonce source and the replay cache of each
//! endpoint, in this process or shared by replicas.
//!
//! | options | nonces | replay cache |
//! |---|---|---|
//! | none | `InMemoryNonceSource` | `InMemoryReplayCache` |
//! | a Redis option | `RedisNonceSource`, refreshed by a background task | `AsyncRedisReplayCache` |
//! | `--derived-secret HEX` | `DerivedNonceSource` | `InMemoryReplayCache` |
//! | both | `DerivedNonceSource` | `AsyncRedisReplayCache` |
//!
//! The Redis options name one `RedisEndpoint`, which both the sources and the replay caches use:
//!
//! | option | `RedisEndpoint` | after a failover |
//! |---|---|---|
//! | `--redis URL` | `standalone`: one server | none: state comes back with the server |
//! | `--redis-sentinel URL,... [--redis-master NAME]` | `sentinel`: the primary the sentinels name | the next reconnect asks the sentinels again |
//! | `--redis-cluster URL,...` | `cluster`: the slot's primary of each key | the cluster client follows the new slot map |
//!
//! Replicas behind one load balancer need a shared replay cache whatever the source, so that a
//! proof accepted by one is refused by the others: that is Redis.

use std::sync::Arc;

use dpop_nonce::derived::DerivedNonceSource;
use dpop_nonce::proof::{DEFAULT_FUTURE_LEEWAY, DEFAULT_PAST_LEEWAY, Verifier};
use dpop_nonce::redis::{RedisEndpoint, RedisNonceSource};
use dpop_nonce::replay::{
    AsyncRedisReplayCache, AsyncReplayCache, InMemoryReplayCache, ReplayCheck, ReplayError,
    ReplayKey,
};
use dpop_nonce::{InMemoryNonceSource, NonceSource, NonceValidator};
use time::Duration;

/// The prefix of every Redis key the server writes.
pub const REDIS_PREFIX: &str = "dpop-demo";

/// Where nonces and replay entries live.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// Nonces (unless derived) and replay entries in this Redis: one server, a Sentinel-managed
    /// primary or a Redis Cluster.
    pub redis: Option<RedisEndpoint>,
    /// Nonces derived from this secret, shared by the replicas that hold it.
    pub derived_secret: Option<[u8; 32]>,
}

/// The nonce source of one endpoint, whichever kind the server runs with.
pub type Nonces = Arc<dyn NonceSource>;

/// The proof verifier of one endpoint.
pub type EndpointVerifier = Verifier<Nonces, ReplayStore>;

/// The replay cache of one endpoint. `AsyncReplayCache` is not object-safe, so the choice made
/// at start-up is an enum.
pub enum ReplayStore {
    Memory(InMemoryReplayCache),
    Redis(Box<AsyncRedisReplayCache>),
}

impl AsyncReplayCache for ReplayStore {
    async fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        match self {
            Self::Memory(cache) => AsyncReplayCache::insert(cache, key).await,
            Self::Redis(cache) => cache.insert(key).await,
        }
    }

    fn lifetime(&self) -> Duration {
        match self {
            Self::Memory(cache) => cache.lifetime(),
            Self::Redis(cache) => cache.lifetime(),
        }
    }
}

/// The verifier of the endpoints of the server named `label` (`"as"` or `"rs"`: separate
/// nonces, RFC 9449 §9), under `public_url`, with nonces rotating every `rotation` and required
/// in every proof.
///
/// Must be called inside a tokio runtime: with Redis, a background task on it fetches the
/// source's values, so that no request waits for Redis.
pub fn verifier(
    backend: &Backend,
    label: &str,
    public_url: &str,
    rotation: Duration,
) -> Result<EndpointVerifier, String> {
    let source: Nonces = match (&backend.derived_secret, &backend.redis) {
        (Some(secret), _) => Arc::new(
            DerivedNonceSource::builder(label)
                .secret(secret)
                .rotation(rotation)
                .build()
                .map_err(|err| format!("derived nonces: {err}"))?,
        ),
        (None, Some(endpoint)) => {
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|err| format!("Redis nonces need a tokio runtime: {err}"))?;
            // The task refreshes the source until the source is dropped; its handle is only
            // needed to stop it earlier.
            let (source, _refresher) = RedisNonceSource::builder(endpoint.clone(), label)
                .prefix(REDIS_PREFIX)
                .rotation(rotation)
                .build_with_refresher(&runtime)
                .map_err(|err| format!("Redis nonces: {err}"))?;
            // The task's first fetch starts at once but runs on its own: a server that took
            // requests before it ends would hand out its local fallback, which the other
            // replicas do not know, and a client could need two retries (seen in the soak on
            // a Redis Cluster, whose first connection takes longest). So one fetch is made
            // here, before the server listens, bounded by the connection timeouts. If Redis
            // does not answer, the server starts all the same, on the fallback, and the task
            // keeps trying.
            if let Err(err) = source.refresh() {
                eprintln!(
                    "Redis nonces ({label}): first fetch failed ({err}); serving the local \
                     fallback until Redis answers"
                );
            }
            source
        }
        (None, None) => Arc::new(
            InMemoryNonceSource::builder()
                .rotation(rotation)
                .build()
                .map_err(|err| format!("nonces: {err}"))?,
        ),
    };

    // A `jti` is remembered as long as its proof could pass again: as long as a nonce lives,
    // and at least the `iat` window. The verifier refuses a cache that forgets sooner.
    let lifetime = source
        .max_nonce_lifetime()
        .max(DEFAULT_PAST_LEEWAY + DEFAULT_FUTURE_LEEWAY);
    let replay = match &backend.redis {
        Some(endpoint) => ReplayStore::Redis(Box::new(
            AsyncRedisReplayCache::builder(endpoint.clone(), lifetime)
                .prefix(REDIS_PREFIX)
                .build()
                .map_err(|err| format!("Redis replay cache: {err}"))?,
        )),
        None => ReplayStore::Memory(
            InMemoryReplayCache::builder(lifetime)
                .build()
                .map_err(|err| format!("replay cache: {err}"))?,
        ),
    };

    Verifier::builder_async(NonceValidator::new(source), replay)
        .public_base_url(public_url)
        .build()
        .map_err(|err| format!("{public_url}: {err}"))
}
