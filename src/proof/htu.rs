//! The `htu` comparison: RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalization of
//! `http` and `https` URIs, ignoring query and fragment (RFC 9449 §4.3 check 9).

/// Normalizes an absolute `http` or `https` URI for comparison with a proof's `htu`.
///
/// Drops the query and fragment; lowercases the scheme and host; uppercases the hexadecimal
/// digits of percent-encodings and decodes those of unreserved characters; removes dot
/// segments; drops an empty or default port (80 for `http`, 443 for `https`); turns an empty
/// path into `/`. Returns `None` for other schemes, relative references, user information,
/// an empty host, a bad port, a bad percent-encoding, and characters no URI may hold.
///
/// ```
/// use dpop_nonce::proof::normalize_htu;
///
/// let canonical = Some("https://server.example.com/token".to_owned());
/// assert_eq!(normalize_htu("HTTPS://Server.Example.com:443/token"), canonical);
/// assert_eq!(normalize_htu("https://server.example.com/a/../%74oken?x=1#f"), canonical);
/// assert_eq!(normalize_htu("https://server.example.com/%7e"), Some("https://server.example.com/~".into()));
/// assert_eq!(normalize_htu("https://server.example.com/%2f"), Some("https://server.example.com/%2F".into()));
/// assert_eq!(normalize_htu("https://user@server.example.com/token"), None);
/// assert_eq!(normalize_htu("ftp://server.example.com/token"), None);
/// ```
pub fn normalize_htu(uri: &str) -> Option<String> {
    if !uri.bytes().all(is_uri_byte) {
        return None;
    }
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    let uri = uri.get(..end)?;
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let authority = normalize_authority(authority, default_port)?;
    let path = normalize_path(path)?;
    Some(format!("{scheme}://{authority}{path}"))
}

/// The path of a request target, normalized: an origin-form target (`/token?x`) or the path of
/// an absolute-form one. `None` when it is neither.
pub(crate) fn target_path(target: &str) -> Option<String> {
    if !target.bytes().all(is_uri_byte) {
        return None;
    }
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let target = target.get(..end)?;
    let path = if target.starts_with('/') {
        target
    } else {
        let (_, rest) = target.split_once("://")?;
        rest.find('/').map_or("", |slash| &rest[slash..])
    };
    normalize_path(path)
}

/// A configured public base URL: normalized scheme and authority, plus a path prefix without
/// its trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl(String);

impl BaseUrl {
    pub(crate) fn parse(base: &str) -> Option<Self> {
        if base.contains(['?', '#']) {
            return None;
        }
        let mut normalized = normalize_htu(base)?;
        if normalized.ends_with('/') {
            normalized.pop();
        }
        Some(Self(normalized))
    }

    /// The expected `htu` for a request to `target` (origin-form or absolute-form; only its
    /// path is used, since scheme and host come from this configuration).
    pub(crate) fn join(&self, target: &str) -> Option<String> {
        let path = target_path(target)?;
        Some(format!("{}{}", self.0, path))
    }
}

/// Characters allowed in a URI (RFC 3986 §2): unreserved, reserved and `%`.
fn is_uri_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&byte)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Uppercases percent-encodings and decodes unreserved ones (RFC 3986 §6.2.2.1, §6.2.2.2).
fn normalize_percent(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte != b'%' {
            out.push(char::from(byte));
            i += 1;
            continue;
        }
        let high = char::from(*bytes.get(i + 1)?).to_digit(16)?;
        let low = char::from(*bytes.get(i + 2)?).to_digit(16)?;
        let decoded = u8::try_from(high * 16 + low).ok()?;
        if is_unreserved(decoded) {
            out.push(char::from(decoded));
        } else {
            out.push('%');
            out.push(char::from(bytes[i + 1]).to_ascii_uppercase());
            out.push(char::from(bytes[i + 2]).to_ascii_uppercase());
        }
        i += 3;
    }
    Some(out)
}

fn normalize_authority(authority: &str, default_port: u16) -> Option<String> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || (host.contains(['/', '[', ']']) && !host.starts_with('[')) {
        return None;
    }
    let host = normalize_percent(host)?.to_ascii_lowercase();
    let port = match port {
        None | Some("") => None,
        Some(port) => {
            if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u16 = port.parse().ok()?;
            (port != default_port).then_some(port)
        }
    };
    Some(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Percent normalization, then dot-segment removal (RFC 3986 §5.2.4); an empty path is `/`.
fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("/".to_owned());
    }
    if !path.starts_with('/') {
        return None;
    }
    let path = normalize_percent(path)?;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            segment => out.push(segment),
        }
    }
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(uri: &str) -> Option<String> {
        normalize_htu(uri)
    }

    #[test]
    fn dot_segments_follow_rfc_3986() {
        for (path, expected) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a//../b", "/a/b"),
            ("/%2E%2E/x", "/x"),
            ("/a/%2e/b", "/a/b"),
        ] {
            assert_eq!(
                norm(&format!("https://h{path}")),
                Some(format!("https://h{expected}")),
                "{path}"
            );
        }
    }

    #[test]
    fn authority_forms() {
        assert_eq!(norm("http://H:80"), Some("http://h/".into()));
        assert_eq!(norm("http://h:443/"), Some("http://h:443/".into()));
        assert_eq!(norm("https://h:/x"), Some("https://h/x".into()));
        assert_eq!(norm("https://h:0443/x"), Some("https://h/x".into()));
        assert_eq!(
            norm("https://[::1]:8443/x"),
            Some("https://[::1]:8443/x".into())
        );
        assert_eq!(
            norm("https://[FE80::1]/x"),
            Some("https://[fe80::1]/x".into())
        );
        assert_eq!(norm("https://h:99999/x"), None);
        assert_eq!(norm("https://h:8a/x"), None);
        assert_eq!(norm("https:///x"), None);
        assert_eq!(norm("https://h/%zz"), None);
        assert_eq!(norm("https://h/%4"), None);
        assert_eq!(norm("https://h/ä"), None);
        assert_eq!(norm("https://h/a b"), None);
        assert_eq!(norm("/token"), None);
    }

    #[test]
    fn percent_case_and_unreserved() {
        assert_eq!(norm("https://h/a%2fb"), norm("https://h/a%2Fb"));
        assert_eq!(norm("https://h/%41"), Some("https://h/A".into()));
        assert_ne!(norm("https://h/a%2Fb"), norm("https://h/a/b"));
    }

    #[test]
    fn base_urls_join_paths() {
        let base = BaseUrl::parse("HTTPS://Api.Example.com:443/").unwrap();
        assert_eq!(
            base.join("/token?x=1"),
            Some("https://api.example.com/token".into())
        );
        assert_eq!(
            base.join("http://evil.example/token"),
            Some("https://api.example.com/token".into())
        );
        let prefixed = BaseUrl::parse("https://h/v1").unwrap();
        assert_eq!(prefixed.join("/token"), Some("https://h/v1/token".into()));
        assert_eq!(prefixed.join("token"), None);
        assert!(BaseUrl::parse("https://h/?q").is_none());
    }
}
