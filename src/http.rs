//! Conversions into the types of the [`http`](https://docs.rs/http) 1.x crate.
//!
//! - [`UseDpopNonce::authorization_server_response`] and
//!   [`UseDpopNonce::resource_server_response`] turn a refusal into an `http::Response<String>`
//!   (400 with a JSON body, or 401 with a `WWW-Authenticate: DPoP` challenge). Both are built from
//!   the framework-free rendering in [`response`](crate::response), through
//!   [`ResponseParts::to_http_response`].
//! - [`Accepted::insert_refresh`] and [`Accepted::with_refresh`] add the refresh nonce of a
//!   successful check to a [`HeaderMap`] or a [`Response`].
//! - [`set_dpop_nonce`] puts one nonce in a header map, [`expose_dpop_headers`] lets browser
//!   clients read it.
//!
//! Whatever the caller has already set, a map or response touched by these functions carries
//! **exactly one** `DPoP-Nonce` header (RFC 9449 §8): the header is replaced, never appended.
//!
//! ```
//! use dpop_nonce::http::DPOP_NONCE;
//! use dpop_nonce::response::Algs;
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//! use http::StatusCode;
//! use http::header::WWW_AUTHENTICATE;
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let refused = validator.validate(None).unwrap_err();
//!
//! let response = refused.resource_server_response(&Algs::new(["ES256"])?);
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers().get_all(DPOP_NONCE).iter().count(), 1);
//! assert_eq!(response.headers()[DPOP_NONCE], refused.nonce().as_str());
//! assert!(response.headers()[WWW_AUTHENTICATE].to_str()?.starts_with("DPoP error="));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::nonce::Nonce;
use crate::response::{self as render, Algs, ResponseParts};
use crate::validator::{Accepted, UseDpopNonce};

/// `DPoP-Nonce`: the server's nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// `DPoP`: the request header that carries the proof (RFC 9449 §4.1).
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

pub use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, WWW_AUTHENTICATE};

/// `no-store`, for `Cache-Control` on responses that carry a nonce (RFC 9449 §8.2).
const NO_STORE: HeaderValue = HeaderValue::from_static(render::NO_STORE);

/// The header names [`expose_dpop_headers`] makes readable to browser scripts.
const EXPOSED: [&str; 2] = [render::DPOP_NONCE, render::WWW_AUTHENTICATE];

/// A header value for `nonce`. Every NQCHAR is a visible ASCII byte, which `HeaderValue`
/// accepts, so this returns `None` only if that invariant were broken.
fn nonce_value(nonce: &Nonce) -> Option<HeaderValue> {
    HeaderValue::from_bytes(nonce.as_bytes()).ok()
}

/// Sets `DPoP-Nonce: {nonce}` in `headers`, replacing every `DPoP-Nonce` already there, and makes
/// the response uncacheable (RFC 9449 §8.2): unless the `Cache-Control` headers already hold the
/// `no-store` directive, they are all replaced by one `Cache-Control: no-store`.
///
/// The `Cache-Control` values are read as a list of directives (RFC 9111 §5.2): a `no-store`
/// inside a quoted string, as in `no-cache="Set-Cookie, no-store"`, is not the directive, and
/// names compare case-insensitively. Only a bare `no-store` counts: `no-store=...` does not, and
/// a value that does not follow the grammar is taken as lacking `no-store`, so it is replaced.
///
/// ```
/// use dpop_nonce::Nonce;
/// use dpop_nonce::http::{DPOP_NONCE, set_dpop_nonce};
/// use http::HeaderMap;
/// use http::header::CACHE_CONTROL;
///
/// let mut headers = HeaderMap::new();
/// headers.append(DPOP_NONCE, "stale-1".parse()?);
/// headers.append(DPOP_NONCE, "stale-2".parse()?);
/// headers.insert(CACHE_CONTROL, "max-age=60".parse()?);
///
/// set_dpop_nonce(&mut headers, &Nonce::parse("fresh")?);
/// assert_eq!(headers.get_all(DPOP_NONCE).iter().collect::<Vec<_>>(), ["fresh"]);
/// assert_eq!(headers[CACHE_CONTROL], "no-store");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn set_dpop_nonce(headers: &mut HeaderMap, nonce: &Nonce) {
    match nonce_value(nonce) {
        Some(value) => {
            headers.insert(DPOP_NONCE, value);
        }
        // Unreachable for a valid `Nonce`; leaving no nonce beats leaving a stale one.
        None => {
            headers.remove(DPOP_NONCE);
        }
    }
    if !has_no_store(headers) {
        headers.insert(header::CACHE_CONTROL, NO_STORE);
    }
}

/// `true` when the `Cache-Control` values, read as one list of directives, hold `no-store`
/// without an argument; `false` when any of them cannot be parsed.
fn has_no_store(headers: &HeaderMap) -> bool {
    crate::cache_control::has_directive(
        headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .map(HeaderValue::as_bytes),
        render::NO_STORE,
    )
}

/// Adds `DPoP-Nonce` and `WWW-Authenticate` to `Access-Control-Expose-Headers`, so that browser
/// scripts may read the nonce and the challenge (RFC 9449 §8, §7.1).
///
/// Names already listed (compared case-insensitively) are not repeated. Existing values are
/// merged into a single comma-separated value; a value that is not visible ASCII is left as it
/// is, and the missing names then go in a header of their own.
///
/// ```
/// use dpop_nonce::http::{ACCESS_CONTROL_EXPOSE_HEADERS, expose_dpop_headers};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, "X-Request-Id, dpop-nonce".parse()?);
/// expose_dpop_headers(&mut headers);
/// assert_eq!(
///     headers[ACCESS_CONTROL_EXPOSE_HEADERS],
///     "X-Request-Id, dpop-nonce, WWW-Authenticate"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn expose_dpop_headers(headers: &mut HeaderMap) {
    let mut names: Vec<&str> = Vec::new();
    let mut all_text = true;
    for value in headers.get_all(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        match value.to_str() {
            Ok(text) => names.extend(text.split(',').map(str::trim).filter(|n| !n.is_empty())),
            Err(_) => all_text = false,
        }
    }
    let missing: Vec<&str> = EXPOSED
        .into_iter()
        .filter(|wanted| !names.iter().any(|n| n.eq_ignore_ascii_case(wanted)))
        .collect();
    if missing.is_empty() {
        return;
    }
    if all_text {
        names.extend(&missing);
        if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
            return;
        }
    }
    if let Ok(value) = HeaderValue::from_str(&missing.join(", ")) {
        headers.append(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
    }
}

impl ResponseParts {
    /// Copies the headers into `headers`, each one replacing any value already set under its
    /// name (so `DPoP-Nonce` stays a single header). Headers that `http` cannot represent are
    /// skipped; the renderers of this crate never produce one.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
    }

    /// Builds an `http::Response` with this status, these headers and this body, converted into
    /// any body type that can be made from a `String` (`String`, `Vec<u8>`, `Bytes`, axum's
    /// `Body`, …).
    ///
    /// ```
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    /// use dpop_nonce::response::ErrorDescription;
    ///
    /// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
    /// let parts = refused.authorization_server_with(&ErrorDescription::new("Nonce needed")?);
    /// let response: http::Response<Vec<u8>> = parts.to_http_response();
    /// assert_eq!(response.status(), 400);
    /// # Ok::<(), dpop_nonce::RenderError>(())
    /// ```
    pub fn to_http_response<B: From<String>>(&self) -> Response<B> {
        build(self, B::from(self.body.clone()))
    }
}

impl From<ResponseParts> for Response<String> {
    fn from(mut parts: ResponseParts) -> Self {
        let body = std::mem::take(&mut parts.body);
        build(&parts, body)
    }
}

/// A response with the status and headers of `parts`, and `body`.
fn build<B>(parts: &ResponseParts, body: B) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(parts.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    parts.write_headers(response.headers_mut());
    response
}

impl UseDpopNonce {
    /// The authorization server's answer (RFC 9449 §8, Figure 20) as an `http::Response`: 400,
    /// `{"error":"use_dpop_nonce","error_description":"..."}`, one `DPoP-Nonce`,
    /// `Content-Type: application/json`, `Cache-Control: no-store`.
    ///
    /// For a description of your own, convert
    /// [`authorization_server_with`](UseDpopNonce::authorization_server_with):
    /// `http::Response::from(refused.authorization_server_with(&description))`.
    ///
    /// ```
    /// use dpop_nonce::http::DPOP_NONCE;
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
    /// let response = refused.authorization_server_response();
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()[DPOP_NONCE], refused.nonce().as_str());
    /// assert!(response.body().contains(r#""error":"use_dpop_nonce""#));
    /// ```
    pub fn authorization_server_response(&self) -> Response<String> {
        self.authorization_server().into()
    }

    /// The resource server's answer (RFC 9449 §9, Figure 24) as an `http::Response`: 401, one
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce", ...` challenge naming `algs` (left out
    /// when empty), one `DPoP-Nonce`, `Cache-Control: no-store`, empty body.
    ///
    /// For a description of your own, convert
    /// [`resource_server_with`](UseDpopNonce::resource_server_with).
    pub fn resource_server_response(&self, algs: &Algs) -> Response<String> {
        self.resource_server(algs).into()
    }
}

impl Accepted {
    /// When there is a refresh nonce, sets it as the one `DPoP-Nonce` of `headers` (replacing any
    /// already there) with `Cache-Control: no-store`; see [`set_dpop_nonce`]. Returns `true` when
    /// a nonce was set. Without a refresh nonce, `headers` is left alone.
    ///
    /// ```
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator, Requirement};
    /// use dpop_nonce::http::DPOP_NONCE;
    ///
    /// let par = NonceValidator::new(InMemoryNonceSource::new()).requirement(Requirement::Optional);
    /// let accepted = par.validate(None).unwrap();
    ///
    /// let mut headers = http::HeaderMap::new();
    /// assert!(accepted.insert_refresh(&mut headers));
    /// assert_eq!(headers[DPOP_NONCE], accepted.refresh().unwrap().as_str());
    /// ```
    pub fn insert_refresh(&self, headers: &mut HeaderMap) -> bool {
        match self.refresh() {
            Some(nonce) => {
                set_dpop_nonce(headers, nonce);
                true
            }
            None => false,
        }
    }

    /// `response` with the refresh nonce added, as [`insert_refresh`](Accepted::insert_refresh)
    /// does.
    pub fn with_refresh<B>(&self, mut response: Response<B>) -> Response<B> {
        self.insert_refresh(response.headers_mut());
        response
    }
}
