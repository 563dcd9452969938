//! [axum](https://docs.rs/axum) integration, through `axum-core` only.
//!
//! - [`NonceRejection`] wraps a [`UseDpopNonce`] together with the role of the server answering
//!   ([`ServerRole`]) and implements `IntoResponse`: 400 with a JSON body for an authorization
//!   server, 401 with a `WWW-Authenticate: DPoP` challenge for a resource server. Make one with
//!   [`UseDpopNonce::for_authorization_server`] or [`UseDpopNonce::for_resource_server`], so a
//!   handler can use `?`.
//! - [`Accepted`] implements `IntoResponseParts`: put it in the tuple a handler returns and the
//!   refresh nonce, if any, goes out as the one `DPoP-Nonce` header with
//!   `Cache-Control: no-store`.
//!
//! ```
//! use axum_core::response::IntoResponse;
//! use dpop_nonce::axum::NonceRejection;
//! use dpop_nonce::response::Algs;
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! // `claim` is the proof's `nonce` claim, taken out by your JOSE verification.
//! fn serve(
//!     validator: &NonceValidator<InMemoryNonceSource>,
//!     algs: &Algs,
//!     claim: Option<&str>,
//! ) -> Result<impl IntoResponse, NonceRejection> {
//!     let accepted = validator
//!         .validate(claim)
//!         .map_err(|refused| refused.for_resource_server(algs))?;
//!     Ok((accepted, "protected data"))
//! }
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let algs = Algs::new(["ES256"])?;
//! let response = serve(&validator, &algs, None).into_response();
//! assert_eq!(response.status(), 401);
//! # Ok::<(), dpop_nonce::RenderError>(())
//! ```

use std::convert::Infallible;
use std::fmt;

use axum_core::body::Body;
use axum_core::response::{IntoResponse, IntoResponseParts, Response};

use crate::http::{expose_dpop_headers, set_dpop_nonce};
use crate::response::{Algs, ErrorDescription, ResponseParts};
use crate::validator::{Accepted, UseDpopNonce};

/// Which server answers, and so which form the `use_dpop_nonce` answer takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerRole {
    /// An authorization server (token, PAR endpoints): 400 with a JSON error body (RFC 9449 §8).
    AuthorizationServer,
    /// A resource server: 401 with a `WWW-Authenticate: DPoP` challenge naming the accepted
    /// algorithms (RFC 9449 §9, §7.1).
    ResourceServer {
        /// The JWS algorithms accepted in proofs, for the challenge's `algs` parameter.
        algs: Algs,
    },
}

/// A refused nonce, ready to be answered by an axum handler: implements `IntoResponse`.
///
/// The response carries exactly one `DPoP-Nonce` header and `Cache-Control: no-store`; see
/// [`UseDpopNonce::authorization_server`] and [`UseDpopNonce::resource_server`] for the exact
/// form.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
///
/// let validator = NonceValidator::new(InMemoryNonceSource::new());
/// let rejection = validator.validate(None).unwrap_err().for_authorization_server();
/// let response = rejection.into_response();
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers().get_all("dpop-nonce").iter().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct NonceRejection {
    refused: UseDpopNonce,
    role: ServerRole,
    description: Option<ErrorDescription>,
    expose: bool,
}

impl NonceRejection {
    /// The answer of `role` to `refused`, with the default error description.
    pub fn new(refused: UseDpopNonce, role: ServerRole) -> Self {
        Self {
            refused,
            role,
            description: None,
            expose: false,
        }
    }

    /// Replaces the default `error_description`.
    pub fn with_description(mut self, description: ErrorDescription) -> Self {
        self.description = Some(description);
        self
    }

    /// Also sends `Access-Control-Expose-Headers: DPoP-Nonce, WWW-Authenticate`, for browser
    /// clients on another origin (RFC 9449 §8, §7.1). A CORS layer that sets the header on every
    /// response does the same job.
    pub fn expose_to_browsers(mut self) -> Self {
        self.expose = true;
        self
    }

    /// The refusal: reason and fresh nonce.
    pub fn use_dpop_nonce(&self) -> &UseDpopNonce {
        &self.refused
    }

    /// Takes the refusal out.
    pub fn into_use_dpop_nonce(self) -> UseDpopNonce {
        self.refused
    }

    /// The role that answers.
    pub fn role(&self) -> &ServerRole {
        &self.role
    }

    /// The answer as plain data, as [`IntoResponse`] will send it (without the CORS header).
    pub fn to_parts(&self) -> ResponseParts {
        match (&self.role, &self.description) {
            (ServerRole::AuthorizationServer, None) => self.refused.authorization_server(),
            (ServerRole::AuthorizationServer, Some(description)) => {
                self.refused.authorization_server_with(description)
            }
            (ServerRole::ResourceServer { algs }, None) => self.refused.resource_server(algs),
            (ServerRole::ResourceServer { algs }, Some(description)) => {
                self.refused.resource_server_with(algs, description)
            }
        }
    }
}

impl IntoResponse for NonceRejection {
    fn into_response(self) -> Response {
        let mut response = self.to_parts().to_http_response::<Body>();
        if self.expose {
            expose_dpop_headers(response.headers_mut());
        }
        response
    }
}

impl fmt::Display for NonceRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.refused, f)
    }
}

impl std::error::Error for NonceRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.refused)
    }
}

impl UseDpopNonce {
    /// Answers as an authorization server (400, JSON body) when returned from an axum handler.
    ///
    /// ```
    /// use dpop_nonce::axum::NonceRejection;
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// fn token(validator: &NonceValidator<InMemoryNonceSource>, claim: Option<&str>)
    ///     -> Result<&'static str, NonceRejection>
    /// {
    ///     validator.validate(claim).map_err(|r| r.for_authorization_server())?;
    ///     Ok("{\"access_token\":\"...\"}")
    /// }
    /// # let validator = NonceValidator::new(InMemoryNonceSource::new());
    /// # assert!(token(&validator, None).is_err());
    /// ```
    pub fn for_authorization_server(self) -> NonceRejection {
        NonceRejection::new(self, ServerRole::AuthorizationServer)
    }

    /// Answers as a resource server (401, `WWW-Authenticate: DPoP ..., algs="..."`) when returned
    /// from an axum handler.
    pub fn for_resource_server(self, algs: &Algs) -> NonceRejection {
        NonceRejection::new(self, ServerRole::ResourceServer { algs: algs.clone() })
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
/// let par = NonceValidator::new(InMemoryNonceSource::new()).requirement(Requirement::Optional);
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
