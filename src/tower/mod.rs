//! A tower layer that protects a resource server's routes with DPoP (RFC 9449 §7), for axum,
//! tonic, hyper or any `tower` stack.
//!
//! [`DpopLayer`] wraps a service. For every request it:
//!
//! 1. reads the `Authorization: DPoP <token>` header (a request with none gets the bare
//!    challenge, RFC 6750 §3; a token presented as `Bearer` is refused, §7.2);
//! 2. asks your [`TokenBinding`] which key the token is bound to (its `cnf.jkt`): validating the
//!    token, or introspecting it, stays yours;
//! 3. verifies the whole proof with the [`Verifier`](crate::proof::Verifier): signature, `htm`,
//!    `htu`, `iat`, `ath`, the binding, the nonce, and last the replay cache;
//! 4. on success, puts the [`VerifiedProof`](crate::proof::VerifiedProof) into the request's
//!    extensions, calls the inner service, and adds the §8.2 refresh (`DPoP-Nonce` and
//!    `Cache-Control: no-store`) to its response when the client used the previous nonce;
//! 5. on any refusal, answers 401 with `WWW-Authenticate: DPoP error=..., algs="..."` and
//!    exactly one `DPoP-Nonce`, without calling the inner service.
//!
//! The verifier's replay cache is asynchronous ([`AsyncReplayCache`](crate::replay::AsyncReplayCache):
//! the in-memory cache, or [`AsyncRedisReplayCache`](crate::replay::AsyncRedisReplayCache) with
//! the `tokio` feature), so no step blocks the runtime. Build the verifier with a
//! [`public_base_url`](crate::proof::VerifierBuilder::public_base_url): the layer compares `htu`
//! with that base followed by the request's path, never with the `Host` header.
//!
//! # Example
//!
//! A protected axum route:
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Extension, Router, routing::get};
//! use dpop_nonce::proof::{VerifiedProof, Verifier};
//! use dpop_nonce::replay::InMemoryReplayCache;
//! use dpop_nonce::tower::{DpopLayer, TokenBinding};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! /// Your token validation: the `cnf.jkt` of a valid token, `None` otherwise.
//! struct Tokens;
//! impl TokenBinding for Tokens {
//!     async fn bound_jkt(&self, token: &str) -> Option<String> {
//!         (token == "a-valid-token").then(|| "the-token's-cnf.jkt".to_owned())
//!     }
//! }
//!
//! let source = InMemoryNonceSource::new();
//! let replay = InMemoryReplayCache::for_source(&source);
//! let verifier = Verifier::builder_async(NonceValidator::new(source), replay)
//!     .public_base_url("https://api.example.com")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/items", get(|Extension(proof): Extension<VerifiedProof>| async move {
//!         format!("hello, key {}", proof.jkt())
//!     }))
//!     .layer(DpopLayer::new(Arc::new(verifier), Tokens).expose_to_browsers());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod binding;
mod layer;
mod service;

pub use binding::TokenBinding;
pub use layer::DpopLayer;
pub use service::DpopService;
