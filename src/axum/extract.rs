//! [`TokenEndpointProof`]: an extractor that verifies the DPoP proof of a token request.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use super::Reply;
use crate::http::DPOP;
use crate::proof::{ProofRequest, VerifiedProof, Verifier};
use crate::render::Role;
use crate::replay::AsyncReplayCache;
use crate::{Clock, NonceSource, SystemClock};

/// The verified DPoP proof of a request to an authorization server's token endpoint (RFC 9449
/// §5), extracted in an axum handler: the handler binds the token it issues to
/// [`jkt`](VerifiedProof::jkt) (`cnf.jkt`, and `token_type` `DPoP`).
///
/// The router's state provides the endpoint's verifier: `Arc<Verifier<S, R, C>>` must be
/// [`FromRef`] of the state (axum's `#[derive(FromRef)]` on a state struct, or the `Arc` as the
/// whole state). The verifier's replay cache is an
/// [`AsyncReplayCache`](crate::replay::AsyncReplayCache), so extraction never blocks the
/// runtime. A refused proof is answered as an authorization server answers: 400 with a JSON
/// body, `use_dpop_nonce` and one `DPoP-Nonce` when the nonce is missing or stale.
///
/// An authorization-code grant whose authorization request carried `dpop_jkt` (RFC 9449 §10)
/// is the handler's to check, once it has looked the code up:
/// `proof.jkt().matches(&stored_dpop_jkt)`.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::post};
/// use dpop_nonce::axum::TokenEndpointProof;
/// use dpop_nonce::proof::Verifier;
/// use dpop_nonce::replay::InMemoryReplayCache;
/// use dpop_nonce::{InMemoryNonceSource, NonceValidator};
///
/// type TokenVerifier = Verifier<InMemoryNonceSource, InMemoryReplayCache>;
///
/// async fn token(proof: TokenEndpointProof<InMemoryNonceSource, InMemoryReplayCache>) -> String {
///     // Issue an access token bound to this key; `proof` in a response tuple would also send
///     // the refresh nonce, if any.
///     format!("{{\"token_type\":\"DPoP\",\"cnf\":{{\"jkt\":\"{}\"}}}}", proof.jkt())
/// }
///
/// let source = InMemoryNonceSource::new();
/// let replay = InMemoryReplayCache::for_source(&source);
/// let verifier: TokenVerifier = Verifier::builder_async(NonceValidator::new(source), replay)
///     .public_base_url("https://as.example.com")
///     .build()?;
/// let app: Router = Router::new()
///     .route("/token", post(token))
///     .with_state(Arc::new(verifier));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TokenEndpointProof<S, R, C = SystemClock> {
    proof: VerifiedProof,
    verifier: VerifierType<S, R, C>,
}

/// Names the verifier type the proof was checked with, without holding one (and without
/// affecting `Send`, `Sync` or variance).
type VerifierType<S, R, C> = PhantomData<fn() -> Verifier<S, R, C>>;

impl<S, R, C> TokenEndpointProof<S, R, C> {
    /// The verified proof.
    pub fn into_inner(self) -> VerifiedProof {
        self.proof
    }
}

impl<S, R, C> Deref for TokenEndpointProof<S, R, C> {
    type Target = VerifiedProof;

    fn deref(&self) -> &VerifiedProof {
        &self.proof
    }
}

impl<S, R, C> fmt::Debug for TokenEndpointProof<S, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenEndpointProof")
            .field(&self.proof)
            .finish()
    }
}

impl<State, S, R, C> FromRequestParts<State> for TokenEndpointProof<S, R, C>
where
    Arc<Verifier<S, R, C>>: FromRef<State>,
    State: Send + Sync,
    S: NonceSource + 'static,
    R: AsyncReplayCache + 'static,
    C: Clock + 'static,
{
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Reply> {
        let verifier = Arc::<Verifier<S, R, C>>::from_ref(state);
        let target = parts.uri.to_string();
        let request = ProofRequest::new(
            parts.method.as_str(),
            &target,
            parts.headers.get_all(DPOP).iter(),
        );
        match verifier.verify_async(&request).await {
            Ok(proof) => Ok(Self {
                proof,
                verifier: PhantomData,
            }),
            Err(refused) => Err(refused.answer().into_axum(Role::AuthorizationServer)),
        }
    }
}
