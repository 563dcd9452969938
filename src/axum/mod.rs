//! [axum](https://docs.rs/axum) integration, through `axum-core` only.
//!
//! - [`Answer::into_axum`] pairs an [`Answer`] with the [`Role`] that gives it; the resulting
//!   [`Reply`] implements `IntoResponse` with the bytes of [`Answer::to_parts`]. Return it as the
//!   error of a handler, so the handler can use `?`.
//! - [`Accepted`] implements `IntoResponseParts`: put it in the tuple a handler returns and the
//!   refresh nonce, if any, goes out as the one `DPoP-Nonce` header with
//!   `Cache-Control: no-store`.
//!
//! ```
//! use axum_core::response::IntoResponse;
//! use dpop_nonce::axum::Reply;
//! use dpop_nonce::render::{Algs, Answer, Role};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! // `claim` is the proof's `nonce` claim, taken out by your JOSE verification.
//! fn serve(
//!     validator: &NonceValidator<InMemoryNonceSource>,
//!     role: &Role,
//!     claim: Option<&str>,
//! ) -> Result<impl IntoResponse, Reply> {
//!     let accepted = validator
//!         .validate(claim)
//!         .map_err(|refused| Answer::from(refused).into_axum(role.clone()))?;
//!     Ok((accepted, "protected data"))
//! }
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let role = Role::ResourceServer { algs: Algs::new(["ES256"])? };
//! let response = serve(&validator, &role, None).into_response();
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers().get_all("dpop-nonce").iter().count(), 1);
//! # Ok::<(), dpop_nonce::RenderError>(())
//! ```

use std::convert::Infallible;
use std::fmt;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, IntoResponseParts, Response};

use crate::http::set_dpop_nonce;
use crate::render::{Answer, Role};
use crate::validator::Accepted;

#[cfg(feature = "proof")]
mod extract;

#[cfg(feature = "proof")]
#[cfg_attr(docsrs, doc(cfg(feature = "proof")))]
pub use extract::TokenEndpointProof;

/// An [`Answer`] with the [`Role`] that gives it: implements `IntoResponse`. Make one with
/// [`Answer::into_axum`].
///
/// ```
/// use axum_core::response::IntoResponse;
/// use dpop_nonce::render::{Answer, Role};
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
///
/// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
/// let reply = Answer::from(refused).into_axum(Role::AuthorizationServer);
/// assert_eq!(reply.to_string(), "use_dpop_nonce (missing)");
///
/// let response = reply.into_response();
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Reply {
    answer: Answer,
    role: Role,
}

impl Reply {
    /// The answer.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// The role that gives it.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Takes the answer and the role out.
    pub fn into_inner(self) -> (Answer, Role) {
        (self.answer, self.role)
    }
}

impl Answer {
    /// This answer as `role` gives it, ready to be returned from an axum handler.
    ///
    /// ```
    /// use dpop_nonce::axum::Reply;
    /// use dpop_nonce::render::{Answer, Role};
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// fn token(validator: &NonceValidator<InMemoryNonceSource>, claim: Option<&str>)
    ///     -> Result<&'static str, Reply>
    /// {
    ///     validator
    ///         .validate(claim)
    ///         .map_err(|refused| Answer::from(refused).into_axum(Role::AuthorizationServer))?;
    ///     Ok("{\"access_token\":\"...\"}")
    /// }
    /// # let validator = NonceValidator::new(InMemoryNonceSource::new());
    /// # assert!(token(&validator, None).is_err());
    /// ```
    pub fn into_axum(self, role: Role) -> Reply {
        Reply { answer: self, role }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        self.answer.to_http_response(&self.role).map(Body::from)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.answer, f)
    }
}

impl std::error::Error for Reply {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.answer)
    }
}

/// Adds the refresh nonce, if any, as the one `DPoP-Nonce` header of the response (replacing any
/// set before it), with `Cache-Control: no-store` (RFC 9449 §8.2). Without a refresh nonce the
/// response is left alone.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator, Requirement};
///
/// let par = NonceValidator::new(InMemoryNonceSource::new()).with_requirement(Requirement::Optional);
/// let accepted = par.validate(None).unwrap();
/// let nonce = accepted.refresh().unwrap().clone();
///
/// let response = (accepted, "ok").into_response();
/// assert_eq!(response.headers()["dpop-nonce"], nonce.as_str());
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
impl IntoResponseParts for Accepted {
    type Error = Infallible;

    fn into_response_parts(
        self,
        mut res: axum_core::response::ResponseParts,
    ) -> Result<axum_core::response::ResponseParts, Self::Error> {
        if let Some(nonce) = self.refresh() {
            set_dpop_nonce(res.headers_mut(), nonce);
        }
        Ok(res)
    }
}

/// The refresh nonce of a verified proof, if any, as the one `DPoP-Nonce` header with
/// `Cache-Control: no-store` (RFC 9449 §8.2): put the [`VerifiedProof`] in the tuple a handler
/// returns, once its thumbprint has been used.
///
/// [`VerifiedProof`]: crate::proof::VerifiedProof
#[cfg(feature = "proof")]
#[cfg_attr(docsrs, doc(cfg(feature = "proof")))]
impl IntoResponseParts for crate::proof::VerifiedProof {
    type Error = Infallible;

    fn into_response_parts(
        self,
        mut res: axum_core::response::ResponseParts,
    ) -> Result<axum_core::response::ResponseParts, Self::Error> {
        if let Some(nonce) = self.refresh_nonce() {
            set_dpop_nonce(res.headers_mut(), nonce);
        }
        Ok(res)
    }
}
