//! [`Role`]: which server answers, and [`Algs`], what a resource server names in its challenge.

use crate::error::RenderError;
use crate::nonce::is_nqchar;

/// Which server answers, and so which form an [`Answer`](super::Answer) takes.
///
/// ```
/// use dpop_nonce::render::{Algs, Role};
///
/// assert_eq!(Role::AuthorizationServer.status(), 400);
/// let api = Role::ResourceServer { algs: Algs::new(["ES256", "EdDSA"])? };
/// assert_eq!(api.status(), 401);
/// # Ok::<(), dpop_nonce::RenderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// An authorization server (token, PAR endpoints): `400` with a JSON error body
    /// (RFC 6749 §5.2, RFC 9449 §5, §8).
    AuthorizationServer,
    /// A resource server: `401` with a `WWW-Authenticate: DPoP` challenge (RFC 6750 §3,
    /// RFC 9449 §7.1, §9).
    ResourceServer {
        /// The JWS algorithms accepted in proofs, for the challenge's `algs` parameter. Empty
        /// leaves the parameter out.
        algs: Algs,
    },
}

impl Role {
    /// The status code of this role's error answers: `400` for an authorization server, `401`
    /// for a resource server.
    pub const fn status(&self) -> u16 {
        match self {
            Self::AuthorizationServer => 400,
            Self::ResourceServer { .. } => 401,
        }
    }
}

/// The JWS algorithms a resource server accepts in proofs, for the challenge's `algs` parameter
/// (RFC 9449 §7.1). An empty list leaves the parameter out.
///
/// Each name must be 1 or more NQCHARs: that excludes spaces (the separator), `"` and `\`, so
/// the quoted value cannot be broken out of.
///
/// ```
/// use dpop_nonce::render::Algs;
///
/// assert_eq!(Algs::new(["ES256", "PS256"])?.as_str(), "ES256 PS256");
/// assert!(Algs::new(["ES256 PS256"]).is_err());
/// assert!(Algs::none().as_str().is_empty());
/// # Ok::<(), dpop_nonce::RenderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Algs(String);

impl Algs {
    /// Checks and joins the names.
    ///
    /// # Errors
    ///
    /// [`RenderError::InvalidAlg`] naming the first name that is empty or holds a byte outside
    /// NQCHAR.
    pub fn new<I>(names: I) -> Result<Self, RenderError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut joined = String::new();
        for (index, name) in names.into_iter().enumerate() {
            let name = name.as_ref();
            if name.is_empty() || !name.bytes().all(is_nqchar) {
                return Err(RenderError::InvalidAlg { index });
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(name);
        }
        Ok(Self(joined))
    }

    /// No `algs` parameter.
    pub fn none() -> Self {
        Self(String::new())
    }

    /// The space-separated list.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `true` when there is no algorithm, and so no `algs` parameter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The algorithms of a proof verifier, for its resource server's challenge. Every algorithm
/// name is made of NQCHARs, so nothing needs checking.
///
/// ```
/// use dpop_nonce::proof::{Algorithm, Algorithms};
/// use dpop_nonce::render::Algs;
///
/// let algs = Algs::from(Algorithms::new([Algorithm::Es256, Algorithm::Ed25519]));
/// assert_eq!(algs.as_str(), "ES256 Ed25519");
/// ```
#[cfg(feature = "proof")]
#[cfg_attr(docsrs, doc(cfg(feature = "proof")))]
impl From<crate::proof::Algorithms> for Algs {
    fn from(algorithms: crate::proof::Algorithms) -> Self {
        Self(algorithms.to_string())
    }
}
