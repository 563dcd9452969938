//! The [`NonceSource`] trait: where nonces come from, and whether a claim is one of them; and
//! the sources the crate ships, all on one windowed engine.

use std::sync::Arc;

use time::Duration;

use crate::nonce::Nonce;

mod engine;
mod memory;

#[cfg(feature = "derived")]
pub mod derived;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::{InMemoryNonceSource, InMemoryNonceSourceBuilder};

/// How a claim relates to the nonces a [`NonceSource`] hands out.
///
/// ```
/// use dpop_nonce::NonceCheck;
///
/// assert!(NonceCheck::Current.is_accepted());
/// assert!(NonceCheck::Previous.is_accepted());
/// assert!(!NonceCheck::Unknown.is_accepted());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonceCheck {
    /// The claim is the nonce handed out now.
    Current,
    /// The claim is still accepted but is no longer the nonce handed out now (for example the
    /// nonce of the previous rotation window). The validator answers it with a fresh nonce
    /// (RFC 9449 §8.2), so the client moves over before its nonce expires.
    Previous,
    /// The claim is not a nonce this source accepts: never issued, expired, issued by another
    /// server, or impossible to verify right now.
    Unknown,
}

impl NonceCheck {
    /// `true` for [`NonceCheck::Current`] and [`NonceCheck::Previous`].
    pub const fn is_accepted(self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

/// Where nonces come from: the one thing a [`NonceValidator`](crate::NonceValidator) asks of its
/// backend.
///
/// A source answers two questions: which nonce to hand out now ([`issue`](Self::issue)), and
/// whether a claim is one of its nonces ([`check`](Self::check)). The crate ships
/// [`InMemoryNonceSource`](crate::InMemoryNonceSource); other sources, and test doubles, implement
/// this trait. It is object-safe, so `Box<dyn NonceSource>` and `Arc<dyn NonceSource>` work, and
/// it is implemented for `&S`, `Arc<S>` and `Box<S>`.
///
/// # Contract
///
/// - `issue` returns a nonce that `check` classifies as [`NonceCheck::Current`] or
///   [`NonceCheck::Previous`] (at least until the source rotates).
/// - `check` compares the claim with *every* candidate, in time that does not depend on where a
///   candidate differs from the claim (only on public facts such as the claim's length). Use
///   [`subtle`](https://docs.rs/subtle) or [`Nonce`]'s `==`, never `str`'s `==`.
/// - `check` never says [`NonceCheck::Current`] or [`NonceCheck::Previous`] for a claim it did not
///   issue. A source that cannot verify a claim (its backend is down, say) answers
///   [`NonceCheck::Unknown`].
/// - `max_nonce_lifetime` bounds, in the source's clock time, how long any nonce it issues is
///   accepted, whatever the clock does; a replay cache keeps entries at least that long.
/// - No method panics or blocks for long; sources that talk to a network bound every call with
///   a timeout.
///
/// The validator has already refused claims that are empty or longer than [`Nonce::MAX_LEN`],
/// so `check` only sees claims of 1 to `MAX_LEN` bytes. They are not yet checked for NQCHAR.
///
/// # Mocking
///
/// A hand-written source is a few lines, which makes validators easy to drive in unit tests:
///
/// ```
/// use dpop_nonce::{Nonce, NonceCheck, NonceSource, NonceValidator, RejectReason};
/// use time::Duration;
///
/// struct Fixed(Nonce);
///
/// impl NonceSource for Fixed {
///     fn issue(&self) -> Nonce {
///         self.0.clone()
///     }
///     fn check(&self, claim: &str) -> NonceCheck {
///         if self.0 == claim { NonceCheck::Current } else { NonceCheck::Unknown }
///     }
///     fn max_nonce_lifetime(&self) -> Duration {
///         Duration::minutes(10)
///     }
/// }
///
/// let validator = NonceValidator::new(Fixed(Nonce::parse("n-1")?));
/// assert!(validator.validate(Some("n-1")).is_ok());
/// let refused = validator.validate(Some("n-0")).unwrap_err();
/// assert_eq!(refused.reason(), RejectReason::Mismatch);
/// assert_eq!(refused.nonce().as_str(), "n-1");
/// # Ok::<(), dpop_nonce::NonceError>(())
/// ```
pub trait NonceSource: Send + Sync {
    /// The nonce to hand out now, in a `DPoP-Nonce` header.
    fn issue(&self) -> Nonce;

    /// Whether `claim` (a proof's `nonce` claim, 1 to [`Nonce::MAX_LEN`] bytes) is a nonce this
    /// source accepts, compared in constant time against every candidate that can count at
    /// that time.
    fn check(&self, claim: &str) -> NonceCheck;

    /// The longest time one of this source's nonces can be accepted, from the moment it is first
    /// handed out: the lifetime to give replay-cache entries (RFC 9449 §11.1).
    fn max_nonce_lifetime(&self) -> Duration;
}

/// `NonceSource` for every pointer to one: `&S`, `Arc<S>`, `Box<S>` (and so `Arc<dyn NonceSource>`).
macro_rules! forward_nonce_source {
    ($($pointer:ty),+) => {$(
        impl<S: NonceSource + ?Sized> NonceSource for $pointer {
            #[inline]
            fn issue(&self) -> Nonce {
                (**self).issue()
            }

            #[inline]
            fn check(&self, claim: &str) -> NonceCheck {
                (**self).check(claim)
            }

            #[inline]
            fn max_nonce_lifetime(&self) -> Duration {
                (**self).max_nonce_lifetime()
            }
        }
    )+};
}

forward_nonce_source!(&S, Arc<S>, Box<S>);
