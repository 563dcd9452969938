//! [`ProofRequest`]: what the verifier needs to know about one HTTP request.

/// The `DPoP` header values of a request, reduced to what the first check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpopHeader<'a> {
    Missing,
    One(&'a [u8]),
    Multiple,
}

impl<'a> DpopHeader<'a> {
    /// Counts the values, stopping at the second one.
    pub(crate) fn from_values<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a V>,
        V: AsRef<[u8]> + ?Sized + 'a,
    {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => Self::Missing,
            (Some(one), None) => Self::One(one.as_ref()),
            (Some(_), Some(_)) => Self::Multiple,
        }
    }
}

/// One request as the verifier sees it: method, target URI, every `DPoP` header value, and
/// (at a resource server) the access token and the key it is bound to, or (at an
/// authorization server) the authorization request's `dpop_jkt`.
///
/// The `DPoP` values are given as an iterator over references to anything byte-like, so that
/// `&[&str]`, `[proof.as_bytes()]` or an `http::HeaderMap`'s `get_all("dpop")` all fit.
/// Pass *every* value: a request with two `DPoP` headers must be refused, and only the caller
/// can see them.
///
/// ```
/// use dpop_nonce::proof::ProofRequest;
///
/// # let (proof, token, cnf_jkt) = ("a.b.c", "token", "jkt");
/// // Token endpoint (authorization server).
/// let at_token_endpoint = ProofRequest::new("POST", "https://as.example.com/token", [proof]);
///
/// // Resource server: the token and its `cnf.jkt`, from introspection or the JWT.
/// let dpop_values: Vec<&[u8]> = vec![proof.as_bytes()];
/// let at_resource = ProofRequest::new("GET", "https://rs.example.com/me?x=1", &dpop_values)
///     .access_token(token, cnf_jkt);
/// # let _ = (at_token_endpoint, at_resource);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: &'a str,
    pub(crate) dpop: DpopHeader<'a>,
    pub(crate) access_token: Option<(&'a str, &'a str)>,
    pub(crate) dpop_jkt: Option<&'a str>,
}

impl<'a> ProofRequest<'a> {
    /// A request with `method` (as sent, for example `POST`), target `uri`, and all its `DPoP`
    /// header values.
    ///
    /// `uri` is the absolute URI of the request; with a configured
    /// [public base URL](super::VerifierBuilder::public_base_url), an origin-form target such
    /// as `/token?x=1` works as well (only its path is then used).
    pub fn new<I, V>(method: &'a str, uri: &'a str, dpop_values: I) -> Self
    where
        I: IntoIterator<Item = &'a V>,
        V: AsRef<[u8]> + ?Sized + 'a,
    {
        Self {
            method,
            uri,
            dpop: DpopHeader::from_values(dpop_values),
            access_token: None,
            dpop_jkt: None,
        }
    }

    /// At a resource server: the access token presented with the request, and the `cnf.jkt`
    /// it is bound to. The proof must then carry `ath`, the hash of `token`, and be signed by
    /// the key whose thumbprint is `jkt`.
    #[must_use]
    pub fn access_token(mut self, token: &'a str, jkt: &'a str) -> Self {
        self.access_token = Some((token, jkt));
        self
    }

    /// At an authorization server's token endpoint: the `dpop_jkt` parameter of the
    /// authorization request (RFC 9449 §10). The proof's key must have this thumbprint.
    #[must_use]
    pub fn dpop_jkt(mut self, jkt: &'a str) -> Self {
        self.dpop_jkt = Some(jkt);
        self
    }
}
