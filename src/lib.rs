//! Server-provided DPoP nonces (RFC 9449 §8, §9, §11.3): making them, rotating them, checking a
//! proof's `nonce` claim in constant time, and saying what to answer.
//!
//! A server that demands nonces closes the "stash of pre-computed proofs" attack: a stolen or
//! pre-signed DPoP proof is worthless once the nonce it carries has rotated out. With the `proof`
//! feature, `proof::Verifier` checks the whole proof (RFC 9449 §4.3), nonce and `jti` included,
//! and its refusals render through [`render`]. Without it, verify the proof with your JOSE stack
//! and hand the `nonce` claim to a [`NonceValidator`].
//!
//! # The flow
//!
//! ```
//! use dpop_nonce::render::header::DPOP_NONCE;
//! use dpop_nonce::render::{Answer, Role};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! // One source per server: the authorization server and the resource server keep their own.
//! let token_endpoint = NonceValidator::new(InMemoryNonceSource::new());
//!
//! // A proof arrives without a nonce: answer 400 use_dpop_nonce with a fresh nonce.
//! let refused = token_endpoint.validate(None).unwrap_err();
//! let answer = Answer::from(refused).to_parts(&Role::AuthorizationServer);
//! assert_eq!(answer.status, 400);
//! let nonce = answer.header(DPOP_NONCE).unwrap().to_owned();
//!
//! // The client retries with it and is served.
//! let accepted = token_endpoint.validate(Some(&nonce)).unwrap();
//! // `DPoP-Nonce` and `Cache-Control: no-store` when there is a newer nonce (RFC 9449 §8.2).
//! for (name, value) in accepted.refresh_headers() {
//!     let _ = (name, value);
//! }
//! ```
//!
//! | outcome | authorization server | resource server |
//! |---|---|---|
//! | `Ok(Accepted)`, `refresh()` is `None` | serve | serve |
//! | `Ok(Accepted)`, `refresh()` is `Some(n)` | serve, add `DPoP-Nonce: n` | serve, add `DPoP-Nonce: n` |
//! | `Err(UseDpopNonce)` | 400, JSON `error=use_dpop_nonce`, one `DPoP-Nonce` | 401, `WWW-Authenticate: DPoP error="use_dpop_nonce"`, one `DPoP-Nonce` |
//!
//! # Pieces
//!
//! - [`Nonce`]: a value that can only hold a valid nonce.
//! - [`Clock`], [`SystemClock`], [`ManualClock`]: injectable wall-clock time.
//! - [`Rotation`]: windows aligned on the UNIX epoch.
//! - [`NonceSource`]: where nonces come from; [`InMemoryNonceSource`] for one process.
//! - [`NonceValidator`]: the check and its outcomes, [`Accepted`] and [`UseDpopNonce`].
//! - [`render`]: every DPoP error answer ([`render::Answer`]) as a [`render::Role`] gives it,
//!   as plain data; the `http` and `axum` features adapt the same rendering.
//! - `proof` (feature `proof`): whole DPoP proof verification, nonce and replay checks included.
//!
//! # Using with tokio
//!
//! An async server must never hold a runtime thread while Redis answers. With the `tokio`
//! feature, no call on a request path waits for the network:
//!
//! | piece | sync or async | where it runs |
//! |---|---|---|
//! | [`NonceValidator`], [`NonceSource::check`], [`NonceSource::issue`] | sync, never blocks (in-memory and derived sources; the Redis source with a refresher) | on the request task: a few atomic loads and a constant-time compare |
//! | `redis::RedisNonceSource` built with `build_with_refresher` | sync face, background fetching | Redis calls (fetch, prefetch of the next window, re-read) in a tokio task, on the blocking pool, every second or faster; stops when the source is dropped |
//! | `replay::AsyncReplayCache::insert` on `replay::AsyncRedisReplayCache` | async | one `SET NX PX` (and `WAIT`, if set) on an async connection (one server, the Sentinel primary, or a cluster), awaited, bounded by `tokio::time::timeout` |
//! | `replay::InMemoryReplayCache` | both (`ReplayCache` and `AsyncReplayCache`) | a short lock on the request task; never waits for I/O |
//!
//! - With the refresher, a current window whose value is not fetched yet (Redis slow or down
//!   across a window change) is served from the source's **local fallback** at once, never by
//!   waiting: clients sent to another replica get one `use_dpop_nonce` retry, and the source
//!   moves back to the shared value as soon as the refresher reaches Redis. Nothing is ever
//!   accepted that the source did not fetch or make.
//! - Every replay insert that fails or times out is an error: refuse the proof (fail closed).
//!   The async and the sync Redis caches use the same keys, so sync and async replicas share
//!   one set of entries.
//! - **Sync servers** (threads, no runtime) keep the synchronous pieces:
//!   `RedisNonceSource::build` (its request path makes bounded, rare Redis calls itself; call
//!   `refresh` from a timer thread to keep them off requests) and `replay::RedisReplayCache`.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! use dpop_nonce::redis::RedisNonceSource;
//! use dpop_nonce::replay::{AsyncRedisReplayCache, AsyncReplayCache, ReplayKey};
//! use dpop_nonce::{NonceSource, NonceValidator};
//!
//! let client = redis::Client::open("redis://10.0.0.5:6379")?;
//! let (source, _refresher) = RedisNonceSource::builder(client.clone(), "rs")
//!     .build_with_refresher(&tokio::runtime::Handle::current())?;
//! let replay = AsyncRedisReplayCache::for_source(client, &*source).build()?;
//! let validator = NonceValidator::new(source);
//!
//! // In a handler, after the proof's signature and claims were checked:
//! # let (claim, jkt, jti) = (None::<&str>, "jkt", "jti");
//! let accepted = validator.validate(claim);      // never waits for Redis
//! let fresh = replay.insert(&ReplayKey::new(jkt, jti)?).await; // awaited, bounded
//! # let _ = (accepted, fresh);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "http")]
mod cache_control;
mod clock;
mod ct;
mod error;
mod nonce;
pub mod render;
mod rotation;
mod source;
mod validator;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ConfigError, NonceError, RenderError};
pub use nonce::Nonce;
pub use rotation::Rotation;
pub use source::{InMemoryNonceSource, InMemoryNonceSourceBuilder, NonceCheck, NonceSource};
/// The `time` crate, whose [`Duration`](time::Duration) every interval and lifetime of this
/// crate's API takes.
pub use time;
pub use validator::{Accepted, NonceValidator, RejectReason, Requirement, UseDpopNonce};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
#[cfg(feature = "derived")]
#[cfg_attr(docsrs, doc(cfg(feature = "derived")))]
pub use source::derived;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "proof")]
#[cfg_attr(docsrs, doc(cfg(feature = "proof")))]
pub mod proof;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use source::redis;
#[cfg(feature = "replay")]
#[cfg_attr(docsrs, doc(cfg(feature = "replay")))]
pub mod replay;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

/// The README's code blocks, compiled and run as doctests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "client",
    feature = "derived",
    feature = "redis",
    feature = "tower"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
