//! Rendering every DPoP error answer, and the success-side refresh, without any HTTP framework.
//!
//! Two values decide an answer:
//!
//! - an [`Answer`]: *what* to say. [`Answer::use_dpop_nonce`] (also `From<UseDpopNonce>`),
//!   [`Answer::invalid_dpop_proof`], [`Answer::invalid_token`], or [`Answer::no_credentials`]
//!   for a request that carried no DPoP credentials at all;
//! - a [`Role`]: *who* says it. An authorization server answers `400` with a JSON error body
//!   (RFC 6749 §5.2, RFC 9449 §5, §8); a resource server answers `401` with a
//!   `WWW-Authenticate: DPoP` challenge naming the accepted algorithms (RFC 6750 §3,
//!   RFC 9449 §7.1, §9).
//!
//! [`Answer::to_parts`] renders the pair as plain data ([`ResponseParts`]). The `http` feature adds
//! `Answer::to_http_response`, the `axum` feature `Answer::into_axum`; both go through
//! `to_parts`, so every target sends the same bytes.
//!
//! | answer | authorization server | resource server |
//! |---|---|---|
//! | `use_dpop_nonce` | `400` `{"error":"use_dpop_nonce",...}` | `401` `DPoP error="use_dpop_nonce", ...` |
//! | `invalid_dpop_proof` | `400` `{"error":"invalid_dpop_proof",...}` | `401` `DPoP error="invalid_dpop_proof", ...` |
//! | `invalid_token` | `400` `{"error":"invalid_token",...}` | `401` `DPoP error="invalid_token", ...` |
//! | `no_credentials` | `400` `{"error":"invalid_dpop_proof",...}` | `401` `DPoP algs="..."`, no error |
//!
//! Every answer carries `Cache-Control: no-store`, and exactly one `DPoP-Nonce` header when it has
//! a nonce (always for `use_dpop_nonce`; on request for the others). Every value that ends up in a
//! header or in the body is checked when it is built ([`Nonce`](crate::Nonce), [`Algs`],
//! [`ErrorDescription`]), so no input can inject a header, break out of a quoted string or
//! corrupt the JSON.
//!
//! ```
//! use dpop_nonce::render::header::{DPOP_NONCE, WWW_AUTHENTICATE};
//! use dpop_nonce::render::{Algs, Answer, Role};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let refused = validator.validate(None).unwrap_err();
//! let nonce = refused.nonce().clone();
//!
//! let role = Role::ResourceServer { algs: Algs::new(["ES256", "PS256"])? };
//! let answer = Answer::from(refused).to_parts(&role);
//! assert_eq!(answer.status, 401);
//! assert_eq!(answer.header(DPOP_NONCE), Some(nonce.as_str()));
//! assert!(answer.header(WWW_AUTHENTICATE).unwrap().starts_with(r#"DPoP error="use_dpop_nonce""#));
//! # Ok::<(), dpop_nonce::RenderError>(())
//! ```
//!
//! # Header names
//!
//! [`header`] holds each header name once, as a `&'static str`, in its usual spelling. With the
//! `http` feature, `dpop_nonce::http` offers the same names as `http::HeaderName` values (the
//! standard ones re-exported from `http::header`): use those with `http` types, these anywhere
//! else. They name the same headers and a test keeps them equal.

mod answer;
mod description;
pub mod header;
mod parts;
mod refresh;
mod role;

pub use answer::Answer;
#[cfg(feature = "client")]
pub(crate) use answer::ErrorCode;
pub use description::ErrorDescription;
pub use parts::ResponseParts;
pub use role::{Algs, Role};
