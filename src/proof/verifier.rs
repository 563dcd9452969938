//! [`Verifier`]: one call that checks a whole DPoP proof, configured once per endpoint.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use thiserror::Error;
use time::Duration;

use super::alg::Algorithms;
use super::backend::Backend;
use super::htu::{self, BaseUrl};
use super::json::{Number, Object, Value};
use super::jws::{self, CompactJws, ProofHeader};
use super::rejection::{Reason, Rejection};
use super::request::{DpopHeader, ProofRequest};
use super::verified::VerifiedProof;
use crate::render::Algs;
use crate::replay::{
    AsyncReplayCache, MAX_JTI_LEN, ReplayCache, ReplayCheck, ReplayError, ReplayKey,
};
use crate::{Clock, NonceSource, NonceValidator, SystemClock};

/// The longest `DPoP` header value accepted, in bytes: 8 KiB. An ES256 proof is about 500
/// bytes, an RS256 proof with a 4096-bit key about 1.5 KiB. A longer value is refused before
/// any decoding.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// How far in the past a proof's `iat` may lie by default: 60 seconds.
///
/// A proof is made right before its request, so its age is the network delay plus the clock
/// difference between client and server. A minute covers both for clients with a synchronized
/// clock and keeps the window, and so the replay-cache entry lifetime, short. Freshness beyond
/// that comes from the server nonce.
pub const DEFAULT_PAST_LEEWAY: Duration = Duration::seconds(60);

/// How far in the future a proof's `iat` may lie by default: 10 seconds, the tolerance FAPI 2.0
/// asks servers to accept for clients whose clock runs ahead.
pub const DEFAULT_FUTURE_LEEWAY: Duration = Duration::seconds(10);

/// The largest future leeway a verifier accepts: 60 seconds, beyond which FAPI 2.0 asks servers
/// to refuse proofs.
pub const MAX_FUTURE_LEEWAY: Duration = Duration::seconds(60);

/// Why a [`VerifierBuilder`] cannot build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The algorithm allow-list is empty.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,
    /// A leeway is negative.
    #[error("iat leeways must not be negative")]
    NegativeLeeway,
    /// The future leeway is longer than [`MAX_FUTURE_LEEWAY`].
    #[error("the future iat leeway is {configured}, at most {max} is allowed")]
    FutureLeewayTooLong {
        /// The leeway asked for.
        configured: Duration,
        /// The longest leeway accepted.
        max: Duration,
    },
    /// The public base URL is not an absolute `http(s)` URL without user information, query or
    /// fragment.
    #[error("the public base URL is not an absolute http(s) URL without query or fragment")]
    InvalidBaseUrl,
    /// The replay cache forgets entries while their proofs may still be accepted: its
    /// [`lifetime`](ReplayCache::lifetime) is shorter than
    /// [`VerifierBuilder::required_replay_lifetime`].
    #[error("replay entries live {configured}, but proofs stay acceptable for {required}")]
    ReplayLifetimeTooShort {
        /// The cache's entry lifetime ([`ReplayCache::lifetime`]).
        configured: Duration,
        /// [`VerifierBuilder::required_replay_lifetime`].
        required: Duration,
    },
}

/// Verifies DPoP proofs for one endpoint (RFC 9449 §4.3), nonce and replay checks included.
///
/// Build it once per endpoint with [`Verifier::builder`], then call [`Verifier::verify`] for
/// each request. See the [module documentation](super) for the order of the checks and an
/// example.
pub struct Verifier<S, R, C = SystemClock> {
    validator: NonceValidator<S>,
    replay: R,
    clock: C,
    algorithms: Algorithms,
    backend: Backend,
    past: Duration,
    future: Duration,
    base: Option<BaseUrl>,
    nonce_lifetime: Duration,
    replay_lifetime: Duration,
}

impl<S, R, C: fmt::Debug> fmt::Debug for Verifier<S, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.algorithms)
            .field("backend", &self.backend)
            .field("past_leeway", &self.past)
            .field("future_leeway", &self.future)
            .field("base", &self.base)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("replay_lifetime", &self.replay_lifetime)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<S: NonceSource, R: ReplayCache> Verifier<S, R> {
    /// A builder for a verifier that checks nonces with `validator` and records `jti` values in
    /// `replay`.
    ///
    /// Both lifetimes come from the parts themselves: the nonce lifetime from the validator's
    /// source ([`NonceSource::max_nonce_lifetime`]), the entry lifetime from the cache
    /// ([`ReplayCache::lifetime`]). [`VerifierBuilder::build`] refuses a cache whose entries
    /// would expire while their proofs can still be accepted.
    pub fn builder(validator: NonceValidator<S>, replay: R) -> VerifierBuilder<S, R> {
        let replay_lifetime = replay.lifetime();
        VerifierBuilder::new(validator, replay, replay_lifetime)
    }
}

impl<S: NonceSource, R: AsyncReplayCache> Verifier<S, R> {
    /// A builder for a verifier whose replay cache is asynchronous (for example
    /// [`AsyncRedisReplayCache`](crate::replay::AsyncRedisReplayCache)): proofs are then
    /// checked with [`verify_async`](Verifier::verify_async), and no call blocks the thread.
    /// Lifetimes are taken as in [`builder`](Verifier::builder).
    pub fn builder_async(validator: NonceValidator<S>, replay: R) -> VerifierBuilder<S, R> {
        let replay_lifetime = replay.lifetime();
        VerifierBuilder::new(validator, replay, replay_lifetime)
    }
}

impl<S: NonceSource, R> VerifierBuilder<S, R> {
    fn new(validator: NonceValidator<S>, replay: R, replay_lifetime: Duration) -> Self {
        VerifierBuilder {
            validator,
            replay,
            replay_lifetime,
            clock: SystemClock,
            algorithms: Algorithms::DEFAULT,
            backend: Backend::DEFAULT,
            past: DEFAULT_PAST_LEEWAY,
            future: DEFAULT_FUTURE_LEEWAY,
            base: None,
        }
    }
}

impl<S: NonceSource, R, C: Clock> Verifier<S, R, C> {
    /// The algorithms accepted, for the `dpop_signing_alg_values_supported` metadata.
    pub fn algorithms(&self) -> Algorithms {
        self.algorithms
    }

    /// The algorithms accepted, ready for the `algs` parameter of a resource server's
    /// challenge: `Role::ResourceServer { algs: verifier.algs() }`.
    ///
    /// [`Role`]: crate::render::Role
    pub fn algs(&self) -> Algs {
        Algs::from(self.algorithms)
    }

    /// The signature backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How far in the past and in the future a proof's `iat` may lie.
    pub fn iat_leeway(&self) -> (Duration, Duration) {
        (self.past, self.future)
    }

    /// The shortest replay-cache entry lifetime that keeps every accepted proof recorded for
    /// as long as it could be accepted again: the longer of the nonce lifetime (taken from the
    /// source when the verifier was built) and the `iat` window (past plus future leeway).
    pub fn required_replay_lifetime(&self) -> Duration {
        required_lifetime(self.nonce_lifetime, self.past, self.future)
    }

    /// The entry lifetime of the replay cache, as it reported it when the verifier was built.
    pub fn replay_lifetime(&self) -> Duration {
        self.replay_lifetime
    }

    /// The nonce validator, for example to [`issue`](NonceValidator::issue) a nonce.
    pub fn validator(&self) -> &NonceValidator<S> {
        &self.validator
    }

    /// The replay cache.
    pub fn replay_cache(&self) -> &R {
        &self.replay
    }

    /// Verifies the proof of `request`.
    ///
    /// The checks run in this order; the first failure ends the call, and only the last step
    /// writes any state:
    ///
    /// 1. exactly one `DPoP` value, at most [`MAX_PROOF_LEN`] bytes;
    /// 2. a compact JWS of three base64url parts;
    /// 3. the header: a JSON object without duplicate members or deep nesting, `typ` exactly
    ///    `dpop+jwt`, no `crit`, `alg` on the allow-list, a public `jwk` fitting `alg`;
    /// 4. the signature, by that `jwk`;
    /// 5. the claims: a JSON object as above; `htm` equals the method; `htu` equals the
    ///    request URI after normalization, query and fragment ignored; `iat` an integer within
    ///    the leeways; `jti` a non-empty string of at most
    ///    [`MAX_JTI_LEN`](crate::replay::MAX_JTI_LEN) bytes;
    /// 6. with an access token: `ath` equals the base64url SHA-256 of the token, and the key's
    ///    thumbprint equals the token's `cnf.jkt` (both compared in constant time); with a
    ///    `dpop_jkt`: the thumbprint equals it;
    /// 7. the `nonce` claim, by the [`NonceValidator`]: a missing or stale nonce gives
    ///    `use_dpop_nonce` with a fresh nonce;
    /// 8. the replay cache records (thumbprint, `jti`); a `jti` seen before, or any cache
    ///    error, refuses the proof.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] naming the failed check and the answer to give.
    pub fn verify(&self, request: &ProofRequest<'_>) -> Result<VerifiedProof, Rejection>
    where
        R: ReplayCache,
    {
        let (proof, key) = self.check(request)?;
        record(self.replay.insert(&key), proof)
    }

    /// [`verify`](Self::verify) with an asynchronous replay cache: the same checks in the same
    /// order, every one of them but the last done before the returned future is first polled;
    /// the future then awaits the replay cache's insert, the only write.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] naming the failed check and the answer to give.
    pub fn verify_async(
        &self,
        request: &ProofRequest<'_>,
    ) -> impl Future<Output = Result<VerifiedProof, Rejection>> + Send + '_
    where
        R: AsyncReplayCache,
    {
        let checked = self.check(request);
        async move {
            let (proof, key) = checked?;
            record(self.replay.insert(&key).await, proof)
        }
    }

    /// Every check but the replay insert: steps 1 to 7 of [`verify`](Self::verify). Returns the
    /// verified proof and the replay key to record.
    fn check(&self, request: &ProofRequest<'_>) -> Result<(VerifiedProof, ReplayKey), Rejection> {
        let value = match request.dpop {
            DpopHeader::Missing => return Err(Rejection::new(Reason::MissingProof)),
            DpopHeader::Multiple => return Err(Rejection::new(Reason::MultipleProofs)),
            DpopHeader::One(value) => value,
        };
        if value.len() > MAX_PROOF_LEN {
            return Err(Rejection::new(Reason::ProofTooLarge));
        }
        let jws = CompactJws::split(value)?;
        let header = ProofHeader::parse(jws.header, self.algorithms)?;
        let signature = jws::decode(jws.signature, Reason::MalformedJws)?;
        header
            .jwk
            .verify_signature(header.alg, self.backend, jws.signing_input, &signature)?;

        let claims = jws::decode(jws.payload, Reason::MalformedClaims)?;
        let claims = jws::object(&claims, Reason::MalformedClaims)?;
        let htm = text(&claims, "htm")
            .filter(|htm| *htm == request.method)
            .ok_or(Reason::HtmMismatch)?;
        let htu = text(&claims, "htu").ok_or(Reason::HtuMismatch)?;
        self.check_htu(htu, request.uri)?;
        let iat = match claims.get("iat") {
            Some(Value::Number(Number::Integer(iat))) => *iat,
            _ => return Err(Rejection::new(Reason::InvalidIat)),
        };
        let now = self.clock.unix_time().whole_seconds();
        if iat < now.saturating_sub(self.past.whole_seconds()) {
            return Err(Rejection::new(Reason::IatTooOld));
        }
        if iat > now.saturating_add(self.future.whole_seconds()) {
            return Err(Rejection::new(Reason::IatInFuture));
        }
        let jti = text(&claims, "jti")
            .filter(|jti| !jti.is_empty())
            .ok_or(Reason::InvalidJti)?;
        if jti.len() > MAX_JTI_LEN {
            return Err(Rejection::new(Reason::JtiTooLong));
        }

        let jkt = header.jwk.thumbprint();
        if let Some((token, bound_jkt)) = request.access_token {
            let ath = text(&claims, "ath").ok_or(Reason::MissingAth)?;
            if !ath_matches(ath, token) {
                return Err(Rejection::new(Reason::AthMismatch));
            }
            if !jkt.matches(bound_jkt) {
                return Err(Rejection::new(Reason::JktMismatch));
            }
        }
        if let Some(dpop_jkt) = request.dpop_jkt
            && !jkt.matches(dpop_jkt)
        {
            return Err(Rejection::new(Reason::DpopJktMismatch));
        }

        // A `nonce` that is not a string is a malformed nonce: `use_dpop_nonce`, like any other.
        let nonce = claims
            .get("nonce")
            .map(|nonce| nonce.as_str().unwrap_or(""));
        let accepted = self.validator.validate(nonce)?;

        let key = ReplayKey::new(jkt.as_str(), jti).map_err(|_| Reason::InvalidJti)?;
        let proof = VerifiedProof {
            jkt,
            jti: jti.to_owned(),
            iat,
            htm: htm.to_owned(),
            htu: htu.to_owned(),
            alg: header.alg,
            refresh: accepted.into_refresh(),
        };
        Ok((proof, key))
    }

    fn check_htu(&self, htu: &str, uri: &str) -> Result<(), Reason> {
        let expected = match &self.base {
            Some(base) => base.join(uri),
            None => htu::normalize_htu(uri),
        };
        match (htu::normalize_htu(htu), expected) {
            (Some(claimed), Some(expected)) if claimed == expected => Ok(()),
            _ => Err(Reason::HtuMismatch),
        }
    }
}

/// The last step: `proof` stands only if the replay cache recorded its key as new.
fn record(
    inserted: Result<ReplayCheck, ReplayError>,
    proof: VerifiedProof,
) -> Result<VerifiedProof, Rejection> {
    match inserted {
        Ok(ReplayCheck::Fresh) => Ok(proof),
        Ok(ReplayCheck::Replayed) => Err(Rejection::new(Reason::Replayed)),
        Err(ReplayError::Full) => Err(Rejection::new(Reason::ReplayCacheFull)),
        Err(_) => Err(Rejection::new(Reason::ReplayCacheUnavailable)),
    }
}

/// A string member of the claims.
fn text<'a>(claims: &'a Object, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// Whether `ath` is the base64url SHA-256 of `token`, in constant time.
fn ath_matches(ath: &str, token: &str) -> bool {
    let mut expected = [0u8; 43];
    let digest = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode_slice(digest, &mut expected).is_ok()
        && ath.len() == expected.len()
        && bool::from(expected.ct_eq(ath.as_bytes()))
}

fn required_lifetime(nonce_lifetime: Duration, past: Duration, future: Duration) -> Duration {
    nonce_lifetime.max(past.saturating_add(future))
}

/// Configures a [`Verifier`]; from [`Verifier::builder`].
///
/// ```
/// use std::sync::Arc;
/// use dpop_nonce::proof::{Algorithm, Algorithms, BuildError, Verifier};
/// use dpop_nonce::replay::InMemoryReplayCache;
/// use dpop_nonce::{InMemoryNonceSource, NonceSource, NonceValidator};
/// use time::Duration;
///
/// let source = Arc::new(InMemoryNonceSource::new());
/// // The cache keeps entries as long as the source's nonces live: two rotation intervals,
/// // longer than the default 70-second `iat` window.
/// let verifier = Verifier::builder(
///     NonceValidator::new(Arc::clone(&source)),
///     InMemoryReplayCache::for_source(&source),
/// )
/// .algorithms(Algorithms::new([Algorithm::Es256]))
/// .build()?;
/// assert_eq!(verifier.algorithms().to_string(), "ES256");
/// assert_eq!(verifier.algs().as_str(), "ES256");
/// assert_eq!(verifier.required_replay_lifetime(), source.max_nonce_lifetime());
///
/// // A cache that forgets entries too early is refused.
/// let refused = Verifier::builder(
///     NonceValidator::new(source),
///     InMemoryReplayCache::builder(Duration::seconds(5)).build()?,
/// )
/// .build();
/// assert!(matches!(
///     refused,
///     Err(BuildError::ReplayLifetimeTooShort { configured, .. }) if configured == Duration::seconds(5)
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct VerifierBuilder<S, R, C = SystemClock> {
    validator: NonceValidator<S>,
    replay: R,
    /// The cache's entry lifetime, read from it when the builder was made.
    replay_lifetime: Duration,
    clock: C,
    algorithms: Algorithms,
    backend: Backend,
    past: Duration,
    future: Duration,
    base: Option<String>,
}

impl<S, R, C: fmt::Debug> fmt::Debug for VerifierBuilder<S, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("algorithms", &self.algorithms)
            .field("backend", &self.backend)
            .field("past_leeway", &self.past)
            .field("future_leeway", &self.future)
            .field("base", &self.base)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<S: NonceSource, R, C> VerifierBuilder<S, R, C> {
    /// The algorithms accepted (default [`Algorithms::DEFAULT`]).
    pub fn algorithms(mut self, algorithms: Algorithms) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// The signature backend (default [`Backend::DEFAULT`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// How far in the past and in the future `iat` may lie (defaults [`DEFAULT_PAST_LEEWAY`]
    /// and [`DEFAULT_FUTURE_LEEWAY`]). Whole seconds count; the future leeway may not exceed
    /// [`MAX_FUTURE_LEEWAY`].
    pub fn iat_leeway(mut self, past: Duration, future: Duration) -> Self {
        self.past = past;
        self.future = future;
        self
    }

    /// The endpoint's public base URL, such as `https://server.example.com` (or with a path
    /// prefix, `https://example.com/auth`). Behind a proxy, the scheme and host of a request
    /// cannot be trusted; with a base URL, the expected `htu` is the base followed by the path
    /// of the request target, and the target's own scheme and host are ignored.
    ///
    /// Without it, each request's URI must be absolute and is trusted as given.
    pub fn public_base_url(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// The clock `iat` is checked against (default [`SystemClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> VerifierBuilder<S, R, C2> {
        VerifierBuilder {
            validator: self.validator,
            replay: self.replay,
            replay_lifetime: self.replay_lifetime,
            clock,
            algorithms: self.algorithms,
            backend: self.backend,
            past: self.past,
            future: self.future,
            base: self.base,
        }
    }

    /// The shortest replay-cache entry lifetime for the settings so far: the longer of the
    /// source's [`max_nonce_lifetime`](NonceSource::max_nonce_lifetime) and the `iat` window,
    /// past plus future leeway.
    ///
    /// A proof is accepted only while its `iat` is inside the window and its nonce is
    /// accepted, so an entry that lives this long is still there whenever the same proof could
    /// pass every other check again. Build the cache with at least this lifetime.
    pub fn required_replay_lifetime(&self) -> Duration {
        required_lifetime(
            self.validator.source().max_nonce_lifetime(),
            self.past,
            self.future,
        )
    }

    /// Checks the settings and builds the verifier.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting at fault.
    pub fn build(self) -> Result<Verifier<S, R, C>, BuildError> {
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        if self.past.is_negative() || self.future.is_negative() {
            return Err(BuildError::NegativeLeeway);
        }
        if self.future > MAX_FUTURE_LEEWAY {
            return Err(BuildError::FutureLeewayTooLong {
                configured: self.future,
                max: MAX_FUTURE_LEEWAY,
            });
        }
        let base = match &self.base {
            Some(base) => Some(BaseUrl::parse(base).ok_or(BuildError::InvalidBaseUrl)?),
            None => None,
        };
        let nonce_lifetime = self.validator.source().max_nonce_lifetime();
        let replay_lifetime = self.replay_lifetime;
        let required = required_lifetime(nonce_lifetime, self.past, self.future);
        if replay_lifetime < required {
            return Err(BuildError::ReplayLifetimeTooShort {
                configured: replay_lifetime,
                required,
            });
        }
        Ok(Verifier {
            validator: self.validator,
            replay: self.replay,
            clock: self.clock,
            algorithms: self.algorithms,
            backend: self.backend,
            past: self.past,
            future: self.future,
            base,
            nonce_lifetime,
            replay_lifetime,
        })
    }
}
