//! [`Rejection`]: why a proof (or the token it came with) was refused, and what to answer.

use std::fmt;

use crate::render::{Answer, ErrorDescription};
use crate::{Nonce, RejectReason, UseDpopNonce};

/// What to answer: the OAuth error code, and for a nonce problem the fresh nonce to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// `invalid_dpop_proof`: the proof is malformed, wrongly signed, aimed at another request,
    /// out of its time window, or replayed.
    InvalidDpopProof,
    /// `use_dpop_nonce`: the proof is good but its nonce is missing or not current. Send
    /// `nonce` in the one `DPoP-Nonce` header; the client retries with it.
    UseDpopNonce {
        /// The fresh nonce; never equal to the one the proof carried.
        nonce: Nonce,
    },
    /// `invalid_token`: the access token is not presented as a DPoP token, or it is bound to
    /// another key.
    InvalidToken,
}

impl RejectionKind {
    /// The OAuth error code: `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`.
    pub const fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce { .. } => "use_dpop_nonce",
            Self::InvalidToken => "invalid_token",
        }
    }
}

/// Which check refused the proof. For logs, metrics and tests; the answer depends only on the
/// [`RejectionKind`]. Each reason has a fixed description ([`Reason::description`]) that never
/// contains anything taken from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The request has no `DPoP` header.
    MissingProof,
    /// The request has more than one `DPoP` header.
    MultipleProofs,
    /// The `DPoP` header is longer than [`MAX_PROOF_LEN`](super::MAX_PROOF_LEN).
    ProofTooLarge,
    /// The header value is not a compact JWS: three non-empty base64url parts without padding.
    MalformedJws,
    /// The JOSE header is not base64url of a JSON object.
    MalformedHeader,
    /// The JOSE header or the claims name a member twice.
    DuplicateMember,
    /// The JOSE header or the claims nest deeper than
    /// [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH).
    NestingTooDeep,
    /// `typ` is missing or not exactly `dpop+jwt`.
    WrongTyp,
    /// The header has a `crit` member; no extension is understood.
    UnsupportedCrit,
    /// `alg` is missing, `none`, a MAC, unknown, or not on this verifier's allow-list.
    UnsupportedAlg,
    /// The header has no `jwk` object.
    MissingJwk,
    /// The `jwk` holds private key members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth` or `k`).
    PrivateKeyMember,
    /// The `jwk` is a symmetric key (`kty` `oct`).
    SymmetricKey,
    /// The `jwk` has an unknown `kty` or `crv`.
    UnsupportedKey,
    /// The `jwk` lacks a member its type needs, or a member is malformed.
    InvalidKey,
    /// The `jwk` does not fit `alg` (say an RSA key with `ES256`).
    AlgKeyMismatch,
    /// The RSA modulus has fewer than 2048 bits.
    RsaKeyTooSmall,
    /// The RSA modulus has more than 8192 bits.
    RsaKeyTooLarge,
    /// The signature does not verify with the `jwk`.
    BadSignature,
    /// The claims are not base64url of a JSON object.
    MalformedClaims,
    /// `htm` is missing or differs from the request method.
    HtmMismatch,
    /// `htu` is missing, not an `http(s)` URI, or differs from the request URI after
    /// normalization.
    HtuMismatch,
    /// `iat` is missing or not an integer.
    InvalidIat,
    /// `iat` is further in the past than the verifier's past leeway.
    IatTooOld,
    /// `iat` is further in the future than the verifier's future leeway.
    IatInFuture,
    /// `jti` is missing, not a string, or empty.
    InvalidJti,
    /// `jti` is longer than [`MAX_JTI_LEN`](crate::replay::MAX_JTI_LEN).
    JtiTooLong,
    /// An access token was presented but the proof has no `ath` string.
    MissingAth,
    /// `ath` is not the hash of the presented access token.
    AthMismatch,
    /// The proof's key is not the key the access token is bound to (`cnf.jkt`).
    JktMismatch,
    /// The proof's key is not the one named by the authorization request's `dpop_jkt`
    /// (RFC 9449 §10).
    DpopJktMismatch,
    /// The nonce check refused the proof's `nonce` claim (always [`RejectionKind::UseDpopNonce`]).
    Nonce(RejectReason),
    /// The proof's `jti` was already used with this key.
    Replayed,
    /// The replay cache is full of live entries; the proof is refused (fail closed).
    ReplayCacheFull,
    /// The replay cache could not be reached; the proof is refused (fail closed).
    ReplayCacheUnavailable,
    /// The request has no `Authorization` header.
    MissingAccessToken,
    /// The access token came with the `Bearer` scheme, but it is a DPoP token (RFC 9449 §7.2).
    BearerScheme,
    /// The `Authorization` header is not one `DPoP <token>` value.
    MalformedAuthorization,
}

impl Reason {
    /// A fixed, human-readable `error_description`. It never echoes the request.
    pub const fn description(self) -> &'static str {
        match self {
            Self::MissingProof => "Missing DPoP proof",
            Self::MultipleProofs => "More than one DPoP proof",
            Self::ProofTooLarge => "DPoP proof is too large",
            Self::MalformedJws => "DPoP proof is not a compact JWS",
            Self::MalformedHeader => "DPoP proof header is not a JSON object",
            Self::DuplicateMember => "DPoP proof has a duplicate JSON member",
            Self::NestingTooDeep => "DPoP proof JSON is nested too deeply",
            Self::WrongTyp => "DPoP proof typ must be dpop+jwt",
            Self::UnsupportedCrit => "DPoP proof has unsupported critical header parameters",
            Self::UnsupportedAlg => "DPoP proof alg is not supported",
            Self::MissingJwk => "DPoP proof header has no jwk",
            Self::PrivateKeyMember => "DPoP proof jwk holds private key material",
            Self::SymmetricKey => "DPoP proof jwk is a symmetric key",
            Self::UnsupportedKey => "DPoP proof jwk has an unsupported key type or curve",
            Self::InvalidKey => "DPoP proof jwk is not a valid public key",
            Self::AlgKeyMismatch => "DPoP proof jwk does not fit its alg",
            Self::RsaKeyTooSmall => "DPoP proof RSA key is shorter than 2048 bits",
            Self::RsaKeyTooLarge => "DPoP proof RSA key is longer than 8192 bits",
            Self::BadSignature => "DPoP proof signature does not verify",
            Self::MalformedClaims => "DPoP proof claims are not a JSON object",
            Self::HtmMismatch => "DPoP proof htm does not match the request method",
            Self::HtuMismatch => "DPoP proof htu does not match the request URI",
            Self::InvalidIat => "DPoP proof iat is missing or not an integer",
            Self::IatTooOld => "DPoP proof iat is too old",
            Self::IatInFuture => "DPoP proof iat is in the future",
            Self::InvalidJti => "DPoP proof jti is missing or empty",
            Self::JtiTooLong => "DPoP proof jti is too long",
            Self::MissingAth => "DPoP proof has no ath claim",
            Self::AthMismatch => "DPoP proof ath does not match the access token",
            Self::JktMismatch => "Invalid DPoP key binding",
            Self::DpopJktMismatch => "DPoP proof key does not match dpop_jkt",
            Self::Nonce(RejectReason::Missing) => "DPoP proof requires a nonce",
            Self::Nonce(_) => "DPoP proof nonce is not current",
            Self::Replayed => "DPoP proof was already used",
            Self::ReplayCacheFull | Self::ReplayCacheUnavailable => {
                "DPoP proof could not be checked for replay"
            }
            Self::MissingAccessToken => "Missing access token",
            Self::BearerScheme => "DPoP-bound access token presented with the Bearer scheme",
            Self::MalformedAuthorization => "Malformed Authorization header",
        }
    }

    /// The kind of answer for every reason but [`Reason::Nonce`].
    const fn plain_kind(self) -> RejectionKind {
        match self {
            Self::JktMismatch
            | Self::MissingAccessToken
            | Self::BearerScheme
            | Self::MalformedAuthorization => RejectionKind::InvalidToken,
            _ => RejectionKind::InvalidDpopProof,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A refused proof: the [`RejectionKind`] says what to answer, the [`Reason`] which check
/// failed.
///
/// ```
/// use dpop_nonce::proof::{Reason, Rejection};
///
/// let refused = Rejection::new(Reason::BadSignature);
/// assert_eq!(refused.error_code(), "invalid_dpop_proof");
/// assert_eq!(refused.description(), "DPoP proof signature does not verify");
/// assert!(refused.nonce().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Rejection {
    kind: RejectionKind,
    reason: Reason,
}

impl Rejection {
    /// A rejection for `reason`, of the kind that reason calls for. A nonce problem needs its
    /// fresh nonce: build it from the validator's answer with `From<UseDpopNonce>`;
    /// `Reason::Nonce` given here falls back to `invalid_dpop_proof`, having no nonce to send.
    pub const fn new(reason: Reason) -> Self {
        Self {
            kind: reason.plain_kind(),
            reason,
        }
    }

    /// What to answer.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// Which check failed.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The OAuth error code: `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`.
    pub const fn error_code(&self) -> &'static str {
        self.kind.error_code()
    }

    /// The fixed `error_description` for the reason.
    pub const fn description(&self) -> &'static str {
        self.reason.description()
    }

    /// The fresh nonce to send in the `DPoP-Nonce` header, for `use_dpop_nonce`.
    pub fn nonce(&self) -> Option<&Nonce> {
        match &self.kind {
            RejectionKind::UseDpopNonce { nonce } => Some(nonce),
            _ => None,
        }
    }

    /// Whether the request carried no credentials at all ([`Reason::MissingAccessToken`]): a
    /// resource server answers it with a bare `WWW-Authenticate: DPoP` challenge, without an
    /// error code (RFC 6750 §3).
    pub fn is_missing_credentials(&self) -> bool {
        self.reason == Reason::MissingAccessToken
    }

    /// The answer to send, ready to render for a [`Role`](crate::render::Role):
    ///
    /// | kind | answer | `DPoP-Nonce` | `error_description` |
    /// |---|---|---|---|
    /// | `use_dpop_nonce` | [`Answer::use_dpop_nonce`] | the fresh nonce | the role's text (RFC 9449 Figures 20, 24) |
    /// | `invalid_dpop_proof` | [`Answer::invalid_dpop_proof`] | none | [`Reason::description`] |
    /// | `invalid_token` | [`Answer::invalid_token`] | none | [`Reason::description`] |
    /// | no credentials ([`is_missing_credentials`](Self::is_missing_credentials)) | [`Answer::no_credentials`] | none | none at a resource server |
    ///
    /// The description is always the fixed text of the reason, never anything from the request.
    /// Only `use_dpop_nonce` carries a nonce: the other refusals are not fixed by a retry with
    /// a fresh nonce, and a client reads a nonce on them as a hint to retry. To hand one out
    /// anyway (a server that wants the client's *next* proof to carry one), add
    /// `.with_nonce(verifier.validator().issue())`.
    ///
    /// ```
    /// use dpop_nonce::proof::{Reason, Rejection};
    /// use dpop_nonce::render::{Algs, Answer, Role};
    ///
    /// let parts = Rejection::new(Reason::BadSignature).answer().to_parts(&Role::AuthorizationServer);
    /// assert_eq!(parts.status, 400);
    /// assert_eq!(
    ///     parts.body,
    ///     r#"{"error":"invalid_dpop_proof","error_description":"DPoP proof signature does not verify"}"#
    /// );
    ///
    /// let api = Role::ResourceServer { algs: Algs::new(["ES256"])? };
    /// let parts = Answer::from(Rejection::new(Reason::JktMismatch)).to_parts(&api);
    /// assert_eq!(parts.status, 401);
    /// assert_eq!(
    ///     parts.header("WWW-Authenticate"),
    ///     Some(r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#)
    /// );
    /// # Ok::<(), dpop_nonce::RenderError>(())
    /// ```
    pub fn answer(&self) -> Answer {
        if self.is_missing_credentials() {
            return Answer::no_credentials();
        }
        let answer = match (&self.kind, self.reason) {
            (RejectionKind::UseDpopNonce { nonce }, Reason::Nonce(why)) => {
                return Answer::use_dpop_nonce_parts(why, nonce.clone());
            }
            (RejectionKind::UseDpopNonce { nonce }, _) => {
                // Not built by this crate, but a nonce answer all the same.
                return Answer::use_dpop_nonce_parts(RejectReason::Mismatch, nonce.clone());
            }
            (RejectionKind::InvalidDpopProof, _) => Answer::invalid_dpop_proof(),
            (RejectionKind::InvalidToken, _) => Answer::invalid_token(),
        };
        // Every reason's text is a valid description (a test checks them all); should one
        // ever not be, the kind's default description is sent instead.
        match ErrorDescription::new(self.reason.description()) {
            Ok(description) => answer.with_description(description),
            Err(_) => answer,
        }
    }
}

/// [`Rejection::answer`].
impl From<Rejection> for Answer {
    fn from(rejection: Rejection) -> Self {
        rejection.answer()
    }
}

impl From<&Rejection> for Answer {
    fn from(rejection: &Rejection) -> Self {
        rejection.answer()
    }
}

impl From<UseDpopNonce> for Rejection {
    fn from(refused: UseDpopNonce) -> Self {
        let reason = Reason::Nonce(refused.reason());
        Self {
            kind: RejectionKind::UseDpopNonce {
                nonce: refused.into_nonce(),
            },
            reason,
        }
    }
}

impl From<Reason> for Rejection {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code(), self.description())
    }
}

impl std::error::Error for Rejection {}
