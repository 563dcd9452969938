//! [`Origin`]: the key under which a client keeps a server's nonce.

use std::fmt;
use std::net::Ipv6Addr;

use http::Uri;

/// A normalized origin: scheme, host and port (RFC 6454), the unit a client keys its nonces by.
///
/// Scheme and host are lowercased, the default port of `http` (80) and `https` (443) is filled
/// in, and an IPv6 literal is written in its canonical form; path, query, fragment and user
/// information are dropped. Two URIs of the same server thus give equal origins.
///
/// ```
/// use dpop_nonce::client::Origin;
///
/// let a = Origin::from_uri(&"HTTPS://Server.Example.COM/token?x=1".parse()?)?;
/// let b = Origin::from_uri(&"https://server.example.com:443/resource".parse()?)?;
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "https://server.example.com:443");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Why a URI has no usable origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginError {
    /// The URI has no scheme (a relative reference such as `/token`).
    MissingScheme,
    /// The URI has no host, or an empty one.
    MissingHost,
    /// The URI names no port, and its scheme is neither `http` nor `https`, whose default ports
    /// are known.
    MissingPort,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingScheme => "the URI has no scheme",
            Self::MissingHost => "the URI has no host",
            Self::MissingPort => "the URI has no port and its scheme has no known default",
        })
    }
}

impl std::error::Error for OriginError {}

impl Origin {
    /// The origin of an absolute URI.
    ///
    /// # Errors
    ///
    /// [`OriginError`] when the URI has no scheme or host, or no port and a scheme other than
    /// `http` and `https`.
    pub fn from_uri(uri: &Uri) -> Result<Self, OriginError> {
        let scheme = uri
            .scheme_str()
            .ok_or(OriginError::MissingScheme)?
            .to_ascii_lowercase();
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or(OriginError::MissingHost)?;
        let host = normalize_host(host);
        let port = match (uri.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "https") => 443,
            (None, "http") => 80,
            (None, _) => return Err(OriginError::MissingPort),
        };
        Ok(Self { scheme, host, port })
    }

    /// The scheme, lowercase.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, lowercase; an IPv6 literal keeps its brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Lowercases a host and writes an IPv6 literal in canonical form.
fn normalize_host(host: &str) -> String {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
        && let Ok(addr) = inner.parse::<Ipv6Addr>()
    {
        return format!("[{addr}]");
    }
    host.to_ascii_lowercase()
}

impl TryFrom<&Uri> for Origin {
    type Error = OriginError;

    fn try_from(uri: &Uri) -> Result<Self, Self::Error> {
        Self::from_uri(uri)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}
