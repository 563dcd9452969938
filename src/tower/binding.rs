//! [`TokenBinding`]: the one thing the layer asks of the application.

use std::future::Future;
use std::sync::Arc;

/// Which key an access token is bound to: validate the token (a JWT's signature and claims, or
/// an introspection call) and return its `cnf.jkt` (RFC 9449 §6), or `None` when the token is
/// not valid or not DPoP-bound. `None` is answered with `invalid_token`.
///
/// The layer calls it only for a request that presents `Authorization: DPoP <token>`, before it
/// verifies the proof, and compares the returned thumbprint with the proof's key in constant
/// time.
///
/// ```
/// use dpop_nonce::tower::TokenBinding;
///
/// struct Introspection;
///
/// impl TokenBinding for Introspection {
///     async fn bound_jkt(&self, token: &str) -> Option<String> {
///         // Ask the authorization server, check `active` and `token_type`, read `cnf.jkt`.
///         (token == "valid").then(|| "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned())
///     }
/// }
/// ```
pub trait TokenBinding: Send + Sync + 'static {
    /// The `cnf.jkt` of `token`, if the token is valid and DPoP-bound.
    fn bound_jkt(&self, token: &str) -> impl Future<Output = Option<String>> + Send;
}

impl<T: TokenBinding + ?Sized> TokenBinding for Arc<T> {
    fn bound_jkt(&self, token: &str) -> impl Future<Output = Option<String>> + Send {
        (**self).bound_jkt(token)
    }
}
