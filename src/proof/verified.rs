//! [`VerifiedProof`]: a proof that passed every check.

use super::alg::Algorithm;
use super::jwk::Thumbprint;
use crate::Nonce;

/// A proof that passed every check, its `jti` now recorded in the replay cache.
///
/// At an authorization server, bind the token to [`jkt`](Self::jkt) (`cnf.jkt`). Whenever
/// [`refresh_nonce`](Self::refresh_nonce) is `Some`, send it in a `DPoP-Nonce` header on the
/// success response (RFC 9449 §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct VerifiedProof {
    pub(crate) jkt: Thumbprint,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    pub(crate) htm: String,
    pub(crate) htu: String,
    pub(crate) alg: Algorithm,
    pub(crate) refresh: Option<Nonce>,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key.
    pub fn jkt(&self) -> &Thumbprint {
        &self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, in seconds since the UNIX epoch.
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// The proof's `htm`, equal to the request method.
    pub fn htm(&self) -> &str {
        &self.htm
    }

    /// The proof's `htu`, as the client wrote it (it matched the request after normalization).
    pub fn htu(&self) -> &str {
        &self.htu
    }

    /// The algorithm the proof was signed with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The nonce to send with the success response, if any (RFC 9449 §8.2).
    pub fn refresh_nonce(&self) -> Option<&Nonce> {
        self.refresh.as_ref()
    }

    /// Takes the refresh nonce out, by value.
    pub fn into_refresh_nonce(self) -> Option<Nonce> {
        self.refresh
    }
}
