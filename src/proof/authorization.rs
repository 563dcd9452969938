//! The `Authorization` header of a request that presents a DPoP-bound access token.

use super::rejection::{Reason, Rejection};

/// The access token of a request presenting a DPoP-bound token: the `Authorization` header must
/// be exactly one `DPoP <token68>` value (scheme case-insensitive, RFC 9449 §7.1).
///
/// Give every `Authorization` value the request has, as for [`ProofRequest::new`](super::ProofRequest::new).
///
/// # Errors
///
/// A [`Rejection`] with kind `invalid_token`: [`Reason::MissingAccessToken`] when there is no
/// header (answer with a bare challenge, see [`Rejection::is_missing_credentials`]),
/// [`Reason::BearerScheme`] for a `Bearer` token, which a DPoP-bound token must never be
/// accepted as (RFC 9449 §7.2), [`Reason::MalformedAuthorization`] for anything else.
///
/// ```
/// use dpop_nonce::proof::{Reason, dpop_access_token};
///
/// assert_eq!(dpop_access_token(["DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"]),
///     Ok("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"));
/// assert_eq!(dpop_access_token(["Bearer abc"]).unwrap_err().reason(), Reason::BearerScheme);
/// assert_eq!(dpop_access_token::<_, str>([]).unwrap_err().reason(), Reason::MissingAccessToken);
/// ```
pub fn dpop_access_token<'a, I, V>(authorization_values: I) -> Result<&'a str, Rejection>
where
    I: IntoIterator<Item = &'a V>,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    let mut values = authorization_values.into_iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(Rejection::new(Reason::MissingAccessToken)),
        (Some(value), None) => value.as_ref(),
        (Some(_), Some(_)) => return Err(Rejection::new(Reason::MalformedAuthorization)),
    };
    let malformed = || Rejection::new(Reason::MalformedAuthorization);
    let value = std::str::from_utf8(value).map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::new(Reason::BearerScheme));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(malformed());
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if token68 { Ok(token) } else { Err(malformed()) }
}
