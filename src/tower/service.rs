//! [`DpopService`]: the service [`DpopLayer`](super::DpopLayer) wraps around yours.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HeaderMap};
use http::{Request, Response};
use tower_service::Service;

use super::binding::TokenBinding;
use super::layer::Shared;
use crate::http::{DPOP, expose_dpop_headers, set_dpop_nonce};
use crate::nonce::Nonce;
use crate::proof::{ProofRequest, Rejection, dpop_access_token};
use crate::render::Answer;
use crate::replay::AsyncReplayCache;
use crate::{Clock, NonceSource};

/// The service made by [`DpopLayer`](super::DpopLayer): verifies each request, then calls the
/// inner service or answers the refusal itself.
pub struct DpopService<Inner, S, R, C, B> {
    pub(super) inner: Inner,
    pub(super) shared: Arc<Shared<S, R, C, B>>,
}

impl<Inner: Clone, S, R, C, B> Clone for DpopService<Inner, S, R, C, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Inner: fmt::Debug, S, R, C, B> fmt::Debug for DpopService<Inner, S, R, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopService")
            .field("inner", &self.inner)
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

impl<Inner, S, R, C, B, ReqBody, ResBody> Service<Request<ReqBody>>
    for DpopService<Inner, S, R, C, B>
where
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
    S: NonceSource + 'static,
    R: AsyncReplayCache + 'static,
    C: Clock + 'static,
    B: TokenBinding,
{
    type Response = Response<ResBody>;
    type Error = Inner::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's guidance).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            match shared.authorize(&mut request).await {
                Ok(refresh) => {
                    let mut response = inner.call(request).await?;
                    if let Some(nonce) = refresh {
                        set_dpop_nonce(response.headers_mut(), &nonce);
                    }
                    if shared.expose {
                        expose_dpop_headers(response.headers_mut());
                    }
                    Ok(response)
                }
                Err(answer) => Ok(shared.render(answer)),
            }
        })
    }
}

impl<S, R, C, B> Shared<S, R, C, B>
where
    S: NonceSource,
    R: AsyncReplayCache,
    C: Clock,
    B: TokenBinding,
{
    /// Every check of the request. On success the verified proof is in the request's
    /// extensions, and the nonce to send back (RFC 9449 §8.2) is returned.
    async fn authorize<Body>(&self, request: &mut Request<Body>) -> Result<Option<Nonce>, Answer> {
        let token = access_token(request.headers()).map_err(|refused| self.refusal(refused))?;
        let Some(jkt) = self.binding.bound_jkt(&token).await else {
            return Err(self.with_nonce(Answer::invalid_token()));
        };
        let method = request.method().as_str().to_owned();
        let target = request.uri().to_string();
        let headers = request.headers();
        let proof = ProofRequest::new(&method, &target, headers.get_all(DPOP).iter())
            .access_token(&token, &jkt);
        let verified = self
            .verifier
            .verify_async(&proof)
            .await
            .map_err(|refused| self.refusal(refused))?;
        let refresh = verified.refresh_nonce().cloned();
        request.extensions_mut().insert(verified);
        Ok(refresh)
    }

    /// The answer to a refusal, with a nonce.
    fn refusal(&self, refused: Rejection) -> Answer {
        self.with_nonce(Answer::from(refused))
    }

    /// Every answer of the layer carries exactly one `DPoP-Nonce`: the fresh one of a
    /// `use_dpop_nonce`, or the current one, so that the client's next proof can carry it.
    fn with_nonce(&self, answer: Answer) -> Answer {
        if answer.nonce().is_some() {
            answer
        } else {
            answer.with_nonce(self.verifier.validator().issue())
        }
    }

    /// `answer` as this resource server gives it.
    fn render<ResBody: From<String>>(&self, answer: Answer) -> Response<ResBody> {
        let answer = if self.expose {
            answer.expose_to_browsers()
        } else {
            answer
        };
        answer.to_http_response(&self.role).map(ResBody::from)
    }
}

/// The token of `Authorization: DPoP <token>`, owned so that it outlives the header map.
fn access_token(headers: &HeaderMap) -> Result<String, Rejection> {
    dpop_access_token(headers.get_all(AUTHORIZATION).iter()).map(str::to_owned)
}
