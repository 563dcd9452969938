//! [`DpopLayer`]: wraps a service with [`DpopService`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::DpopService;
use crate::proof::Verifier;
use crate::render::Role;

/// A [`tower_layer::Layer`] that verifies the DPoP proof and the token binding of every request
/// before the wrapped service sees it; see the [module documentation](super).
pub struct DpopLayer<S, R, C, B> {
    verifier: Arc<Verifier<S, R, C>>,
    binding: Arc<B>,
    role: Role,
    expose: bool,
}

/// What the services of a layer share.
pub(super) struct Shared<S, R, C, B> {
    pub(super) verifier: Arc<Verifier<S, R, C>>,
    pub(super) binding: Arc<B>,
    pub(super) role: Role,
    pub(super) expose: bool,
}

impl<S, R, C, B> DpopLayer<S, R, C, B>
where
    S: crate::NonceSource,
    C: crate::Clock,
{
    /// A layer that verifies proofs with `verifier` and learns tokens' bindings from `binding`.
    /// Its answers name the verifier's algorithms in `algs`.
    pub fn new(verifier: Arc<Verifier<S, R, C>>, binding: B) -> Self {
        let role = Role::ResourceServer {
            algs: verifier.algs(),
        };
        Self {
            verifier,
            binding: Arc::new(binding),
            role,
            expose: false,
        }
    }
}

impl<S, R, C, B> DpopLayer<S, R, C, B> {
    /// Adds `Access-Control-Expose-Headers: DPoP-Nonce, WWW-Authenticate` to every answer and
    /// every response, so that browser scripts may read them (RFC 9449 §8, §7.1).
    pub fn expose_to_browsers(mut self) -> Self {
        self.expose = true;
        self
    }
}

impl<S, R, C, B> Clone for DpopLayer<S, R, C, B> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            binding: Arc::clone(&self.binding),
            role: self.role.clone(),
            expose: self.expose,
        }
    }
}

impl<S, R, C, B> fmt::Debug for DpopLayer<S, R, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopLayer")
            .field("role", &self.role)
            .field("expose_to_browsers", &self.expose)
            .finish_non_exhaustive()
    }
}

impl<Inner, S, R, C, B> Layer<Inner> for DpopLayer<S, R, C, B> {
    type Service = DpopService<Inner, S, R, C, B>;

    fn layer(&self, inner: Inner) -> Self::Service {
        DpopService {
            inner,
            shared: Arc::new(Shared {
                verifier: Arc::clone(&self.verifier),
                binding: Arc::clone(&self.binding),
                role: self.role.clone(),
                expose: self.expose,
            }),
        }
    }
}
