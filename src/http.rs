//! Conversions into the types of the [`http`](https://docs.rs/http) 1.x crate.
//!
//! - [`Answer::to_http_response`] renders any DPoP error answer for a [`Role`] as an
//!   `http::Response<String>`, with the same bytes as [`Answer::to_parts`].
//! - [`Accepted::insert_refresh`] adds the refresh nonce of a successful check to a
//!   [`HeaderMap`] (use `response.headers_mut()` for a response).
//! - [`set_dpop_nonce`] puts one nonce in a header map, [`expose_dpop_headers`] lets browser
//!   clients read it.
//! - [`DPOP_NONCE`] and [`DPOP`] are the DPoP header names as [`HeaderName`]s; the standard names
//!   the answers use are re-exported from `http::header`. They are the names of
//!   [`render::header`](crate::render::header), typed for `http`.
//!
//! Whatever the caller has already set, a map or response touched by these functions carries
//! **exactly one** `DPoP-Nonce` header (RFC 9449 §8): the header is replaced, never appended.
//!
//! ```
//! use dpop_nonce::http::{DPOP_NONCE, WWW_AUTHENTICATE};
//! use dpop_nonce::render::{Algs, Answer, Role};
//! use dpop_nonce::{InMemoryNonceSource, NonceValidator};
//! use http::StatusCode;
//!
//! let validator = NonceValidator::new(InMemoryNonceSource::new());
//! let refused = validator.validate(None).unwrap_err();
//! let nonce = refused.nonce().clone();
//!
//! let role = Role::ResourceServer { algs: Algs::new(["ES256"])? };
//! let response = Answer::from(refused).to_http_response(&role);
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers().get_all(DPOP_NONCE).iter().count(), 1);
//! assert_eq!(response.headers()[DPOP_NONCE], nonce.as_str());
//! assert!(response.headers()[WWW_AUTHENTICATE].to_str()?.starts_with("DPoP error="));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::nonce::Nonce;
use crate::render::header::{self as names, NO_STORE as NO_STORE_TEXT};
use crate::render::{Answer, Role};
use crate::validator::Accepted;

/// `DPoP-Nonce`: the server's nonce (RFC 9449 §8, §9). The name of
/// [`render::header::DPOP_NONCE`](crate::render::header::DPOP_NONCE), as a `HeaderName`.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// `DPoP`: the request header that carries the proof (RFC 9449 §4.1). The name of
/// [`render::header::DPOP`](crate::render::header::DPOP), as a `HeaderName`.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

pub use http::header::{
    ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};

/// `no-store`, for `Cache-Control` on responses that carry a nonce (RFC 9449 §8.2).
const NO_STORE: HeaderValue = HeaderValue::from_static(NO_STORE_TEXT);

/// The header names [`expose_dpop_headers`] makes readable to browser scripts.
const EXPOSED: [&str; 2] = [names::DPOP_NONCE, names::WWW_AUTHENTICATE];

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
        NO_STORE_TEXT,
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

impl Answer {
    /// The answer as `role` gives it, as an `http::Response`: the status, headers and body of
    /// [`to_parts`](Answer::to_parts). Use `response.map(Into::into)` for another body type.
    ///
    /// ```
    /// use dpop_nonce::http::{CACHE_CONTROL, CONTENT_TYPE, DPOP_NONCE};
    /// use dpop_nonce::render::{Answer, ErrorDescription, Role};
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
    ///
    /// let refused = NonceValidator::new(InMemoryNonceSource::new()).validate(None).unwrap_err();
    /// let nonce = refused.nonce().clone();
    /// let answer = Answer::from(refused).with_description(ErrorDescription::new("Nonce needed")?);
    ///
    /// let response = answer.to_http_response(&Role::AuthorizationServer);
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()[DPOP_NONCE], nonce.as_str());
    /// assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    /// assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    /// assert_eq!(response.body(), r#"{"error":"use_dpop_nonce","error_description":"Nonce needed"}"#);
    /// # Ok::<(), dpop_nonce::RenderError>(())
    /// ```
    pub fn to_http_response(&self, role: &Role) -> Response<String> {
        let parts = self.to_parts(role);
        let mut response = Response::new(parts.body);
        *response.status_mut() =
            StatusCode::from_u16(parts.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in parts.headers {
            // Every name and value the renderer produces is valid; were one not, leaving it out
            // beats a panic.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::try_from(value),
            ) {
                headers.insert(name, value);
            }
        }
        response
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
    /// let par = NonceValidator::new(InMemoryNonceSource::new()).with_requirement(Requirement::Optional);
    /// let accepted = par.validate(None).unwrap();
    ///
    /// let mut response = http::Response::new("{}");
    /// assert!(accepted.insert_refresh(response.headers_mut()));
    /// assert_eq!(response.headers()[DPOP_NONCE], accepted.refresh().unwrap().as_str());
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
}
