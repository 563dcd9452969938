//! [`Answer`]: every DPoP error answer, and its one rendering into [`ResponseParts`].

use std::fmt;

use super::description::ErrorDescription;
use super::header::{
    ACCESS_CONTROL_EXPOSE_HEADERS, APPLICATION_JSON, CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE,
    EXPOSED_VALUE, NO_STORE, WWW_AUTHENTICATE,
};
use super::parts::ResponseParts;
use super::role::Role;
use crate::nonce::Nonce;
use crate::validator::{RejectReason, UseDpopNonce};

/// The OAuth error codes of DPoP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// RFC 9449 §8, §9: retry with the nonce in `DPoP-Nonce`.
    UseDpopNonce,
    /// RFC 9449 §5, §7.1: the proof is missing or invalid.
    InvalidDpopProof,
    /// RFC 6750 §3.1, RFC 9449 §7.1: the access token, or its key binding, is not good.
    InvalidToken,
}

impl ErrorCode {
    /// The code as it goes on the wire.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::InvalidToken => "invalid_token",
        }
    }
}

/// Which answer, with what it needs to pick its default description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    UseDpopNonce(RejectReason),
    InvalidDpopProof,
    InvalidToken,
    NoCredentials,
}

impl Kind {
    /// The error code at `role`. Only a resource server facing a request without credentials
    /// answers without one (RFC 6750 §3.1).
    fn code(self, role: &Role) -> Option<ErrorCode> {
        match (self, role) {
            (Self::UseDpopNonce(_), _) => Some(ErrorCode::UseDpopNonce),
            (Self::InvalidDpopProof, _) => Some(ErrorCode::InvalidDpopProof),
            (Self::InvalidToken, _) => Some(ErrorCode::InvalidToken),
            (Self::NoCredentials, Role::AuthorizationServer) => Some(ErrorCode::InvalidDpopProof),
            (Self::NoCredentials, Role::ResourceServer { .. }) => None,
        }
    }

    /// The description sent when the caller chose none. For a missing nonce they are the texts
    /// of RFC 9449 Figures 20 and 24.
    fn default_description(self, role: &Role) -> &'static str {
        let authorization_server = matches!(role, Role::AuthorizationServer);
        match (self, authorization_server) {
            (Self::UseDpopNonce(RejectReason::Missing), true) => {
                "Authorization server requires nonce in DPoP proof"
            }
            (Self::UseDpopNonce(RejectReason::Mismatch), true) => {
                "Authorization server does not accept this DPoP proof nonce; use the one in DPoP-Nonce"
            }
            (Self::UseDpopNonce(RejectReason::Malformed), true) => {
                "Authorization server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce"
            }
            (Self::UseDpopNonce(RejectReason::Missing), false) => {
                "Resource server requires nonce in DPoP proof"
            }
            (Self::UseDpopNonce(RejectReason::Mismatch), false) => {
                "Resource server does not accept this DPoP proof nonce; use the one in DPoP-Nonce"
            }
            (Self::UseDpopNonce(RejectReason::Malformed), false) => {
                "Resource server found a malformed nonce in DPoP proof; use the one in DPoP-Nonce"
            }
            (Self::InvalidDpopProof, _) => "Invalid DPoP proof",
            (Self::InvalidToken, _) => "Invalid access token",
            (Self::NoCredentials, _) => "DPoP proof required",
        }
    }
}

/// A DPoP error answer: what to say, before knowing which server says it.
///
/// Build one with a constructor, adjust it with the `with_*` methods, then render it for a
/// [`Role`] with [`to_parts`](Answer::to_parts) (or, with the `http` and `axum` features,
/// `to_http_response` and `into_axum`).
///
/// | constructor | use it when | nonce |
/// |---|---|---|
/// | [`use_dpop_nonce`](Answer::use_dpop_nonce), `From<UseDpopNonce>` | the nonce check refused the proof | the fresh one, always |
/// | [`invalid_dpop_proof`](Answer::invalid_dpop_proof) | the proof is malformed, badly signed, mis-targeted, replayed | [`with_nonce`](Answer::with_nonce) |
/// | [`invalid_token`](Answer::invalid_token) | the access token is unknown, expired, or bound to another key | [`with_nonce`](Answer::with_nonce) |
/// | [`no_credentials`](Answer::no_credentials) | the request carried no DPoP credentials | [`with_nonce`](Answer::with_nonce) |
///
/// A stale or missing nonce is always `use_dpop_nonce`, never `invalid_dpop_proof`: a client
/// recovers from the first by retrying, not from the second.
///
/// ```
/// use dpop_nonce::render::{Algs, Answer, ErrorDescription, Role};
///
/// let api = Role::ResourceServer { algs: Algs::new(["ES256"])? };
/// let answer = Answer::invalid_token()
///     .with_description(ErrorDescription::new("Invalid DPoP key binding")?);
/// let parts = answer.to_parts(&api);
/// assert_eq!(parts.status, 401);
/// assert_eq!(
///     parts.header("WWW-Authenticate"),
///     Some(r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#)
/// );
/// # Ok::<(), dpop_nonce::RenderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Answer {
    kind: Kind,
    nonce: Option<Nonce>,
    description: Option<ErrorDescription>,
    expose: bool,
}

impl Answer {
    fn of(kind: Kind) -> Self {
        Self {
            kind,
            nonce: None,
            description: None,
            expose: false,
        }
    }

    /// `use_dpop_nonce` (RFC 9449 §8, §9), carrying the refusal's fresh nonce. The default
    /// description depends on the refusal's reason and on the role.
    ///
    /// ```
    /// use dpop_nonce::render::{Answer, Role};
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
    /// let nonce = refused.nonce().clone();
    /// let parts = Answer::use_dpop_nonce(refused).to_parts(&Role::AuthorizationServer);
    /// assert_eq!(parts.header("DPoP-Nonce"), Some(nonce.as_str()));
    /// assert_eq!(
    ///     parts.body,
    ///     r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#
    /// );
    /// ```
    pub fn use_dpop_nonce(refused: UseDpopNonce) -> Self {
        let kind = Kind::UseDpopNonce(refused.reason());
        Self {
            nonce: Some(refused.into_nonce()),
            ..Self::of(kind)
        }
    }

    /// `use_dpop_nonce` for a refusal already taken apart: its reason and its fresh nonce.
    #[cfg(feature = "proof")]
    pub(crate) fn use_dpop_nonce_parts(reason: RejectReason, nonce: Nonce) -> Self {
        Self {
            nonce: Some(nonce),
            ..Self::of(Kind::UseDpopNonce(reason))
        }
    }

    /// `invalid_dpop_proof` (RFC 9449 §5, §7.1): the proof is malformed, badly signed, made for
    /// another request, too old, or replayed. Default description: `Invalid DPoP proof`.
    ///
    /// Add a fresh nonce with [`with_nonce`](Answer::with_nonce) when the server wants the
    /// client's next proof to carry one.
    pub fn invalid_dpop_proof() -> Self {
        Self::of(Kind::InvalidDpopProof)
    }

    /// `invalid_token` (RFC 6750 §3.1, RFC 9449 §7.1): the access token is unknown or expired,
    /// its `ath` does not match, or it is bound to another key. Default description:
    /// `Invalid access token`.
    ///
    /// It is a resource server's answer; rendered for an authorization server it takes that
    /// role's form like any other (400, JSON body).
    pub fn invalid_token() -> Self {
        Self::of(Kind::InvalidToken)
    }

    /// The request carried no DPoP credentials at all.
    ///
    /// - A resource server sends the bare challenge, `401` with `WWW-Authenticate: DPoP
    ///   algs="..."` (or just `DPoP` without algorithms) and no error code nor description:
    ///   RFC 6750 §3.1 says a request without authentication information gets no error
    ///   information. A description set with [`with_description`](Answer::with_description) is
    ///   not sent.
    /// - An authorization server that requires DPoP answers a token request without a proof
    ///   with `400` `invalid_dpop_proof` (RFC 9449 §4.3, §5), default description
    ///   `DPoP proof required`.
    ///
    /// ```
    /// use dpop_nonce::render::{Algs, Answer, Role};
    ///
    /// let api = Role::ResourceServer { algs: Algs::new(["ES256", "PS256"])? };
    /// let parts = Answer::no_credentials().to_parts(&api);
    /// assert_eq!(parts.status, 401);
    /// assert_eq!(parts.header("WWW-Authenticate"), Some(r#"DPoP algs="ES256 PS256""#));
    ///
    /// let parts = Answer::no_credentials().to_parts(&Role::AuthorizationServer);
    /// assert_eq!(parts.status, 400);
    /// assert!(parts.body.starts_with(r#"{"error":"invalid_dpop_proof""#));
    /// # Ok::<(), dpop_nonce::RenderError>(())
    /// ```
    pub fn no_credentials() -> Self {
        Self::of(Kind::NoCredentials)
    }

    /// Sends `nonce` as the answer's one `DPoP-Nonce` header, replacing the nonce it carried, if
    /// any.
    pub fn with_nonce(mut self, nonce: Nonce) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Replaces the default `error_description`.
    pub fn with_description(mut self, description: ErrorDescription) -> Self {
        self.description = Some(description);
        self
    }

    /// Also sends `Access-Control-Expose-Headers: DPoP-Nonce, WWW-Authenticate`, so that browser
    /// scripts on another origin may read the nonce and the challenge (RFC 9449 §8, §7.1). A
    /// CORS layer that exposes them on every response does the same job.
    pub fn expose_to_browsers(mut self) -> Self {
        self.expose = true;
        self
    }

    /// The nonce the answer sends in `DPoP-Nonce`, if any.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }

    /// Renders the answer as `role` gives it.
    ///
    /// - [`Role::AuthorizationServer`]: status `400`, body
    ///   `{"error":"...","error_description":"..."}`, headers `DPoP-Nonce` (when there is a
    ///   nonce), `Content-Type: application/json`, `Cache-Control: no-store`.
    /// - [`Role::ResourceServer`]: status `401`, headers `WWW-Authenticate: DPoP
    ///   error="...", error_description="...", algs="..."` (`algs` left out when empty; only
    ///   `algs` for [`no_credentials`](Answer::no_credentials)), `DPoP-Nonce` (when there is a
    ///   nonce), `Cache-Control: no-store`; no body.
    ///
    /// Then `Access-Control-Expose-Headers` when asked for with
    /// [`expose_to_browsers`](Answer::expose_to_browsers). Each header name appears once.
    pub fn to_parts(&self, role: &Role) -> ResponseParts {
        let code = self.kind.code(role);
        let description = self.description.as_ref().map_or(
            self.kind.default_description(role),
            ErrorDescription::as_str,
        );
        let mut headers = Vec::with_capacity(5);
        let body = match role {
            Role::AuthorizationServer => {
                // Neither the code nor the description can hold `"`, `\` or controls, so the
                // JSON needs no escaping.
                let code = code.unwrap_or(ErrorCode::InvalidDpopProof).as_str();
                self.push_nonce(&mut headers);
                headers.push((CONTENT_TYPE, APPLICATION_JSON.to_owned()));
                format!(r#"{{"error":"{code}","error_description":"{description}"}}"#)
            }
            Role::ResourceServer { algs } => {
                let mut params = Vec::with_capacity(3);
                if let Some(code) = code {
                    params.push(format!(r#"error="{}""#, code.as_str()));
                    params.push(format!(r#"error_description="{description}""#));
                }
                if !algs.is_empty() {
                    params.push(format!(r#"algs="{}""#, algs.as_str()));
                }
                let challenge = if params.is_empty() {
                    "DPoP".to_owned()
                } else {
                    format!("DPoP {}", params.join(", "))
                };
                headers.push((WWW_AUTHENTICATE, challenge));
                self.push_nonce(&mut headers);
                String::new()
            }
        };
        headers.push((CACHE_CONTROL, NO_STORE.to_owned()));
        if self.expose {
            headers.push((ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_VALUE.to_owned()));
        }
        ResponseParts {
            status: role.status(),
            headers,
            body,
        }
    }

    fn push_nonce(&self, headers: &mut Vec<(&'static str, String)>) {
        if let Some(nonce) = &self.nonce {
            headers.push((DPOP_NONCE, nonce.as_str().to_owned()));
        }
    }
}

impl From<UseDpopNonce> for Answer {
    /// [`Answer::use_dpop_nonce`].
    fn from(refused: UseDpopNonce) -> Self {
        Self::use_dpop_nonce(refused)
    }
}

/// The error code, the refusal's reason for `use_dpop_nonce`, and the description when the caller
/// chose one: `use_dpop_nonce (missing)`, `invalid_token: Invalid DPoP key binding`.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::UseDpopNonce(reason) => write!(f, "use_dpop_nonce ({reason})")?,
            Kind::InvalidDpopProof => f.write_str("invalid_dpop_proof")?,
            Kind::InvalidToken => f.write_str("invalid_token")?,
            Kind::NoCredentials => f.write_str("no DPoP credentials")?,
        }
        match &self.description {
            Some(description) => write!(f, ": {description}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Answer {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Algs;

    /// Every built-in description passes the checks a caller's description must pass.
    #[test]
    fn default_descriptions_are_valid() {
        let kinds = [
            Kind::UseDpopNonce(RejectReason::Missing),
            Kind::UseDpopNonce(RejectReason::Mismatch),
            Kind::UseDpopNonce(RejectReason::Malformed),
            Kind::InvalidDpopProof,
            Kind::InvalidToken,
            Kind::NoCredentials,
        ];
        let roles = [
            Role::AuthorizationServer,
            Role::ResourceServer { algs: Algs::none() },
        ];
        for kind in kinds {
            for role in &roles {
                let text = kind.default_description(role);
                let checked = ErrorDescription::new(text);
                assert_eq!(
                    checked.as_ref().map(ErrorDescription::as_str),
                    Ok(text),
                    "{kind:?} at {role:?}"
                );
            }
        }
    }
}
