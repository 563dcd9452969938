//! [`NonceStore`]: the last nonce of each origin, bounded.

use std::collections::HashMap;
use std::fmt;

use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;

use super::origin::Origin;
use super::{NonceAdvice, check_response, read_dpop_nonce};
use crate::nonce::Nonce;

/// The last `DPoP-Nonce` each origin handed out, for the client to put in its next proof to that
/// origin (RFC 9449 §8.2: "use the new nonce ... until the server supplies a new nonce").
///
/// The store is bounded: it holds at most [`capacity`](NonceStore::capacity) origins, and when a
/// new origin arrives at a full store, the origin used least recently (read or written) is
/// evicted. Finding that origin is a linear scan, which costs little at the sizes a client
/// needs. The store is `Send + Sync`; share it behind an `Arc`, or as a `static`.
///
/// ```
/// use dpop_nonce::client::{NonceAdvice, NonceStore, Origin};
/// use http::{HeaderMap, StatusCode};
///
/// let store = NonceStore::new();
/// let origin = Origin::from_uri(&"https://as.example.com/token".parse()?)?;
///
/// // The first request goes out without a nonce, and is answered with Figure 20 of RFC 9449.
/// let sent = store.get(&origin);
/// assert!(sent.is_none());
/// let mut headers = HeaderMap::new();
/// headers.insert("dpop-nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v".parse()?);
/// let body = br#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#;
///
/// let advice = store.observe(&origin, StatusCode::BAD_REQUEST, &headers, body, None);
/// let NonceAdvice::Retry { nonce } = advice else { panic!("expected a retry") };
/// assert_eq!(nonce, "eyJ7S_zG.eyJH0-Z.HX4w-7v");
/// // The nonce is remembered for the next request to this origin.
/// assert_eq!(store.get(&origin), Some(nonce));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NonceStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    entries: HashMap<Origin, Entry>,
    clock: u64,
}

struct Entry {
    nonce: Nonce,
    last_used: u64,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.clock = self.clock.wrapping_add(1);
        self.clock
    }
}

impl NonceStore {
    /// The capacity of [`NonceStore::new`]: 256 origins.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// An empty store for up to [`NonceStore::DEFAULT_CAPACITY`] origins.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty store for up to `capacity` origins (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                clock: 0,
            }),
        }
    }

    /// The most origins the store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many origins the store holds now.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// `true` when the store holds no nonce.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().entries.is_empty()
    }

    /// The nonce to put in the next proof sent to `origin`, if one is known.
    pub fn get(&self, origin: &Origin) -> Option<Nonce> {
        let mut inner = self.inner.lock();
        let now = inner.tick();
        let entry = inner.entries.get_mut(origin)?;
        entry.last_used = now;
        Some(entry.nonce.clone())
    }

    /// Remembers `nonce` for `origin`, returning the nonce it replaces. When the store is full
    /// and `origin` is new, the least recently used origin is evicted first.
    pub fn insert(&self, origin: Origin, nonce: Nonce) -> Option<Nonce> {
        let mut inner = self.inner.lock();
        let now = inner.tick();
        if let Some(entry) = inner.entries.get_mut(&origin) {
            entry.last_used = now;
            return Some(std::mem::replace(&mut entry.nonce, nonce));
        }
        if inner.entries.len() >= self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(origin, _)| origin.clone());
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(
            origin,
            Entry {
                nonce,
                last_used: now,
            },
        );
        None
    }

    /// Forgets the nonce of `origin`, returning it.
    pub fn remove(&self, origin: &Origin) -> Option<Nonce> {
        self.inner.lock().entries.remove(origin).map(|e| e.nonce)
    }

    /// Forgets every nonce.
    pub fn clear(&self) {
        self.inner.lock().entries.clear();
    }

    /// Reads a response from `origin` to a request whose proof carried `sent` (`None` when it
    /// had no `nonce` claim), and says whether to retry, as [`check_response`] does.
    ///
    /// Whatever the status, when the response has exactly one `DPoP-Nonce` header with a valid
    /// value, that nonce becomes the one of `origin` (RFC 9449 §8.2: a server may hand out a new
    /// nonce on any response). A response with no `DPoP-Nonce`, several, or an invalid one leaves
    /// the store as it was.
    pub fn observe(
        &self,
        origin: &Origin,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        sent: Option<&str>,
    ) -> NonceAdvice {
        if let Ok(nonce) = read_dpop_nonce(headers) {
            self.insert(origin.clone(), nonce);
        }
        check_response(status, headers, body, sent)
    }
}

impl Default for NonceStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for NonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
