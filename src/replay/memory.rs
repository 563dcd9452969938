//! [`InMemoryReplayCache`]: a bounded, sharded replay cache for one process.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use parking_lot::Mutex;
use time::Duration;

use super::{ReplayCache, ReplayCheck, ReplayError, ReplayKey};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::source::NonceSource;

/// Largest number of shards the builder picks on its own.
const MAX_AUTO_SHARDS: usize = 16;

/// Entries per shard below which the builder stops adding shards: small caches stay in one
/// shard, so their capacity is exact.
const ENTRIES_PER_AUTO_SHARD: usize = 4096;

/// A replay cache in the memory of one process: a fixed capacity, entries that expire after a
/// fixed lifetime, and an atomic insert-if-absent.
///
/// # Memory and eviction
///
/// The cache never holds more than its capacity (default [`Self::DEFAULT_CAPACITY`]). Each entry
/// is a 32-byte [`ReplayKey`] plus its expiry time, kept in a hash set and a queue: 100 to 200
/// bytes per entry of capacity, depending on how far the tables grew. Memory grows with use, not
/// up front.
///
/// Entries live for the lifetime given at construction, which should be the longest time a
/// nonce is accepted (see [`InMemoryReplayCache::builder`]). Each shard keeps its entries in a queue ordered by
/// expiry, so an insert first drops the expired entries at the front of its shard's queue: the
/// cost is amortized O(1) per insert, with no scan of the whole cache.
///
/// # When it is full
///
/// If an insert finds its shard full of entries that have **not** expired, it answers
/// [`ReplayError::Full`] and records nothing: the proof is refused. Dropping a live entry early
/// would let that proof be replayed, so refusing (failing closed) is the only safe answer. Once
/// entries expire they make room again on their own. Size the capacity above the peak rate of
/// proofs times the entry lifetime (for example 200 proofs per second with 10-minute nonces
/// need 120,000), and rate-limit clients upstream, since a client that floods the server with
/// fresh proofs can fill any finite cache.
///
/// # Concurrency
///
/// Keys are spread over shards (by their first bytes, which are uniform SHA-256 output), each
/// behind its own `parking_lot` mutex. The check and the insert happen under one lock, so exactly
/// one of several racing inserts of a key wins. Unless set with
/// [`InMemoryReplayCacheBuilder::shards`], the builder uses one shard per 4096 entries of
/// capacity, between 1 and 16. Each shard holds an equal part of the capacity, so with several
/// shards one of them can fill up slightly before the whole cache does.
///
/// # Clock
///
/// Entries live their lifetime in elapsed time ([`Clock::elapsed`], the operating system's
/// monotonic clock for [`SystemClock`]), whatever the wall clock does: a wall clock that jumps
/// forward or steps back neither stretches nor cuts them, so a jump cannot fill the cache with
/// entries that outlive their use.
///
/// ```
/// use std::sync::Arc;
/// use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayError, ReplayKey};
/// use dpop_nonce::ManualClock;
/// use time::Duration;
///
/// let clock = Arc::new(ManualClock::default());
/// let cache = InMemoryReplayCache::builder(Duration::minutes(10))
///     .capacity(1)
///     .clock(Arc::clone(&clock))
///     .build()?;
///
/// let first = ReplayKey::new("jkt", "jti-1")?;
/// let second = ReplayKey::new("jkt", "jti-2")?;
/// assert_eq!(cache.insert(&first)?, ReplayCheck::Fresh);
/// assert!(matches!(cache.insert(&second), Err(ReplayError::Full)));
///
/// clock.advance(Duration::minutes(10));
/// assert_eq!(cache.insert(&second)?, ReplayCheck::Fresh); // `first` expired and made room
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct InMemoryReplayCache<C = SystemClock> {
    clock: C,
    lifetime: Duration,
    lifetime_nanos: i128,
    capacity: usize,
    shards: Box<[Mutex<Shard>]>,
}

/// One shard: the live keys, and the same keys in a queue ordered by expiry.
///
/// Invariant: `keys` and `queue` hold the same keys, and `queue` is sorted by expiry. After
/// [`Shard::evict_expired`] every key left in `keys` is live.
struct Shard {
    capacity: usize,
    keys: HashSet<ReplayKey>,
    queue: VecDeque<(i128, ReplayKey)>,
    /// Expiry of the newest entry; new entries never expire before it.
    last_expiry: i128,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        let initial = capacity.min(1024);
        Self {
            capacity,
            keys: HashSet::with_capacity(initial),
            queue: VecDeque::with_capacity(initial),
            last_expiry: i128::MIN,
        }
    }

    /// Drops every entry whose expiry is at or before `now`.
    fn evict_expired(&mut self, now: i128) {
        while let Some(&(expiry, key)) = self.queue.front() {
            if expiry > now {
                break;
            }
            self.queue.pop_front();
            self.keys.remove(&key);
        }
    }

    fn insert(
        &mut self,
        key: &ReplayKey,
        now: i128,
        lifetime: i128,
    ) -> Result<ReplayCheck, ReplayError> {
        self.evict_expired(now);
        if self.keys.contains(key) {
            return Ok(ReplayCheck::Replayed);
        }
        if self.keys.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        let expiry = now.saturating_add(lifetime).max(self.last_expiry);
        self.last_expiry = expiry;
        self.keys.insert(*key);
        self.queue.push_back((expiry, *key));
        Ok(ReplayCheck::Fresh)
    }
}

impl InMemoryReplayCache<SystemClock> {
    /// The default capacity: 100,000 entries (10 to 20 MB when full).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A cache on the system clock with the default capacity, whose entries live as long as the
    /// nonces of `source` are accepted ([`NonceSource::max_nonce_lifetime`]).
    pub fn for_source(source: &impl NonceSource) -> Self {
        Self::with_parts(
            SystemClock,
            source.max_nonce_lifetime(),
            Self::DEFAULT_CAPACITY,
            auto_shards(Self::DEFAULT_CAPACITY),
        )
    }

    /// A cache on the system clock with the default capacity, sized for a
    /// [`proof::Verifier`](crate::proof::Verifier) with the default `iat` leeways: entries live
    /// as long as the nonces of `source` are accepted, and at least the `iat` window
    /// ([`DEFAULT_PAST_LEEWAY`](crate::proof::DEFAULT_PAST_LEEWAY) plus
    /// [`DEFAULT_FUTURE_LEEWAY`](crate::proof::DEFAULT_FUTURE_LEEWAY), 70 seconds), which is
    /// the longer of the two when nonces rotate faster than every 35 seconds.
    ///
    /// With other leeways, build the cache with
    /// [`VerifierBuilder::required_replay_lifetime`](crate::proof::VerifierBuilder::required_replay_lifetime)
    /// instead; the verifier refuses a cache that forgets entries too early either way.
    ///
    /// ```
    /// use dpop_nonce::proof::Verifier;
    /// use dpop_nonce::replay::InMemoryReplayCache;
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    /// use time::Duration;
    ///
    /// let fast = InMemoryNonceSource::builder().rotation(Duration::seconds(2)).build()?;
    /// let cache = InMemoryReplayCache::for_proofs(&fast);
    /// assert_eq!(cache.lifetime(), Duration::seconds(70));
    /// assert!(Verifier::builder(NonceValidator::new(fast), cache).build().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "proof")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proof")))]
    pub fn for_proofs(source: &impl NonceSource) -> Self {
        let window = crate::proof::DEFAULT_PAST_LEEWAY + crate::proof::DEFAULT_FUTURE_LEEWAY;
        Self::with_parts(
            SystemClock,
            source.max_nonce_lifetime().max(window),
            Self::DEFAULT_CAPACITY,
            auto_shards(Self::DEFAULT_CAPACITY),
        )
    }

    /// A builder for a cache whose entries live for `lifetime`: at least the longest time a
    /// nonce is accepted ([`NonceSource::max_nonce_lifetime`]), and at least the window in which
    /// a proof's `iat` is accepted.
    pub fn builder(lifetime: Duration) -> InMemoryReplayCacheBuilder<SystemClock> {
        InMemoryReplayCacheBuilder {
            clock: SystemClock,
            lifetime,
            capacity: Self::DEFAULT_CAPACITY,
            shards: None,
        }
    }
}

impl<C: Clock> InMemoryReplayCache<C> {
    fn with_parts(clock: C, lifetime: Duration, capacity: usize, shards: usize) -> Self {
        let shards = shards.clamp(1, capacity.max(1));
        let (share, extra) = (capacity / shards, capacity % shards);
        let shards = (0..shards)
            .map(|index| Mutex::new(Shard::new(share + usize::from(index < extra))))
            .collect();
        Self {
            clock,
            lifetime,
            lifetime_nanos: lifetime.whole_nanoseconds(),
            capacity,
            shards,
        }
    }

    /// How long an entry lives, in elapsed time.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Entries held now, including expired ones not yet dropped (they are dropped by the next
    /// insert into their shard, or by [`Self::purge_expired`]).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().keys.len())
            .sum()
    }

    /// `true` when the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired entry now, in every shard. Inserts do this for their own shard as
    /// they go, so calling it is never needed for correctness; it only releases room early.
    pub fn purge_expired(&self) {
        let now = self.clock.elapsed().whole_nanoseconds();
        for shard in self.shards.iter() {
            shard.lock().evict_expired(now);
        }
    }

    /// The clock this cache reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    fn shard_of(&self, key: &ReplayKey) -> &Mutex<Shard> {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&key.as_bytes()[..8]);
        let len = self.shards.len().max(1) as u64;
        // The remainder is below the number of shards, so it fits in a usize.
        let index = (u64::from_le_bytes(prefix) % len) as usize;
        &self.shards[index.min(self.shards.len() - 1)]
    }
}

impl<C: Clock> ReplayCache for InMemoryReplayCache<C> {
    fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
        let now = self.clock.elapsed().whole_nanoseconds();
        self.shard_of(key)
            .lock()
            .insert(key, now, self.lifetime_nanos)
    }

    fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl<C: fmt::Debug> fmt::Debug for InMemoryReplayCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayCache")
            .field("clock", &self.clock)
            .field("lifetime", &self.lifetime)
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// One shard per [`ENTRIES_PER_AUTO_SHARD`] entries, between 1 and [`MAX_AUTO_SHARDS`].
fn auto_shards(capacity: usize) -> usize {
    (capacity / ENTRIES_PER_AUTO_SHARD).clamp(1, MAX_AUTO_SHARDS)
}

/// Builds an [`InMemoryReplayCache`]; see [`InMemoryReplayCache::builder`].
///
/// ```
/// use dpop_nonce::replay::InMemoryReplayCache;
/// use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource};
///
/// let source = InMemoryNonceSource::new();
/// let cache = InMemoryReplayCache::builder(source.max_nonce_lifetime())
///     .capacity(50_000)
///     .shards(4)
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(cache.capacity(), 50_000);
/// assert_eq!(cache.shard_count(), 4);
/// assert_eq!(cache.lifetime(), source.max_nonce_lifetime());
/// # Ok::<(), dpop_nonce::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct InMemoryReplayCacheBuilder<C> {
    clock: C,
    lifetime: Duration,
    capacity: usize,
    shards: Option<usize>,
}

impl<C: Clock> InMemoryReplayCacheBuilder<C> {
    /// Sets the most entries the cache holds (default
    /// [`InMemoryReplayCache::DEFAULT_CAPACITY`]).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the number of shards (default: one per 4096 entries of capacity, from 1 to 16). Each
    /// shard holds an equal part of the capacity; one shard makes the capacity exact.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Sets the clock (default [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> InMemoryReplayCacheBuilder<D> {
        InMemoryReplayCacheBuilder {
            clock,
            lifetime: self.lifetime,
            capacity: self.capacity,
            shards: self.shards,
        }
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`ConfigError::LifetimeTooShort`] when the lifetime is zero or negative, and
    /// [`ConfigError::CountOutOfRange`] when the capacity is zero or the number of shards is zero
    /// or larger than the capacity.
    pub fn build(self) -> Result<InMemoryReplayCache<C>, ConfigError> {
        if !self.lifetime.is_positive() {
            return Err(ConfigError::LifetimeTooShort {
                min: Duration::NANOSECOND,
            });
        }
        if self.capacity == 0 {
            return Err(ConfigError::CountOutOfRange {
                which: "capacity",
                min: 1,
                max: usize::MAX,
            });
        }
        let shards = match self.shards {
            None => auto_shards(self.capacity),
            Some(n) if n == 0 || n > self.capacity => {
                return Err(ConfigError::CountOutOfRange {
                    which: "number of shards",
                    min: 1,
                    max: self.capacity,
                });
            }
            Some(n) => n,
        };
        Ok(InMemoryReplayCache::with_parts(
            self.clock,
            self.lifetime,
            self.capacity,
            shards,
        ))
    }
}
