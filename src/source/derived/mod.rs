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
//! # Ok::<(), dpop_nonce::ConfigError>(())
//! ```

mod builder;
mod keys;

use std::fmt;

use time::Duration;

use super::engine::{
    CURRENT, Engine, Layout, NEXT, PREVIOUS, Policy, Slots, carry_local, is_empty,
};
use crate::clock::{Clock, SystemClock};
use crate::rotation::Rotation;

pub use builder::DerivedNonceSourceBuilder;
use keys::Secret;

/// Most secrets a source holds (see [`DerivedNonceSource::MAX_SECRETS`]).
const SECRETS: usize = 3;

/// Slots of the cell: three per secret (the window's value, the one before, the one after),
/// then the two local ones of the engine's layout.
const SLOTS: usize = 3 * SECRETS + 2;

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
/// - the current window's nonce ([`NonceCheck::Current`](crate::NonceCheck::Current)) and the previous window's
///   ([`NonceCheck::Previous`](crate::NonceCheck::Previous)), as the in-memory source does;
/// - the *next* window's nonce, but only during the last [`lead`](Self::lead) of the current
///   window ([`NonceCheck::Current`](crate::NonceCheck::Current)): a replica whose clock runs ahead may already hand it out.
///
/// The same three windows are accepted under every other secret, always as
/// [`NonceCheck::Previous`](crate::NonceCheck::Previous), so clients are handed a nonce under the first secret right away.
///
/// A nonce is thus accepted for at most two intervals plus the lead
/// ([`max_nonce_lifetime`](crate::NonceSource::max_nonce_lifetime)), the figure to give a replay
/// cache. A replica whose clock runs behind by `d` (up to the lead) accepts the nonces of the
/// others up to `d` later than they do; one running ahead stops accepting them up to `d`
/// earlier, so a nonce handed out by another replica is always good for at least one interval
/// minus the lead.
///
/// # Clock drift
///
/// Replicas whose clocks differ by less than the lead agree on every nonce. Beyond it, a client
/// that goes from a replica to another may be refused once, and is handed a nonce by the replica
/// it reached; it succeeds on its retry unless its next request again lands on a replica whose
/// clock differs from that one's by more than an interval.
///
/// A nonce here is a function of its window, so a clock that steps back could bring back the
/// nonces of windows already gone. The source never lets it: it remembers the latest window it
/// has been in, and never accepts the nonce of a window more than one behind it. A step back of
/// up to one window changes nothing (that window's nonce is still accepted as the previous one
/// anyway). After a longer step back the source hands out fresh random nonces of its own,
/// rotated every interval and accepted by this replica only, until its clock is past the
/// latest window it had seen; then it is back on the shared nonces. Clients that meet another
/// replica meanwhile retry once.
///
/// # Rotating secrets
///
/// The first secret issues; every secret verifies. To replace a secret without refusing a single
/// nonce, roll out in three steps, each on every replica before the next: `[old, new]` (new is
/// accepted everywhere), then `[new, old]` (new issues), then, after
/// [`max_nonce_lifetime`](crate::NonceSource::max_nonce_lifetime), `[new]`. At most
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
/// in-memory source. A check derives nothing and takes no lock: in the steady part of a window
/// it compares the claim in constant time with the issuing secret's current and previous
/// values, as the in-memory source does, and a claim those do not accept with every cached
/// value.
pub struct DerivedNonceSource<C = SystemClock> {
    engine: Engine<Derive, C, SLOTS>,
}

/// The derived policy: each secret's values for the window, the one before and the one after.
struct Derive {
    label: Box<str>,
    secrets: Vec<Secret>,
}

impl Policy<SLOTS> for Derive {
    fn fill(&self, latest: &Slots<SLOTS>, target: i64, floor: i64) -> Slots<SLOTS> {
        let mut next = Slots::empty(target);
        let windows = [
            (CURRENT, Some(target)),
            (PREVIOUS, target.checked_sub(1)),
            (NEXT, target.checked_add(1)),
        ];
        for (set, secret) in self.secrets.iter().enumerate().take(SECRETS) {
            for (offset, window) in windows {
                // No value of a window below the floor: a clock that stepped back does not
                // bring one back.
                if let Some(window) = window.filter(|&w| w >= floor) {
                    next.values[Layout::<SLOTS>::shared(set, offset)] =
                        secret.derive(self.label.as_bytes(), window);
                }
            }
        }
        let shared = !is_empty(&next.values[Layout::<SLOTS>::shared(0, CURRENT)]);
        carry_local(latest, target, !shared, &mut next);
        next
    }
}

impl DerivedNonceSource<SystemClock> {
    /// Most secrets a source holds: 3 (the issuing one and two being retired or introduced).
    pub const MAX_SECRETS: usize = SECRETS;

    /// Shortest secret accepted, in bytes: 32, the output size of SHA-256.
    pub const MIN_SECRET_LEN: usize = 32;

    /// Longest label accepted, in bytes: 1024.
    pub const MAX_LABEL_LEN: usize = 1024;

    /// The default lead: 5 seconds (capped at half the rotation interval when the interval is
    /// shorter than 10 seconds).
    pub const DEFAULT_LEAD: Duration = Duration::seconds(5);

    /// A builder for a source whose nonces are bound to `label` (for example `"as"`, `"rs"`, or
    /// the server's URL). Add at least one secret with
    /// [`secret`](DerivedNonceSourceBuilder::secret).
    pub fn builder(label: impl Into<String>) -> DerivedNonceSourceBuilder<SystemClock> {
        DerivedNonceSourceBuilder::new(label.into())
    }
}

impl<C: Clock> DerivedNonceSource<C> {
    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.engine.rotation()
    }

    /// The lead: how long before a window starts its nonce is accepted (for replicas whose
    /// clocks run ahead).
    pub fn lead(&self) -> Duration {
        self.engine.lead()
    }

    /// The label nonces are bound to.
    pub fn label(&self) -> &str {
        &self.engine.policy().label
    }

    /// How many secrets the source holds (the first issues, all verify).
    pub fn secret_count(&self) -> usize {
        self.engine.policy().secrets.len()
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        self.engine.clock()
    }
}

crate::source::engine::engine_nonce_source!(DerivedNonceSource);

impl<C: fmt::Debug> fmt::Debug for DerivedNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.engine.policy();
        f.debug_struct("DerivedNonceSource")
            .field("label", &policy.label)
            .field("secrets", &policy.secrets.len())
            .field("engine", &self.engine)
            .finish()
    }
}
