//! [`NonceValidator`]: checks a proof's `nonce` claim and says what to answer.

use std::fmt;

use crate::ct;
use crate::nonce::{Nonce, is_valid_nonce};
use crate::source::{NonceCheck, NonceSource};

/// Whether an endpoint insists on a nonce.
///
/// ```
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator, Requirement};
///
/// let par = NonceValidator::new(InMemoryNonceSource::new()).with_requirement(Requirement::Optional);
/// assert!(par.validate(None).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Requirement {
    /// Every proof must carry a valid nonce (token, userinfo and resource endpoints). A proof
    /// without one is refused: once a server hands out nonces, accepting a proof without one
    /// would let an attacker downgrade (RFC 9449 §11.3).
    #[default]
    Required,
    /// A proof without a `nonce` claim passes; one that carries a claim must still carry a valid
    /// nonce (for example a pushed authorization request endpoint).
    Optional,
}

/// Why a claim was refused. Every reason gets the same `use_dpop_nonce` answer with a fresh
/// nonce; the reason picks the error description and serves logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The proof has no `nonce` claim, and the endpoint requires one.
    Missing,
    /// The claim is well formed but not a nonce the source accepts: never issued, expired, or
    /// issued by another server.
    Mismatch,
    /// The claim cannot be a nonce at all: empty, longer than [`Nonce::MAX_LEN`], or holding a
    /// character outside NQCHAR.
    Malformed,
}

impl RejectReason {
    /// A short, stable, lowercase name for logs and metrics: `missing`, `mismatch`, `malformed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Mismatch => "mismatch",
            Self::Malformed => "malformed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The proof's nonce is good: serve the request.
///
/// When [`refresh`](Accepted::refresh) is `Some`, send it in a `DPoP-Nonce` header on the
/// success response (RFC 9449 §8.2), so the client moves to the current nonce before its own
/// expires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Accepted {
    refresh: Option<Nonce>,
}

impl Accepted {
    /// The nonce to send with the success response, if any: the current nonce when the client
    /// used the previous one, or (with [`Requirement::Optional`]) sent none. `None` when the
    /// client's nonce is already current.
    pub fn refresh(&self) -> Option<&Nonce> {
        self.refresh.as_ref()
    }

    /// Takes the refresh nonce out, by value.
    pub fn into_refresh(self) -> Option<Nonce> {
        self.refresh
    }
}

/// The proof's nonce is missing or not good: answer `use_dpop_nonce` with
/// [`nonce`](UseDpopNonce::nonce) in the one `DPoP-Nonce` header.
///
/// The fresh nonce is never equal to the refused claim, so a client that retries once with it
/// succeeds, and clients that stop when handed back their own nonce keep going. Render the
/// answer through [`Answer::from`](crate::render::Answer) for a
/// [`Role`](crate::render::Role): 400 with a JSON body at an authorization server, 401 with
/// `WWW-Authenticate` at a resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct UseDpopNonce {
    reason: RejectReason,
    nonce: Nonce,
}

impl UseDpopNonce {
    /// Why the claim was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// The fresh nonce the client must use: send it in the `DPoP-Nonce` header.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// Takes the fresh nonce out, by value.
    pub fn into_nonce(self) -> Nonce {
        self.nonce
    }
}

impl fmt::Display for UseDpopNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "use_dpop_nonce ({})", self.reason)
    }
}

impl std::error::Error for UseDpopNonce {}

/// Checks the `nonce` claim of DPoP proofs against a [`NonceSource`].
///
/// The caller verifies the proof (signature, `htm`, `htu`, `iat`, `jti`) with its own JOSE stack
/// and hands over the `nonce` claim as `Option<&str>`. The validator answers with a typed
/// outcome; see the crate documentation for how to map it onto HTTP.
///
/// Claims longer than [`Nonce::MAX_LEN`] are refused before any comparison, so a huge claim costs
/// no more than a short one. Accepted claims are compared in constant time against every
/// candidate nonce by the source.
///
/// ```
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator, RejectReason};
///
/// let validator = NonceValidator::new(InMemoryNonceSource::new());
///
/// // First request: no nonce yet.
/// let refused = validator.validate(None).unwrap_err();
/// assert_eq!(refused.reason(), RejectReason::Missing);
///
/// // The client retries with the nonce it was handed.
/// let accepted = validator.validate(Some(refused.nonce().as_str())).unwrap();
/// assert!(accepted.refresh().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct NonceValidator<S> {
    source: S,
    requirement: Requirement,
}

impl<S: NonceSource> NonceValidator<S> {
    /// A validator over `source` that requires a nonce ([`Requirement::Required`]).
    pub fn new(source: S) -> Self {
        Self {
            source,
            requirement: Requirement::Required,
        }
    }

    /// Sets whether a proof may come without a nonce.
    #[must_use]
    pub fn with_requirement(mut self, requirement: Requirement) -> Self {
        self.requirement = requirement;
        self
    }

    /// The requirement in force.
    pub fn requirement(&self) -> Requirement {
        self.requirement
    }

    /// The source behind this validator.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The nonce handed out now, for a response that wants to offer one unprompted.
    pub fn issue(&self) -> Nonce {
        self.source.issue()
    }

    /// Checks a proof's `nonce` claim (`None` when the proof has no such claim).
    ///
    /// # Errors
    ///
    /// [`UseDpopNonce`] when the claim is missing (and required), unknown or expired, or
    /// malformed. It is an outcome to answer, not a failure of the library.
    pub fn validate(&self, claim: Option<&str>) -> Result<Accepted, UseDpopNonce> {
        let Some(claim) = claim else {
            return match self.requirement {
                Requirement::Required => Err(self.refuse(RejectReason::Missing, None)),
                Requirement::Optional => Ok(Accepted {
                    refresh: Some(self.source.issue()),
                }),
            };
        };
        if claim.is_empty() || claim.len() > Nonce::MAX_LEN {
            return Err(self.refuse(RejectReason::Malformed, Some(claim)));
        }
        match self.source.check(claim) {
            NonceCheck::Current => Ok(Accepted { refresh: None }),
            NonceCheck::Previous => Ok(self.refresh()),
            NonceCheck::Unknown => Err(self.refuse_unknown(claim)),
        }
    }

    /// Accepts the previous nonce, handing out the current one (RFC 9449 §8.2).
    #[inline(never)]
    fn refresh(&self) -> Accepted {
        Accepted {
            refresh: Some(self.source.issue()),
        }
    }

    /// Refuses a claim the source does not know. Only a refused claim is checked against the
    /// grammar: an accepted claim equals an issued nonce, which is well formed by construction.
    #[cold]
    #[inline(never)]
    fn refuse_unknown(&self, claim: &str) -> UseDpopNonce {
        let reason = if is_valid_nonce(claim.as_bytes()) {
            RejectReason::Mismatch
        } else {
            RejectReason::Malformed
        };
        self.refuse(reason, Some(claim))
    }

    /// Builds the refusal, with a fresh nonce that differs from the claim. Out of line: it is the
    /// rare path, and keeping it apart keeps the accepting path small.
    #[cold]
    #[inline(never)]
    fn refuse(&self, reason: RejectReason, claim: Option<&str>) -> UseDpopNonce {
        let nonce = self.source.issue();
        let Some(claim) = claim else {
            return UseDpopNonce { reason, nonce };
        };
        if !ct::bytes_eq(nonce.as_bytes(), claim.as_bytes()) {
            return UseDpopNonce { reason, nonce };
        }
        // The source hands out the very value it just refused. That breaks the `NonceSource`
        // contract (or a rotation landed between the two calls and produced the same value,
        // which for 256-bit nonces does not happen). Ask once more; then, rather than echo the
        // claim, which makes clients give up, hand out a value that differs from it.
        let again = self.source.issue();
        let nonce = if ct::bytes_eq(again.as_bytes(), claim.as_bytes()) {
            Nonce::generate()
        } else {
            again
        };
        UseDpopNonce { reason, nonce }
    }
}
