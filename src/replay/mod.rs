//! Replay (`jti`) cache: refuse a DPoP proof whose `jti` was already seen (RFC 9449 §11.1).
//!
//! With server nonces, RFC 9449 §11.1 notes that a proof may carry the same nonce many times
//! without extra risk "as long as the jti value is tracked and duplicates are rejected for the
//! lifetime of the nonce". This module gives the pieces to do that:
//!
//! - [`ReplayKey`]: a fixed-size SHA-256 digest of the proof's `jti`, scoped by the key
//!   thumbprint (or the client), with over-long `jti` values refused ([`MAX_JTI_LEN`]).
//! - [`ReplayCache`]: one atomic *insert-if-absent* operation. There is deliberately no separate
//!   "contains" check: a check followed by an insert lets two racing requests both pass.
//! - [`InMemoryReplayCache`]: a bounded, sharded implementation for one process.
//! - [`AsyncReplayCache`]: the same operation as a `Send` future, for async servers; the
//!   in-memory cache implements it too, and `AsyncRedisReplayCache` (feature `tokio`) is its
//!   Redis implementation.
//!
//! # Failing closed
//!
//! [`ReplayCache::insert`] answers [`ReplayCheck::Fresh`] (serve the request),
//! [`ReplayCheck::Replayed`] (refuse it), or an error. **Every error means "refuse the proof"**:
//! a cache that is full of live entries ([`ReplayError::Full`]) or a backend that cannot be
//! reached ([`ReplayError::Unavailable`]) cannot prove the `jti` is new, and accepting it anyway
//! would reopen the replay the cache exists to close. Only [`ReplayCheck::Fresh`] lets a proof
//! through; [`ReplayCheck::is_fresh`] and `?` make that the short path.
//!
//! # Entry lifetime
//!
//! An entry must live at least as long as the longest time a nonce is accepted, so take the
//! source's figure, not a second, independent setting: build the cache with `for_source`, or
//! pass [`NonceSource::max_nonce_lifetime`] to its builder. Every source reports it (the
//! derived and Redis sources add their lead), and it survives `Arc<dyn NonceSource>`. Behind a
//! [`proof::Verifier`](crate::proof::Verifier), entries must also outlive the `iat` window:
//! `InMemoryReplayCache::for_proofs` covers both, and the verifier reads every cache's
//! [`ReplayCache::lifetime`] and refuses one that is too short.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayKey};
//! use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource};
//!
//! let clock = Arc::new(ManualClock::default());
//! let source = InMemoryNonceSource::builder().clock(Arc::clone(&clock)).build()?;
//! let cache = InMemoryReplayCache::builder(source.max_nonce_lifetime())
//!     .capacity(10_000)
//!     .clock(Arc::clone(&clock))
//!     .build()?;
//!
//! // After the proof's signature, `htm`, `htu`, `iat` and nonce were checked:
//! let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"; // the key's JWK thumbprint
//! let key = ReplayKey::new(jkt, "e1j3V_bKic8-LAEB")?;
//! assert_eq!(cache.insert(&key)?, ReplayCheck::Fresh);
//! assert_eq!(cache.insert(&key)?, ReplayCheck::Replayed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`NonceSource::max_nonce_lifetime`]: crate::NonceSource::max_nonce_lifetime

mod asynchronous;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "tokio")]
mod redis_async;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use thiserror::Error;
use time::Duration;

pub use asynchronous::AsyncReplayCache;
pub use memory::{InMemoryReplayCache, InMemoryReplayCacheBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisReplayCache, RedisReplayCacheBuilder};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use redis_async::{AsyncRedisReplayCache, AsyncRedisReplayCacheBuilder};

/// The longest `jti` accepted by [`ReplayKey::new`], in bytes: 256.
///
/// RFC 9449 §11.1 asks servers to reject large `jti` values or to store only a hash. This crate
/// does both: only a 32-byte digest is stored, and a `jti` longer than this is refused before it
/// is hashed, so a hostile proof cannot make the server hash megabytes. Real `jti` values are
/// short (a UUID is 36 bytes; 96 random bits in base64url are 16).
pub const MAX_JTI_LEN: usize = 256;

/// The longest scope accepted by [`ReplayKey::new`], in bytes: 1024. A JWK SHA-256 thumbprint is
/// 43 bytes; client identifiers are rarely longer than a URL.
pub const MAX_SCOPE_LEN: usize = 1024;

/// Text mixed into every key digest, so keys of this crate cannot collide with SHA-256 digests
/// made for any other purpose, and a future change of encoding gets a new label.
const KEY_DOMAIN: &[u8] = b"dpop-nonce/replay-key/v1";

/// Why a `jti` (or its scope) cannot be made into a [`ReplayKey`]. The proof must be refused.
///
/// ```
/// use dpop_nonce::replay::{MAX_JTI_LEN, ReplayKey, ReplayKeyError};
///
/// let long = "j".repeat(MAX_JTI_LEN + 1);
/// assert_eq!(
///     ReplayKey::new("jkt", &long),
///     Err(ReplayKeyError::JtiTooLong { len: MAX_JTI_LEN + 1, max: MAX_JTI_LEN })
/// );
/// assert_eq!(ReplayKey::new("jkt", ""), Err(ReplayKeyError::EmptyJti));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum ReplayKeyError {
    /// The `jti` is empty; a proof must carry a unique identifier (RFC 9449 §4.2).
    #[error("the proof's jti is empty")]
    EmptyJti,
    /// The `jti` is longer than [`MAX_JTI_LEN`].
    #[error("the proof's jti is {len} bytes long, at most {max} are accepted")]
    JtiTooLong {
        /// Length of the refused `jti`, in bytes.
        len: usize,
        /// The longest length accepted.
        max: usize,
    },
    /// The scope is longer than [`MAX_SCOPE_LEN`].
    #[error("the replay scope is {len} bytes long, at most {max} are accepted")]
    ScopeTooLong {
        /// Length of the refused scope, in bytes.
        len: usize,
        /// The longest length accepted.
        max: usize,
    },
}

/// What a replay cache stores for one proof: a SHA-256 digest of the proof's `jti`, scoped by
/// the proof's key (its JWK thumbprint) or by the client.
///
/// The digest covers a length-prefixed encoding of a domain label, the scope and the `jti`, so
/// distinct `(scope, jti)` pairs never encode to the same bytes: `("ab", "c")` and `("a", "bc")`
/// give different keys. The key is always [`ReplayKey::LEN`] bytes whatever the input, which is
/// what bounds the memory of a cache entry.
///
/// Scoping matters: `jti` values are chosen by clients, so without a scope one client could burn
/// another client's identifiers. Use the JWK SHA-256 thumbprint (RFC 7638) of the proof's key,
/// which the server computes itself, or the authenticated client identifier.
///
/// ```
/// use dpop_nonce::replay::ReplayKey;
///
/// let a = ReplayKey::new("thumbprint-A", "jti-1")?;
/// assert_eq!(a, ReplayKey::new("thumbprint-A", "jti-1")?);
/// assert_ne!(a, ReplayKey::new("thumbprint-B", "jti-1")?);
/// assert_ne!(ReplayKey::new("ab", "c")?, ReplayKey::new("a", "bc")?);
/// assert_eq!(a.as_bytes().len(), ReplayKey::LEN);
/// assert_eq!(a.to_string().len(), 2 * ReplayKey::LEN); // lowercase hex
/// # Ok::<(), dpop_nonce::replay::ReplayKeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey([u8; ReplayKey::LEN]);

impl ReplayKey {
    /// Size of a key in bytes (a SHA-256 digest).
    pub const LEN: usize = 32;

    /// The key for the proof `jti` under `scope` (the key thumbprint or the client identifier).
    ///
    /// Both are taken as raw bytes; a `&str` works as is.
    ///
    /// # Errors
    ///
    /// [`ReplayKeyError::EmptyJti`], [`ReplayKeyError::JtiTooLong`] beyond [`MAX_JTI_LEN`], or
    /// [`ReplayKeyError::ScopeTooLong`] beyond [`MAX_SCOPE_LEN`]. Refuse the proof in each case.
    pub fn new(scope: impl AsRef<[u8]>, jti: impl AsRef<[u8]>) -> Result<Self, ReplayKeyError> {
        let (scope, jti) = (scope.as_ref(), jti.as_ref());
        if jti.is_empty() {
            return Err(ReplayKeyError::EmptyJti);
        }
        if jti.len() > MAX_JTI_LEN {
            return Err(ReplayKeyError::JtiTooLong {
                len: jti.len(),
                max: MAX_JTI_LEN,
            });
        }
        if scope.len() > MAX_SCOPE_LEN {
            return Err(ReplayKeyError::ScopeTooLong {
                len: scope.len(),
                max: MAX_SCOPE_LEN,
            });
        }
        let mut hasher = Sha256::new();
        for part in [KEY_DOMAIN, scope, jti] {
            // Each length is bounded above, so it always fits in a u64.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// Wraps a digest computed elsewhere (for example read back from a shared store).
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The digest.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

/// Lowercase hexadecimal, 64 characters: handy as (part of) a key in a shared store.
impl fmt::Display for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({self})")
    }
}

/// What [`ReplayCache::insert`] found.
///
/// ```
/// use dpop_nonce::replay::ReplayCheck;
///
/// assert!(ReplayCheck::Fresh.is_fresh());
/// assert!(!ReplayCheck::Replayed.is_fresh());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum ReplayCheck {
    /// The key was absent and has now been recorded: this is the first use of the `jti`. Serve.
    Fresh,
    /// The key was already recorded and has not expired: the proof is a replay. Refuse it
    /// (`invalid_dpop_proof`).
    Replayed,
}

impl ReplayCheck {
    /// `true` only for [`ReplayCheck::Fresh`], the one answer that lets a proof through.
    pub const fn is_fresh(self) -> bool {
        matches!(self, Self::Fresh)
    }
}

/// The cache could not record the key. **Refuse the proof** (fail closed): the `jti` cannot be
/// shown to be new.
///
/// ```
/// use dpop_nonce::replay::ReplayError;
///
/// let down = ReplayError::unavailable("connection refused");
/// assert!(matches!(down, ReplayError::Unavailable(_)));
/// assert!(down.to_string().contains("connection refused"));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The cache holds its full capacity of entries that have not expired yet, so it cannot
    /// record one more. Refusing is the safe answer: evicting a live entry early would let that
    /// proof be replayed. Size the capacity for the peak rate of proofs times the entry lifetime.
    #[error("the replay cache is full of live entries; the proof is refused")]
    Full,
    /// The backend (a shared store, say) could not be reached or did not answer in time.
    #[error("the replay cache backend is unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync + 'static>),
}

impl ReplayError {
    /// A [`ReplayError::Unavailable`] carrying `cause`.
    pub fn unavailable(cause: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self::Unavailable(cause.into())
    }
}

/// A store of recently seen proof identifiers with one atomic operation: insert if absent.
///
/// # Contract
///
/// - [`insert`](Self::insert) is atomic: when several threads or replicas insert the same key at
///   once, exactly one of them gets [`ReplayCheck::Fresh`] and all others
///   [`ReplayCheck::Replayed`]. There is no separate "contains": a check followed by an insert
///   is the race this trait exists to avoid.
/// - An inserted key is reported as [`ReplayCheck::Replayed`] for at least the cache's entry
///   lifetime, which must be at least the longest time a nonce is accepted (see the
///   [module docs](self)).
/// - When the cache cannot tell or cannot record, it returns an error, never
///   [`ReplayCheck::Fresh`]. Callers refuse the proof on any error.
/// - `insert` never panics and never blocks for long; networked caches bound every call with a
///   timeout.
///
/// The trait is object-safe (`Arc<dyn ReplayCache>` works) and is implemented for `&C`,
/// `Arc<C>` and `Box<C>`.
///
/// ```
/// use std::sync::Arc;
/// use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayKey};
/// use dpop_nonce::InMemoryNonceSource;
///
/// let cache: Arc<dyn ReplayCache> = Arc::new(InMemoryReplayCache::for_source(&InMemoryNonceSource::new()));
/// let key = ReplayKey::new("client-1", "jti-1")?;
/// assert!(cache.insert(&key)?.is_fresh());
/// assert_eq!(cache.insert(&key)?, ReplayCheck::Replayed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ReplayCache: Send + Sync {
    /// Records `key` if it is absent (or its entry has expired) and answers
    /// [`ReplayCheck::Fresh`]; answers [`ReplayCheck::Replayed`] if a live entry is present.
    ///
    /// # Errors
    ///
    /// [`ReplayError::Full`] or [`ReplayError::Unavailable`]; the caller refuses the proof.
    fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError>;

    /// How long an inserted key stays recorded: the entry lifetime the cache was built with.
    ///
    /// A [`Verifier`](crate::proof::Verifier) reads it to check that entries outlive the time
    /// a proof can be accepted. Report the lifetime the backend really applies (rounded up if
    /// it has a coarser unit), never more.
    fn lifetime(&self) -> Duration;
}

/// `ReplayCache` for every pointer to one: `&C`, `Arc<C>`, `Box<C>`.
macro_rules! forward_replay_cache {
    ($($pointer:ty),+) => {$(
        impl<C: ReplayCache + ?Sized> ReplayCache for $pointer {
            #[inline]
            fn insert(&self, key: &ReplayKey) -> Result<ReplayCheck, ReplayError> {
                (**self).insert(key)
            }

            #[inline]
            fn lifetime(&self) -> Duration {
                (**self).lifetime()
            }
        }
    )+};
}

forward_replay_cache!(&C, Arc<C>, Box<C>);
