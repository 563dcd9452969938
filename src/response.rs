//! Rendering the `use_dpop_nonce` answer without any HTTP framework.
//!
//! [`UseDpopNonce::authorization_server`] gives the answer of an authorization server (RFC 9449
//! §8: status 400, a JSON error body), [`UseDpopNonce::resource_server`] the answer of a resource
//! server (§9: status 401 and a `WWW-Authenticate: DPoP` challenge). Both carry exactly one
//! `DPoP-Nonce` header and `Cache-Control: no-store`. The result is plain data
//! ([`ResponseParts`]) that any HTTP stack can copy into its own response type.
//!
//! Every value that ends up in a header or in the body is checked when it is built
//! ([`Nonce`](crate::Nonce), [`Algs`], [`ErrorDescription`]), so no input can inject a header,
//! break out of a quoted string or corrupt the JSON.
//!
//! ```
//! use dpop_nonce::response::{Algs, DPOP_NONCE, WWW_AUTHENTICATE};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let refused = validator.validate(None).unwrap_err();
//!
//! let answer = refused.resource_server(&Algs::new(["ES256", "PS256"])?);
//! assert_eq!(answer.status, 401);
//! assert_eq!(answer.header(DPOP_NONCE), Some(refused.nonce().as_str()));
//! assert!(answer.header(WWW_AUTHENTICATE).unwrap().starts_with("DPoP error=\"use_dpop_nonce\""));
//! # Ok::<(), dpop_nonce::RenderError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::error::RenderError;
use crate::nonce::is_nqchar;
use crate::validator::{RejectReason, UseDpopNonce};

/// `DPoP-Nonce`: carries the server's nonce (RFC 9449 §8).
pub const DPOP_NONCE: &str = "DPoP-Nonce";
/// `WWW-Authenticate`: carries the resource server's `DPoP` challenge (RFC 9449 §7.1, §9).
pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";
/// `Content-Type`.
pub const CONTENT_TYPE: &str = "Content-Type";
/// `Cache-Control`: responses carrying a nonce must not be cached (RFC 9449 §8.2).
pub const CACHE_CONTROL: &str = "Cache-Control";
/// `Access-Control-Expose-Headers`: lets browser clients read the nonce (RFC 9449 §8, §7.1).
pub const ACCESS_CONTROL_EXPOSE_HEADERS: &str = "Access-Control-Expose-Headers";

/// The value of `Access-Control-Expose-Headers` that a server talking to browser clients sends,
/// so that scripts may read the nonce and the challenge.
pub const EXPOSE_HEADERS_VALUE: &str = "DPoP-Nonce, WWW-Authenticate";
/// `application/json`.
pub const APPLICATION_JSON: &str = "application/json";
/// `no-store`.
pub const NO_STORE: &str = "no-store";
/// The OAuth error code both answers carry (RFC 9449 §8, §9).
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// Status code of the authorization server's answer: 400 Bad Request.
pub const AUTHORIZATION_SERVER_STATUS: u16 = 400;
/// Status code of the resource server's answer: 401 Unauthorized.
pub const RESOURCE_SERVER_STATUS: u16 = 401;

/// An HTTP answer as plain data: status, headers in order, body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseParts {
    /// The status code.
    pub status: u16,
    /// Header names and values, in the order they should be sent. Each name appears once.
    pub headers: Vec<(&'static str, String)>,
    /// The body; empty when there is none.
    pub body: String,
}

impl ResponseParts {
    /// The value of header `name` (compared case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The JWS algorithms a resource server accepts in proofs, for the challenge's `algs` parameter
/// (RFC 9449 §7.1). An empty list leaves the parameter out.
///
/// Each name must be 1 or more NQCHARs: that excludes spaces (the separator), `"` and `\`, so
/// the quoted value cannot be broken out of.
///
/// ```
/// use dpop_nonce::response::Algs;
///
/// assert_eq!(Algs::new(["ES256", "PS256"])?.as_str(), "ES256 PS256");
/// assert!(Algs::new(["ES256 PS256"]).is_err());
/// assert!(Algs::none().as_str().is_empty());
/// # Ok::<(), dpop_nonce::RenderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Algs(String);

impl Algs {
    /// Checks and joins the names.
    ///
    /// # Errors
    ///
    /// [`RenderError::InvalidAlg`] naming the first name that is empty or holds a byte outside
    /// NQCHAR.
    pub fn new<I>(names: I) -> Result<Self, RenderError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut joined = String::new();
        for (index, name) in names.into_iter().enumerate() {
            let name = name.as_ref();
            if name.is_empty() || !name.bytes().all(is_nqchar) {
                return Err(RenderError::InvalidAlg { index });
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(name);
        }
        Ok(Self(joined))
    }

    /// No `algs` parameter.
    pub fn none() -> Self {
        Self(String::new())
    }

    /// The space-separated list.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human-readable `error_description`: bytes `%x20-21 / %x23-5B / %x5D-7E` only (RFC 6749
/// §5.2), so it is safe in a JSON string and in a quoted header parameter.
///
/// ```
/// use dpop_nonce::response::ErrorDescription;
///
/// assert!(ErrorDescription::new("Resource server requires nonce in DPoP proof").is_ok());
/// assert!(ErrorDescription::new("say \"hi\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDescription(Cow<'static, str>);

impl ErrorDescription {
    /// Checks and wraps a description.
    ///
    /// # Errors
    ///
    /// [`RenderError::InvalidDescription`] naming the first byte outside the allowed set.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Result<Self, RenderError> {
        let text = text.into();
        match text.bytes().position(|b| !(b == b' ' || is_nqchar(b))) {
            Some(index) => Err(RenderError::InvalidDescription { index }),
            None => Ok(Self(text)),
        }
    }

    /// The default description of the authorization server for `reason`. For
    /// [`RejectReason::Missing`] it is the text of RFC 9449 Figure 20.
    pub const fn authorization_server(reason: RejectReason) -> Self {
        Self(Cow::Borrowed(match reason {
            RejectReason::Missing => "Authorization server requires nonce in DPoP proof",
            RejectReason::Mismatch => {
                "Authorization server does not accept this DPoP proof nonce; use the one in DPoP-Nonce"
            }
            RejectReason::Malformed => {
                "Authorization server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce"
            }
        }))
    }

    /// The default description of the resource server for `reason`. For
    /// [`RejectReason::Missing`] it is the text of RFC 9449 Figure 24.
    pub const fn resource_server(reason: RejectReason) -> Self {
        Self(Cow::Borrowed(match reason {
            RejectReason::Missing => "Resource server requires nonce in DPoP proof",
            RejectReason::Mismatch => {
                "Resource server does not accept this DPoP proof nonce; use the one in DPoP-Nonce"
            }
            RejectReason::Malformed => {
                "Resource server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce"
            }
        }))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UseDpopNonce {
    /// The authorization server's answer (RFC 9449 §8), with the default description for the
    /// reason: status 400, body `{"error":"use_dpop_nonce","error_description":"..."}`, headers
    /// `DPoP-Nonce`, `Content-Type: application/json` and `Cache-Control: no-store`.
    pub fn authorization_server(&self) -> ResponseParts {
        self.authorization_server_with(&ErrorDescription::authorization_server(self.reason()))
    }

    /// The authorization server's answer with a description of the caller's choosing.
    ///
    /// ```
    /// use dpop_nonce::response::{DPOP_NONCE, ErrorDescription};
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
    /// let answer = refused.authorization_server_with(&ErrorDescription::new("Nonce needed")?);
    /// assert_eq!(answer.status, 400);
    /// assert_eq!(answer.body, r#"{"error":"use_dpop_nonce","error_description":"Nonce needed"}"#);
    /// assert_eq!(answer.header(DPOP_NONCE), Some(refused.nonce().as_str()));
    /// # Ok::<(), dpop_nonce::RenderError>(())
    /// ```
    pub fn authorization_server_with(&self, description: &ErrorDescription) -> ResponseParts {
        // Neither the code nor the description can hold `"`, `\` or controls, so no escaping is
        // needed for valid JSON.
        let body = format!(
            r#"{{"error":"{USE_DPOP_NONCE}","error_description":"{}"}}"#,
            description.as_str()
        );
        ResponseParts {
            status: AUTHORIZATION_SERVER_STATUS,
            headers: vec![
                (DPOP_NONCE, self.nonce().as_str().to_owned()),
                (CONTENT_TYPE, APPLICATION_JSON.to_owned()),
                (CACHE_CONTROL, NO_STORE.to_owned()),
            ],
            body,
        }
    }

    /// The resource server's answer (RFC 9449 §9), with the default description for the reason:
    /// status 401, one `WWW-Authenticate: DPoP error="use_dpop_nonce", error_description="...",
    /// algs="..."` challenge (`algs` left out when empty), `DPoP-Nonce` and
    /// `Cache-Control: no-store`; no body.
    pub fn resource_server(&self, algs: &Algs) -> ResponseParts {
        self.resource_server_with(algs, &ErrorDescription::resource_server(self.reason()))
    }

    /// The resource server's answer with a description of the caller's choosing.
    pub fn resource_server_with(
        &self,
        algs: &Algs,
        description: &ErrorDescription,
    ) -> ResponseParts {
        let mut challenge = format!(
            r#"DPoP error="{USE_DPOP_NONCE}", error_description="{}""#,
            description.as_str()
        );
        if !algs.as_str().is_empty() {
            challenge.push_str(&format!(r#", algs="{}""#, algs.as_str()));
        }
        ResponseParts {
            status: RESOURCE_SERVER_STATUS,
            headers: vec![
                (WWW_AUTHENTICATE, challenge),
                (DPOP_NONCE, self.nonce().as_str().to_owned()),
                (CACHE_CONTROL, NO_STORE.to_owned()),
            ],
            body: String::new(),
        }
    }
}
