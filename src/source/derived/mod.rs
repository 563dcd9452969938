//! [`DerivedNonceSource`]: nonces derived from a shared secret, so replicas agree with no
//! storage and no network.
//!
//! The nonce of rotation window `w` is the unpadded base64url encoding (43 characters) of the
//! 32-byte tag
//!
//! ```text
//! HMAC-SHA256(secret, be64(27) || "dpop-nonce/derived-nonce/v1" || be64(len(label)) || label || be64(w))
//! ```
//!
//! where `be64` is an 8-byte big-endian integer (two's complement for `w`, the window number of
//! [`Rotation::window_of`](crate::Rotation::window_of)). This encoding is stable, so a replica
//! written in another language can compute the same nonces. Every replica that holds the same
//! secret and label, and whose clock is close enough, computes the same nonce for the same
//! window; there is nothing to store or synchronise. All 256 bits of a nonce are MAC output, so
//! without the secret the next window's nonce cannot be predicted from any number of past ones.
//!
//! ```
//! use std::sync::Arc;
//! use dpop_nonce::derived::DerivedNonceSource;
//! use dpop_nonce::{ManualClock, NonceCheck, NonceSource};
//! use time::Duration;
//!
//! // In production the secret comes from a secret store, the same on every replica.
//! let secret = [0x5au8; 32];
//! let replica = |offset: i64| {
//!     DerivedNonceSource::builder("https://as.example.com")
//!         .secret(secret)
//!         .clock(ManualClock::at_unix(Duration::seconds(1_000_000 + offset)))
//!         .build()
//! };
//! let (a, b) = (replica(0)?, replica(3)?); // clocks 3 seconds apart
//!
//! let nonce = a.issue();
//! assert!(b.check(nonce.as_str()).is_accepted());
//! # Ok::<(), dpop_nonce::derived::DerivedConfigError>(())
//! ```

mod error;
mod keys;

use std::fmt;

use time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::ct::{self, Packed};
use crate::nonce::Nonce;
use crate::rotation::Rotation;
use crate::source::{NonceCheck, NonceSource};
use crate::window_cell::{Slots, WindowCell};

pub use error::DerivedConfigError;
use keys::Secret;

/// Most secrets a source holds (see [`DerivedNonceSource::MAX_SECRETS`]).
const SECRETS: usize = 3;

/// Values cached per secret: the current, previous and next window.
const PER_SECRET: usize = 3;
const CURRENT: usize = 0;
const PREVIOUS: usize = 1;
const NEXT: usize = 2;

/// The cached values of the current window, in a cell sized for the number of secrets: three
/// slots per secret (current, previous, next window), so a source with one secret holds three
/// values, not nine. A check compares every slot that can decide it: with one secret, in the
/// steady part of a window, the current and previous values (the next one cannot count there);
/// otherwise every slot.
enum Cache {
    One(WindowCell<PER_SECRET>),
    Two(WindowCell<{ 2 * PER_SECRET }>),
    Three(WindowCell<{ 3 * PER_SECRET }>),
}

/// A stateless nonce source shared by replicas through a secret: the nonce of each rotation
/// window is an HMAC-SHA256 of a per-server label and the window number.
///
/// # What replicas need
///
/// The same secret (or secrets), the same label, the same rotation interval, and clocks within
/// the skew tolerance of each other (NTP does far better than the default 5 seconds). Nothing
/// else: no storage, no network, no coordination at start-up.
///
/// # Labels
///
/// The label names the server that issues and checks the nonces: `"as"` and `"rs"`, or the
/// server's URL. A nonce made under one label is refused under any other, even with the same
/// secret, because RFC 9449 §9 makes a nonce good only at the server that issued it. Still,
/// prefer different secrets for servers run by different parties.
///
/// # Which nonces are accepted
///
/// Time is cut into windows of [`Rotation`] length aligned on the UNIX epoch (default 5 minutes).
/// The source hands out the current window's nonce under the first secret, and accepts:
///
/// - the current window's nonce ([`NonceCheck::Current`]) and the previous window's
///   ([`NonceCheck::Previous`]), as the in-memory source does;
/// - the *next* window's nonce, but only during the last [`skew`](Self::skew) of the current
///   window ([`NonceCheck::Current`]): a replica whose clock runs ahead may already hand it out.
///
/// The same three windows are accepted under every other secret, always as
/// [`NonceCheck::Previous`], so clients are handed a nonce under the first secret right away.
///
/// A nonce is thus accepted for at most two intervals plus the skew
/// ([`max_nonce_lifetime`](Self::max_nonce_lifetime)), the figure to give a replay cache. A
/// replica whose clock runs behind by `d` (up to the skew) accepts the nonces of the others up to
/// `d` later than they do; one running ahead stops accepting them up to `d` earlier, so a nonce
/// handed out by another replica is always good for at least one interval minus the skew.
///
/// # Clock drift
///
/// Replicas whose clocks differ by less than the skew agree on every nonce. Beyond it, a client
/// that goes from a replica to another may be refused once, and is handed a nonce by the replica
/// it reached; it succeeds on its retry unless its next request again lands on a replica whose
/// clock differs from that one's by more than an interval. The source follows its clock: if the
/// clock steps back, it computes the nonces of the window the clock now shows.
///
/// # Rotating secrets
///
/// The first secret issues; every secret verifies. To replace a secret without refusing a single
/// nonce, roll out in three steps, each on every replica before the next: `[old, new]` (new is
/// accepted everywhere), then `[new, old]` (new issues), then, after
/// [`max_nonce_lifetime`](Self::max_nonce_lifetime), `[new]`. At most
/// [`MAX_SECRETS`](Self::MAX_SECRETS) secrets are held.
///
/// # Secrets in memory
///
/// Secrets must be at least [`MIN_SECRET_LEN`](Self::MIN_SECRET_LEN) bytes of random data (not a
/// password). The source and its builder keep a copy that is wiped (zeroized) when they are
/// dropped, and `Debug` shows only how many secrets there are. The caller's own copy is the
/// caller's to wipe. HMAC computations are short-lived values on the stack and are not wiped.
///
/// # Cost of a check
///
/// The nonces of a window are derived once, by the first call that sees the window start (three
/// HMAC computations per secret), and cached behind the same lock-free sequence lock as the
/// in-memory source. A check derives nothing and takes no lock: it compares the claim in
/// constant time against every cached value that can count at that time (with one secret, in
/// the steady part of a window, the current and the previous one, as the in-memory source
/// does), and a claim that is not accepted there against all of them.
pub struct DerivedNonceSource<C = SystemClock> {
    clock: C,
    rotation: Rotation,
    skew: Duration,
    label: Box<str>,
    secrets: Vec<Secret>,
    cache: Cache,
}

impl DerivedNonceSource<SystemClock> {
    /// Most secrets a source holds: 3 (the issuing one and two being retired or introduced).
    pub const MAX_SECRETS: usize = SECRETS;

    /// Shortest secret accepted, in bytes: 32, the output size of SHA-256.
    pub const MIN_SECRET_LEN: usize = 32;

    /// Longest label accepted, in bytes: 1024.
    pub const MAX_LABEL_LEN: usize = 1024;

    /// The default skew tolerance: 5 seconds (capped at half the rotation interval when the
    /// interval is shorter than 10 seconds).
    pub const DEFAULT_SKEW: Duration = Duration::seconds(5);

    /// A builder for a source whose nonces are bound to `label` (for example `"as"`, `"rs"`, or
    /// the server's URL). Add at least one secret with
    /// [`secret`](DerivedNonceSourceBuilder::secret).
    pub fn builder(label: impl Into<String>) -> DerivedNonceSourceBuilder<SystemClock> {
        DerivedNonceSourceBuilder {
            clock: SystemClock,
            label: label.into(),
            secrets: Vec::new(),
            rotation: Rotation::DEFAULT.interval(),
            skew: None,
        }
    }
}

impl<C: Clock> DerivedNonceSource<C> {
    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The skew tolerance: how long before the end of a window the next window's nonce is
    /// accepted.
    pub fn skew(&self) -> Duration {
        self.skew
    }

    /// The longest time a nonce is accepted: two rotation intervals plus the skew tolerance.
    /// Give it to a replay cache as its entry lifetime.
    pub fn max_nonce_lifetime(&self) -> Duration {
        self.rotation.max_nonce_lifetime().saturating_add(self.skew)
    }

    /// The label nonces are bound to.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// How many secrets the source holds (the first issues, all verify).
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The slots of the window the clock shows now, deriving them when the window changed.
    #[inline]
    fn slots_now<const N: usize>(&self, cell: &WindowCell<N>) -> Slots<N> {
        let now = self.clock.read();
        let slots = cell.read();
        if now.marks_reached(&[slots.start, slots.end]) == 1 {
            return slots;
        }
        // Outside the cached window (either way: nonces are a pure function of the time, so
        // following a clock that stepped back brings back nothing other replicas refuse). The
        // window is read from the clock under the writer lock: a reading taken before it could
        // be older than the window another thread has just stored, and would move the cache
        // back under the feet of checks that already see the newer window.
        cell.update(|latest| {
            let target = self.rotation.window_of(self.clock.unix_time());
            (latest.window != target).then(|| derive(&self.secrets, &self.label, target))
        })
    }

    fn issue_from<const N: usize>(&self, cell: &WindowCell<N>) -> Nonce {
        // The first secret's current slot is filled whenever the source exists; the fallback
        // only keeps this path free of panics.
        let slots = self.slots_now(cell);
        slots
            .values
            .get(CURRENT)
            .and_then(ct::unpack)
            .unwrap_or_else(Nonce::generate)
    }

    /// The fast path of a check: the first `M` slots of the cell, which are every slot that can
    /// count in the steady part of the cached window (from its start to the skew tolerance
    /// before its end). With one secret that is the current and the previous value (`M` = 2);
    /// with more, every slot, the next window's masked out. A claim not accepted there, or a
    /// clock outside that part, goes through [`check_all`](Self::check_all), which compares
    /// every value.
    #[inline]
    fn check_in<const N: usize, const M: usize>(
        &self,
        cell: &WindowCell<N>,
        claim: &str,
    ) -> NonceCheck {
        const { assert!(CURRENT == 0 && PREVIOUS == 1, "the first two slots") };
        // The clock first, so that the comparison runs while the clock is being read (see
        // `ClockReading`).
        let now = self.clock.read();
        let Some(packed) = ct::pack(claim.as_bytes()) else {
            return NonceCheck::Unknown;
        };
        let compared = cell.compare_first::<M>(&packed);
        if now.marks_reached(&[compared.start(), compared.steady_end()]) == 1 {
            let verdict = verdict(compared.hits, false);
            if verdict.is_accepted() {
                return verdict;
            }
        }
        self.check_all(cell, &packed)
    }

    /// The full check, for what the fast path cannot answer: a claim it does not accept, or a
    /// clock outside the steady part of the cached window. Moves the cache to the clock's window
    /// (forward, or back after the clock stepped back) and compares with every slot; the next
    /// window's values count when the clock has reached the skew tolerance before the end of the
    /// window *that comparison saw* (another thread may have moved the cache on in between). So a
    /// refusal is always decided against every value of the window the clock shows. Out of
    /// line: it is the rare path.
    #[cold]
    #[inline(never)]
    fn check_all<const N: usize>(&self, cell: &WindowCell<N>, claim: &Packed) -> NonceCheck {
        self.slots_now(cell);
        let compared = cell.compare(claim);
        let near_end = self.clock.read().has_reached(compared.steady_end());
        verdict(compared.hits, near_end)
    }
}

/// What the hits of a comparison with the first slots mean: the next window's values count only
/// `near_end`; only the first secret's current and next values are current, everything else is
/// accepted as previous, so the client is handed the nonce of the issuing secret.
fn verdict<const N: usize>(hits: [bool; N], near_end: bool) -> NonceCheck {
    let mut current = false;
    let mut previous = false;
    for (index, hit) in hits.into_iter().enumerate() {
        let accepted = match index % PER_SECRET {
            NEXT => hit & near_end,
            _ => hit,
        };
        if index == CURRENT || index == NEXT {
            current |= accepted;
        } else {
            previous |= accepted;
        }
    }
    if current {
        NonceCheck::Current
    } else if previous {
        NonceCheck::Previous
    } else {
        NonceCheck::Unknown
    }
}

/// Every value accepted around `window`, for the first `N / 3` secrets: slot `3 * i + CURRENT`
/// holds secret `i`'s nonce for `window`, `+ PREVIOUS` for `window - 1`, `+ NEXT` for
/// `window + 1`.
fn derive<const N: usize>(secrets: &[Secret], label: &str, window: i64) -> Slots<N> {
    let mut slots = Slots::empty(window);
    let neighbours = [
        (CURRENT, window),
        (PREVIOUS, window.saturating_sub(1)),
        (NEXT, window.saturating_add(1)),
    ];
    let per_secret = slots.values.chunks_exact_mut(PER_SECRET);
    for (values, secret) in per_secret.zip(secrets) {
        for (offset, w) in neighbours {
            if let Some(value) = values.get_mut(offset) {
                *value = secret.derive(label.as_bytes(), w);
            }
        }
    }
    slots
}

impl<C: Clock> NonceSource for DerivedNonceSource<C> {
    fn issue(&self) -> Nonce {
        match &self.cache {
            Cache::One(cell) => self.issue_from(cell),
            Cache::Two(cell) => self.issue_from(cell),
            Cache::Three(cell) => self.issue_from(cell),
        }
    }

    #[inline]
    fn check(&self, claim: &str) -> NonceCheck {
        match &self.cache {
            // One secret: only its current and previous values count in the steady part.
            Cache::One(cell) => self.check_in::<PER_SECRET, 2>(cell, claim),
            Cache::Two(cell) => {
                self.check_in::<{ 2 * PER_SECRET }, { 2 * PER_SECRET }>(cell, claim)
            }
            Cache::Three(cell) => {
                self.check_in::<{ 3 * PER_SECRET }, { 3 * PER_SECRET }>(cell, claim)
            }
        }
    }
}

impl Cache {
    /// The window the cache holds now.
    fn window(&self) -> i64 {
        match self {
            Self::One(cell) => cell.read().window,
            Self::Two(cell) => cell.read().window,
            Self::Three(cell) => cell.read().window,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for DerivedNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedNonceSource")
            .field("clock", &self.clock)
            .field("label", &self.label)
            .field("rotation", &self.rotation.interval())
            .field("skew", &self.skew)
            .field("secrets", &self.secrets.len())
            .field("window", &self.cache.window())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DerivedNonceSource`]; see [`DerivedNonceSource::builder`].
///
/// ```
/// use dpop_nonce::derived::DerivedNonceSource;
/// use dpop_nonce::ManualClock;
/// use time::Duration;
///
/// let (new_secret, old_secret) = ([1u8; 32], [2u8; 32]);
/// let source = DerivedNonceSource::builder("rs")
///     .secret(new_secret) // issues
///     .secret(old_secret) // still verifies
///     .rotation(Duration::minutes(2))
///     .skew(Duration::seconds(3))
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(source.secret_count(), 2);
/// assert_eq!(source.max_nonce_lifetime(), Duration::seconds(243));
/// assert!(!format!("{source:?}").contains("1, 1, 1"));
/// # Ok::<(), dpop_nonce::derived::DerivedConfigError>(())
/// ```
#[must_use]
pub struct DerivedNonceSourceBuilder<C> {
    clock: C,
    label: String,
    secrets: Vec<Secret>,
    rotation: Duration,
    skew: Option<Duration>,
}

impl<C: Clock> DerivedNonceSourceBuilder<C> {
    /// Adds a secret. The first one added issues nonces; all of them verify. Give at least
    /// [`DerivedNonceSource::MIN_SECRET_LEN`] random bytes, and at most
    /// [`DerivedNonceSource::MAX_SECRETS`] secrets. The builder keeps a copy, wiped on drop.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(Secret::new(secret.as_ref()));
        self
    }

    /// Adds several secrets, in order (see [`secret`](Self::secret)).
    pub fn secrets<S: AsRef<[u8]>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.secrets
            .extend(secrets.into_iter().map(|s| Secret::new(s.as_ref())));
        self
    }

    /// Sets the rotation interval (default 5 minutes; see [`Rotation::DEFAULT`]). Every replica
    /// must use the same.
    pub fn rotation(mut self, interval: Duration) -> Self {
        self.rotation = interval;
        self
    }

    /// Sets the skew tolerance: during the last `skew` of a window the next window's nonce is
    /// also accepted. Default [`DerivedNonceSource::DEFAULT_SKEW`]; at most half the rotation
    /// interval; zero turns it off.
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = Some(skew);
        self
    }

    /// Sets the clock (default [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> DerivedNonceSourceBuilder<D> {
        DerivedNonceSourceBuilder {
            clock,
            label: self.label,
            secrets: self.secrets,
            rotation: self.rotation,
            skew: self.skew,
        }
    }

    /// Checks the configuration, builds the source and derives its first window.
    ///
    /// # Errors
    ///
    /// [`DerivedConfigError`]: no secret, too many, one shorter than
    /// [`DerivedNonceSource::MIN_SECRET_LEN`], an empty or over-long label, a skew out of range,
    /// or a rotation interval outside `(0, 100 years]`.
    pub fn build(self) -> Result<DerivedNonceSource<C>, DerivedConfigError> {
        let rotation = Rotation::new(self.rotation)?;
        if self.secrets.is_empty() {
            return Err(DerivedConfigError::NoSecret);
        }
        if self.secrets.len() > SECRETS {
            return Err(DerivedConfigError::TooManySecrets {
                count: self.secrets.len(),
                max: SECRETS,
            });
        }
        if let Some((index, secret)) = self
            .secrets
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() < DerivedNonceSource::MIN_SECRET_LEN)
        {
            return Err(DerivedConfigError::SecretTooShort {
                index,
                len: secret.len(),
                min: DerivedNonceSource::MIN_SECRET_LEN,
            });
        }
        if self.label.is_empty() {
            return Err(DerivedConfigError::EmptyLabel);
        }
        if self.label.len() > DerivedNonceSource::MAX_LABEL_LEN {
            return Err(DerivedConfigError::LabelTooLong {
                len: self.label.len(),
                max: DerivedNonceSource::MAX_LABEL_LEN,
            });
        }
        let half = rotation.interval() / 2;
        let skew = match self.skew {
            None => DerivedNonceSource::DEFAULT_SKEW.min(half),
            Some(skew) if skew.is_negative() || skew > half => {
                return Err(DerivedConfigError::SkewOutOfRange);
            }
            Some(skew) => skew,
        };
        let label = self.label.into_boxed_str();
        let window = rotation.window_of(self.clock.unix_time());
        let cache = match self.secrets.len() {
            1 => Cache::One(WindowCell::new(
                rotation,
                skew,
                derive(&self.secrets, &label, window),
            )),
            2 => Cache::Two(WindowCell::new(
                rotation,
                skew,
                derive(&self.secrets, &label, window),
            )),
            _ => Cache::Three(WindowCell::new(
                rotation,
                skew,
                derive(&self.secrets, &label, window),
            )),
        };
        Ok(DerivedNonceSource {
            clock: self.clock,
            rotation,
            skew,
            label,
            secrets: self.secrets,
            cache,
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for DerivedNonceSourceBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedNonceSourceBuilder")
            .field("clock", &self.clock)
            .field("label", &self.label)
            .field("secrets", &self.secrets.len())
            .field("rotation", &self.rotation)
            .field("skew", &self.skew)
            .finish()
    }
}
