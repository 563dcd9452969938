//! Header names, each defined once, as `&'static str` in their usual spelling.
//!
//! HTTP header names are case-insensitive: compare them with `eq_ignore_ascii_case`, as
//! [`ResponseParts::header`](super::ResponseParts::header) does. With the `http` feature, the
//! same names exist as `http::HeaderName` values in `dpop_nonce::http`.
//!
//! ```
//! use dpop_nonce::render::header::DPOP_NONCE;
//!
//! assert!(DPOP_NONCE.eq_ignore_ascii_case("dpop-nonce"));
//! ```

/// `DPoP`: the request header that carries the proof (RFC 9449 §4.1).
pub const DPOP: &str = "DPoP";
/// `DPoP-Nonce`: carries the server's nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: &str = "DPoP-Nonce";
/// `WWW-Authenticate`: carries the resource server's `DPoP` challenge (RFC 9449 §7.1).
pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";
/// `Content-Type`: `application/json` on an authorization server's error body.
pub const CONTENT_TYPE: &str = "Content-Type";
/// `Cache-Control`: answers carrying a nonce must not be cached (RFC 9449 §8.2).
pub const CACHE_CONTROL: &str = "Cache-Control";
/// `Access-Control-Expose-Headers`: lets browser scripts read the nonce and the challenge
/// (RFC 9449 §8, §7.1).
pub const ACCESS_CONTROL_EXPOSE_HEADERS: &str = "Access-Control-Expose-Headers";

/// `no-store`.
pub(crate) const NO_STORE: &str = "no-store";
/// `application/json`.
pub(crate) const APPLICATION_JSON: &str = "application/json";
/// The headers a browser script needs to read, as one `Access-Control-Expose-Headers` value.
pub(crate) const EXPOSED_VALUE: &str = "DPoP-Nonce, WWW-Authenticate";
