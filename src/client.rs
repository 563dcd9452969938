//! The client side of server-provided nonces (RFC 9449 §8, §8.2, §9), on `http` types.
//!
//! A DPoP client must put the server's latest nonce in each proof, and retry once when the server
//! answers `use_dpop_nonce`. This module offers the two pieces:
//!
//! - [`NonceStore`]: the last `DPoP-Nonce` of each [`Origin`], learned from every response
//!   (errors and successes alike) by [`NonceStore::observe`], bounded and thread-safe.
//! - [`check_response`]: reads a response and says whether it is a `use_dpop_nonce` answer to
//!   retry once, as a [`NonceAdvice`]. An authorization server's answer is a 400 whose JSON body
//!   has `"error": "use_dpop_nonce"`; a resource server's is a 401 whose single `DPoP` challenge
//!   (scheme compared case-insensitively) has `error="use_dpop_nonce"`. Either way the new nonce
//!   is the response's one `DPoP-Nonce` header. A server that hands back the very nonce the
//!   client just sent gets no retry, since retrying would loop. [`NonceStore::observe`] does the
//!   same and also remembers the nonce.
//!
//! The module neither sends requests nor builds proofs: bring your HTTP client and JOSE library.
//! Responses are taken as their parts (status, headers, body bytes), which any HTTP client built
//! on the `http` types can hand over.
//!
//! ```
//! use dpop_nonce::client::{NonceAdvice, NonceStore, Origin};
//! use http::{Request, Response};
//!
//! // Stands in for building a proof with `nonce` and sending the request.
//! fn send(request: &Request<()>, nonce: Option<&str>) -> Response<Vec<u8>> {
//!     let mut response = Response::builder().header("DPoP-Nonce", "n-2");
//!     if nonce != Some("n-2") {
//!         response = response
//!             .status(401)
//!             .header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce", algs="ES256""#);
//!     }
//!     response.body(Vec::new()).unwrap()
//! }
//!
//! let store = NonceStore::new();
//! let request = Request::get("https://rs.example.com/resource").body(())?;
//! let origin = Origin::from_uri(request.uri())?;
//! let observe = |response: &Response<Vec<u8>>, sent: Option<&str>| {
//!     store.observe(&origin, response.status(), response.headers(), response.body(), sent)
//! };
//!
//! let mut nonce = store.get(&origin);
//! let sent = nonce.as_ref().map(|n| n.as_str());
//! let mut response = send(&request, sent);
//! if let NonceAdvice::Retry { nonce: fresh } = observe(&response, sent) {
//!     // Retry once, no more.
//!     response = send(&request, Some(fresh.as_str()));
//!     let _ = observe(&response, Some(fresh.as_str()));
//!     nonce = Some(fresh);
//! }
//! assert_eq!(response.status(), 200);
//! assert_eq!(nonce.unwrap(), "n-2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod challenge;
mod origin;
mod store;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

use self::challenge::parse_challenges;
pub use self::origin::{Origin, OriginError};
pub use self::store::NonceStore;
use crate::error::NonceError;
use crate::http::DPOP_NONCE;
use crate::nonce::{Nonce, is_nqchar};
const USE_DPOP_NONCE: &str = crate::render::ErrorCode::UseDpopNonce.as_str();

/// Largest body read as a JSON error. A `use_dpop_nonce` body is a few hundred bytes; a larger
/// one is not taken for such an answer.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What a client should do about a response, as far as nonces go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum NonceAdvice {
    /// The server answered `use_dpop_nonce` with a usable new nonce: send the request again,
    /// once, with a new proof carrying `nonce`.
    Retry {
        /// The nonce for the new proof.
        nonce: Nonce,
    },
    /// Not a `use_dpop_nonce` answer: nothing to retry. (A `DPoP-Nonce` on it is still worth
    /// keeping, which [`NonceStore::observe`] does.)
    NotUseDpopNonce,
    /// A `use_dpop_nonce` answer that hands back the nonce the request already carried: retrying
    /// would loop, so do not.
    SameNonce {
        /// The nonce sent and handed back.
        nonce: Nonce,
    },
    /// A `use_dpop_nonce` answer without exactly one valid `DPoP-Nonce` header: there is no nonce
    /// to retry with.
    UnusableNonce {
        /// What is wrong with the header.
        error: NonceHeaderError,
    },
    /// A 401 with several `DPoP` challenges: it is unclear which one holds, so do not retry.
    AmbiguousChallenge,
}

impl NonceAdvice {
    /// The nonce to retry with, for [`NonceAdvice::Retry`].
    pub fn retry_nonce(&self) -> Option<&Nonce> {
        match self {
            Self::Retry { nonce } => Some(nonce),
            _ => None,
        }
    }

    /// `true` for [`NonceAdvice::Retry`].
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }
}

/// Why a response's `DPoP-Nonce` header gives no nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceHeaderError {
    /// The response has no `DPoP-Nonce` header.
    #[error("the response has no DPoP-Nonce header")]
    Missing,
    /// The response has more than one `DPoP-Nonce` header, which RFC 9449 §8 forbids.
    #[error("the response has {count} DPoP-Nonce headers")]
    Several {
        /// How many.
        count: usize,
    },
    /// The value is not a nonce (`1*NQCHAR`, at most [`Nonce::MAX_LEN`] bytes).
    #[error("the DPoP-Nonce header is not a valid nonce: {0}")]
    Invalid(NonceError),
}

/// The nonce of the response's one `DPoP-Nonce` header: an error when there is no such header,
/// more than one, or a value that is not a valid nonce (checked by [`Nonce::parse`]).
fn read_dpop_nonce(headers: &HeaderMap) -> Result<Nonce, NonceHeaderError> {
    let mut values = headers.get_all(DPOP_NONCE).iter();
    let Some(value) = values.next() else {
        return Err(NonceHeaderError::Missing);
    };
    let extra = values.count();
    if extra > 0 {
        return Err(NonceHeaderError::Several { count: extra + 1 });
    }
    let bytes = value.as_bytes();
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => Nonce::parse(text),
        Err(_) if bytes.len() > Nonce::MAX_LEN => Err(NonceError::TooLong {
            len: bytes.len(),
            max: Nonce::MAX_LEN,
        }),
        // Not UTF-8, so some byte is above 0x7F and thus not an NQCHAR.
        Err(_) => Err(NonceError::InvalidChar {
            index: bytes.iter().position(|&b| !is_nqchar(b)).unwrap_or(0),
        }),
    };
    parsed.map_err(NonceHeaderError::Invalid)
}

/// Says whether a response is a `use_dpop_nonce` answer to retry once, and with which nonce.
///
/// `sent` is the `nonce` claim of the proof the request carried (`None` if it had none). The
/// answer is [`NonceAdvice::Retry`] only when all of these hold:
///
/// - the status is 400 and the body is a JSON object whose `error` is `"use_dpop_nonce"`
///   (RFC 9449 §8), or the status is 401 and the `WWW-Authenticate` headers hold exactly one
///   `DPoP` challenge, whose `error` parameter is `use_dpop_nonce` (§9);
/// - the response has exactly one `DPoP-Nonce` header, holding a valid nonce;
/// - that nonce differs from `sent`.
///
/// Malformed `WWW-Authenticate` values are skipped, and so are values that exceed a cap on the
/// work a server can make the client do: a value longer than 16 KiB (refused before it is read),
/// holding more than 16 challenges, or with a challenge of more than 32 parameters. A challenge
/// that names a parameter twice (compared case-insensitively) is malformed. Reading the headers
/// takes time linear in their length. Bodies over 64 KiB are not read as JSON. No input makes
/// this function panic.
///
/// The response is taken as its parts; for an `http::Response<B>` whose body is bytes, pass
/// `response.status()`, `response.headers()` and `response.body().as_ref()`.
///
/// ```
/// use dpop_nonce::client::{NonceAdvice, check_response};
/// use http::{HeaderMap, StatusCode};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer realm="x", dpop error="use_dpop_nonce""#.parse()?);
/// headers.insert("dpop-nonce", "n-2".parse()?);
///
/// let advice = check_response(StatusCode::UNAUTHORIZED, &headers, b"", Some("n-1"));
/// assert_eq!(advice.retry_nonce().map(|n| n.as_str()), Some("n-2"));
///
/// // The server handed back the nonce just sent: no retry.
/// let advice = check_response(StatusCode::UNAUTHORIZED, &headers, b"", Some("n-2"));
/// assert!(matches!(advice, NonceAdvice::SameNonce { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    sent: Option<&str>,
) -> NonceAdvice {
    let asks_for_nonce = match status {
        StatusCode::BAD_REQUEST => json_error_is_use_dpop_nonce(body),
        StatusCode::UNAUTHORIZED => match dpop_challenge_error(headers) {
            DpopChallenge::One(error) => error.as_deref() == Some(USE_DPOP_NONCE),
            DpopChallenge::None => false,
            DpopChallenge::Several => return NonceAdvice::AmbiguousChallenge,
        },
        _ => false,
    };
    if !asks_for_nonce {
        return NonceAdvice::NotUseDpopNonce;
    }
    match read_dpop_nonce(headers) {
        Err(error) => NonceAdvice::UnusableNonce { error },
        Ok(nonce) if sent.is_some_and(|sent| nonce == *sent) => NonceAdvice::SameNonce { nonce },
        Ok(nonce) => NonceAdvice::Retry { nonce },
    }
}

/// `true` when `body` is a JSON object whose `error` member is the string `use_dpop_nonce`.
fn json_error_is_use_dpop_nonce(body: &[u8]) -> bool {
    if body.len() > MAX_ERROR_BODY {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|json| {
        json.get("error").and_then(serde_json::Value::as_str) == Some(USE_DPOP_NONCE)
    })
}

/// The `DPoP` challenges among the `WWW-Authenticate` headers.
enum DpopChallenge {
    None,
    /// One challenge, with its `error` parameter if any.
    One(Option<String>),
    Several,
}

fn dpop_challenge_error(headers: &HeaderMap) -> DpopChallenge {
    let mut found = DpopChallenge::None;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(challenges) = parse_challenges(value.as_bytes()) else {
            continue;
        };
        for challenge in challenges.iter().filter(|c| c.is_scheme("DPoP")) {
            found = match found {
                DpopChallenge::None => {
                    DpopChallenge::One(challenge.param("error").map(str::to_owned))
                }
                _ => return DpopChallenge::Several,
            };
        }
    }
    found
}
