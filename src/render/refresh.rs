//! The success side (RFC 9449 §8.2): the refresh nonce of an [`Accepted`] check, as headers.

use super::header::{CACHE_CONTROL, DPOP_NONCE, NO_STORE};
use crate::validator::Accepted;

impl Accepted {
    /// The headers to add to the success response: `DPoP-Nonce` with the refresh nonce and
    /// `Cache-Control: no-store` (RFC 9449 §8.2) when there is one, nothing otherwise.
    ///
    /// Add them replacing any header of the same name, so the response carries one
    /// `DPoP-Nonce`. With the `http` feature, `Accepted::insert_refresh` does that on a
    /// `HeaderMap`; with `axum`, put the `Accepted` in the handler's response tuple.
    ///
    /// ```
    /// use dpop_nonce::{InMemoryNonceSource, NonceValidator, Requirement};
    ///
    /// let par = NonceValidator::new(InMemoryNonceSource::new()).with_requirement(Requirement::Optional);
    /// let accepted = par.validate(None).unwrap();
    /// let nonce = accepted.refresh().unwrap().to_string();
    /// assert_eq!(
    ///     accepted.refresh_headers(),
    ///     [("DPoP-Nonce", nonce), ("Cache-Control", "no-store".to_owned())]
    /// );
    /// ```
    pub fn refresh_headers(&self) -> Vec<(&'static str, String)> {
        match self.refresh() {
            Some(nonce) => vec![
                (DPOP_NONCE, nonce.as_str().to_owned()),
                (CACHE_CONTROL, NO_STORE.to_owned()),
            ],
            None => Vec::new(),
        }
    }
}
