//! Whole-proof verification (RFC 9449 §4.3): one call takes a request's `DPoP` header and
//! answers "serve", "retry with this nonce" or "refuse".
//!
//! A [`Verifier`] is configured once per endpoint: the [`Algorithms`] it accepts, the `iat`
//! window, a [`NonceValidator`](crate::NonceValidator), a [`ReplayCache`](crate::replay::ReplayCache)
//! and optionally the endpoint's public base URL. [`Verifier::verify`] then checks a
//! [`ProofRequest`] and returns a [`VerifiedProof`] or a [`Rejection`].
//!
//! # The checks, in order
//!
//! 1. Exactly one `DPoP` header value, at most [`MAX_PROOF_LEN`] bytes, before any parsing.
//! 2. A compact JWS: three non-empty base64url parts without padding.
//! 3. The JOSE header, a JSON object with no duplicate member and nesting of at most
//!    [`MAX_JSON_DEPTH`]: `typ` exactly `dpop+jwt`; no `crit`; `alg` on the allow-list (there
//!    is no way to allow `none` or a MAC); a public `jwk` (no `d`, `p`, `q`, `dp`, `dq`, `qi`,
//!    `oth`, `k`, no `kty` `oct`), RSA moduli from 2048 to 8192 bits, of the type and curve
//!    `alg` needs.
//! 4. The signature, by that `jwk`, with the chosen [`Backend`].
//! 5. The claims, parsed with the same bounds: `htm` equals the request method; `htu` equals
//!    the request URI after RFC 3986 normalization ([`normalize_htu`]), query and fragment
//!    ignored; `iat` an integer within the leeways; `jti` non-empty and at most
//!    [`MAX_JTI_LEN`](crate::replay::MAX_JTI_LEN) bytes.
//! 6. At a resource server, `ath` equals the hash of the access token and the key's
//!    [`Thumbprint`] equals the token's `cnf.jkt`; at a token endpoint, the thumbprint equals
//!    the authorization request's `dpop_jkt` when there was one (RFC 9449 §10). Both compare in
//!    constant time.
//! 7. The `nonce` claim, by the nonce validator. A missing or stale nonce is answered with
//!    `use_dpop_nonce` and a fresh nonce, never with `invalid_dpop_proof`.
//! 8. Last, the only write: the replay cache records the (thumbprint, `jti`) pair. A proof that
//!    failed any earlier check never reaches the cache. A `jti` seen before, or any cache error,
//!    refuses the proof.
//!
//! Every step does bounded work on bounded input, and no input makes it panic.
//!
//! # The `iat` window and the replay cache
//!
//! By default `iat` may lie up to 60 seconds in the past ([`DEFAULT_PAST_LEEWAY`]) and 10 in
//! the future ([`DEFAULT_FUTURE_LEEWAY`], the FAPI 2.0 tolerance; more than
//! [`MAX_FUTURE_LEEWAY`] cannot be configured). Replay entries must outlive the time a proof
//! can be accepted. The verifier reads both lifetimes from its parts, the nonce lifetime from
//! the source ([`NonceSource::max_nonce_lifetime`](crate::NonceSource::max_nonce_lifetime)) and
//! the entry lifetime from the cache ([`ReplayCache::lifetime`](crate::replay::ReplayCache::lifetime)),
//! and the builder refuses a cache whose entries live less than
//! [`VerifierBuilder::required_replay_lifetime`], the longer of the nonce lifetime and the
//! `iat` window. [`InMemoryReplayCache::for_proofs`](crate::replay::InMemoryReplayCache::for_proofs)
//! builds an in-memory cache of that size for the default leeways.
//!
//! # Answering
//!
//! A [`Rejection`] renders through [`render`](crate::render): [`Rejection::answer`] (or
//! `Answer::from`) picks the answer, and a [`Role`](crate::render::Role) its form. A resource
//! server names the verifier's algorithms in its challenge with [`Verifier::algs`].
//!
//! # Example
//!
//! The proof of RFC 9449 Figure 5, checked at the token endpoint at the time it was made. Its
//! request carries no nonce, so the endpoint here makes nonces optional and hands one out with
//! the success answer.
//!
//! ```
//! use std::sync::Arc;
//! use dpop_nonce::proof::{ProofRequest, Verifier};
//! use dpop_nonce::render::Role;
//! use dpop_nonce::replay::InMemoryReplayCache;
//! use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource, NonceValidator, Requirement};
//! use time::Duration;
//!
//! let clock = Arc::new(ManualClock::at_unix(Duration::seconds(1_562_262_616)));
//! let source = InMemoryNonceSource::builder().clock(Arc::clone(&clock)).build()?;
//! let replay = InMemoryReplayCache::builder(source.max_nonce_lifetime())
//!     .clock(Arc::clone(&clock))
//!     .build()?;
//! let validator = NonceValidator::new(source).with_requirement(Requirement::Optional);
//! let verifier = Verifier::builder(validator, replay)
//!     .public_base_url("https://server.example.com")
//!     .clock(Arc::clone(&clock))
//!     .build()?;
//!
//! let proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
//! let request = ProofRequest::new("POST", "/token", [proof]);
//!
//! let verified = verifier.verify(&request)?;
//! assert_eq!(verified.jkt().as_str(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
//! assert!(verified.refresh_nonce().is_some()); // send it in `DPoP-Nonce`
//!
//! // The same proof again is a replay.
//! let refused = verifier.verify(&request).unwrap_err();
//! assert_eq!(refused.error_code(), "invalid_dpop_proof");
//! assert_eq!(refused.description(), "DPoP proof was already used");
//!
//! // Rendered for the token endpoint: 400 with a JSON body.
//! let parts = refused.answer().to_parts(&Role::AuthorizationServer);
//! assert_eq!(parts.status, 400);
//! assert!(parts.body.starts_with(r#"{"error":"invalid_dpop_proof""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alg;
mod authorization;
mod backend;
mod htu;
mod json;
mod jwk;
mod jws;
mod rejection;
mod request;
mod verified;
mod verifier;

pub use alg::{Algorithm, Algorithms};
pub use authorization::dpop_access_token;
pub use backend::Backend;
pub use htu::normalize_htu;
pub use json::MAX_JSON_DEPTH;
pub use jwk::{MAX_RSA_BITS, MIN_RSA_BITS, PublicJwk, Thumbprint};
pub use rejection::{Reason, Rejection, RejectionKind};
pub use request::ProofRequest;
pub use verified::VerifiedProof;
pub use verifier::{
    BuildError, DEFAULT_FUTURE_LEEWAY, DEFAULT_PAST_LEEWAY, MAX_FUTURE_LEEWAY, MAX_PROOF_LEN,
    Verifier, VerifierBuilder,
};
