//! [`AsyncReplayCache`]: the replay cache contract for async servers.

use std::future::{Future, ready};
use std::sync::Arc;

use time::Duration;

use super::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use crate::clock::Clock;

/// The async form of [`ReplayCache`]: one atomic *insert-if-absent*, awaited instead of
/// blocking, so an async server never holds a runtime thread while a shared store answers.
///
/// # Contract
///
/// The same as [`ReplayCache`]'s:
///
/// - [`insert`](Self::insert) is atomic: when several tasks, threads or replicas insert the
///   same key at once, exactly one of them gets [`ReplayCheck::Fresh`].
/// - An inserted key is reported as [`ReplayCheck::Replayed`] for at least
///   [`lifetime`](Self::lifetime), which must be at least the longest time a nonce is accepted.
/// - When the cache cannot tell or cannot record, the future resolves to an error, never to
///   [`ReplayCheck::Fresh`]: refuse the proof on any error (fail closed).
/// - The future never panics, is `Send` (it can be awaited inside `tokio::spawn`), and resolves
///   within a bounded time: networked caches bound every call with a timeout.
///
/// Dropping the future before it resolves is safe, but whether the key was recorded is then
/// unknown: a proof whose insert was abandoned must be refused like one whose insert failed.
///
/// # Implementations
///
/// - [`InMemoryReplayCache`]: its insert takes a short lock and never waits for I/O, so it is
///   both a [`ReplayCache`] and an `AsyncReplayCache`, and serves sync and async servers alike.
/// - `AsyncRedisReplayCache` (feature `tokio`): `SET NX PX` on the `redis` crate's
///   multiplexed async connection, with the same keys as
///   [`RedisReplayCache`](crate::replay::RedisReplayCache), so sync and async replicas share
///   one set of entries.
/// - `&C`, [`Arc<C>`] and [`Box<C>`] forward to `C`.
///
/// The `insert` future is an `impl Future` in the trait, so the trait is not object-safe. For
/// a cache chosen at run time, make the code generic over `C: AsyncReplayCache`, or wrap the
/// choices in an enum.
///
/// A type that implements both traits answers both `insert`s; with both traits in scope, name
/// the one meant: `AsyncReplayCache::insert(&cache, &key).await`.
///
/// ```
/// use dpop_nonce::InMemoryNonceSource;
/// use dpop_nonce::replay::{AsyncReplayCache, InMemoryReplayCache, ReplayCheck, ReplayKey};
///
/// async fn first_use(cache: &impl AsyncReplayCache, jkt: &str, jti: &str) -> bool {
///     match ReplayKey::new(jkt, jti) {
///         Ok(key) => matches!(cache.insert(&key).await, Ok(ReplayCheck::Fresh)),
///         Err(_) => false, // an unusable jti is refused too
///     }
/// }
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// let cache = InMemoryReplayCache::for_source(&InMemoryNonceSource::new());
/// assert!(first_use(&cache, "jkt", "jti-1").await);
/// assert!(!first_use(&cache, "jkt", "jti-1").await);
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait AsyncReplayCache: Send + Sync {
    /// Records `key` if it is absent (or its entry has expired) and resolves to
    /// [`ReplayCheck::Fresh`]; resolves to [`ReplayCheck::Replayed`] if a live entry is present.
    ///
    /// # Errors
    ///
    /// [`ReplayError::Full`] or [`ReplayError::Unavailable`] (the store failed or did not answer
    /// in time); the caller refuses the proof.
    fn insert(
        &self,
        key: &ReplayKey,
    ) -> impl Future<Output = Result<ReplayCheck, ReplayError>> + Send;

    /// How long an entry lives: at least the longest time a nonce is accepted.
    fn lifetime(&self) -> Duration;
}

/// Never waits: the insert is the synchronous one, under a short per-shard lock, and the future
/// is ready at once.
impl<C: Clock> AsyncReplayCache for InMemoryReplayCache<C> {
    fn insert(
        &self,
        key: &ReplayKey,
    ) -> impl Future<Output = Result<ReplayCheck, ReplayError>> + Send {
        ready(ReplayCache::insert(self, key))
    }

    fn lifetime(&self) -> Duration {
        InMemoryReplayCache::lifetime(self)
    }
}

/// `AsyncReplayCache` for every pointer to one: `&C`, `Arc<C>`, `Box<C>`.
macro_rules! forward_async_replay_cache {
    ($($pointer:ty),+) => {$(
        impl<C: AsyncReplayCache + ?Sized> AsyncReplayCache for $pointer {
            #[inline]
            fn insert(
                &self,
                key: &ReplayKey,
            ) -> impl Future<Output = Result<ReplayCheck, ReplayError>> + Send {
                (**self).insert(key)
            }

            #[inline]
            fn lifetime(&self) -> Duration {
                (**self).lifetime()
            }
        }
    )+};
}

forward_async_replay_cache!(&C, Arc<C>, Box<C>);
