//! Parsing `WWW-Authenticate` challenges (RFC 9110 §11.6.1, §11.2).

use std::fmt;

/// One authentication challenge of a `WWW-Authenticate` header: a scheme followed by either a
/// token68 or a list of parameters.
///
/// ```
/// use dpop_nonce::client::parse_challenges;
///
/// let challenges = parse_challenges(br#"Bearer realm="x", DPoP error="use_dpop_nonce""#)?;
/// assert_eq!(challenges.len(), 2);
/// assert!(challenges[1].is_scheme("dpop"));
/// assert_eq!(challenges[1].param("error"), Some("use_dpop_nonce"));
/// # Ok::<(), dpop_nonce::client::ChallengeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The authentication scheme, as sent.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `true` when the scheme is `scheme`, compared case-insensitively (RFC 9110 §11.1).
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The token68 that follows the scheme, if the challenge has one instead of parameters.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// The value of parameter `name` (compared case-insensitively), unquoted and unescaped.
    /// A parameter name appears at most once per challenge: the parser refuses repeats.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, names in lowercase, in the order sent.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Why a `WWW-Authenticate` value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeErrorKind {
    /// A scheme or parameter name was expected.
    ExpectedToken,
    /// The scheme is followed by something other than a space, a comma or the end.
    ExpectedSpace,
    /// A parameter has no value after `=`.
    ExpectedValue,
    /// Something other than a comma or the end follows a complete item.
    ExpectedComma,
    /// A quoted string is not closed.
    UnterminatedQuote,
    /// A quoted string holds a control character (or a `\` before one).
    InvalidQuotedChar,
    /// A parameter comes before any scheme.
    ParamWithoutScheme,
    /// A challenge names the same parameter twice (RFC 9110 §11.2 forbids it).
    DuplicateParam,
}

/// A `WWW-Authenticate` value that is not a valid list of challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeError {
    kind: ChallengeErrorKind,
    offset: usize,
}

impl ChallengeError {
    /// What went wrong.
    pub fn kind(&self) -> ChallengeErrorKind {
        self.kind
    }

    /// The byte offset where the parser stopped.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ChallengeErrorKind::ExpectedToken => "expected a token",
            ChallengeErrorKind::ExpectedSpace => "expected a space after the scheme",
            ChallengeErrorKind::ExpectedValue => "expected a parameter value",
            ChallengeErrorKind::ExpectedComma => "expected a comma",
            ChallengeErrorKind::UnterminatedQuote => "unterminated quoted string",
            ChallengeErrorKind::InvalidQuotedChar => "invalid character in quoted string",
            ChallengeErrorKind::ParamWithoutScheme => "parameter before any scheme",
            ChallengeErrorKind::DuplicateParam => "repeated parameter",
        };
        write!(
            f,
            "malformed WWW-Authenticate at byte {}: {what}",
            self.offset
        )
    }
}

impl std::error::Error for ChallengeError {}

/// Parses one `WWW-Authenticate` field value into its challenges (RFC 9110 §11.6.1): a
/// comma-separated list in which each challenge is a scheme followed by a token68 or by
/// `name=value` parameters, values being tokens or quoted strings with `\` escapes.
///
/// Takes bytes, so a header value that is not UTF-8 can be passed as it is; bytes above 0x7F
/// inside quoted strings (obs-text) come out through lossy UTF-8 decoding. Works in one pass
/// without recursion, so any input, however long or hostile, gives a result and never panics.
///
/// # Errors
///
/// [`ChallengeError`] for a value that does not follow the grammar.
///
/// ```
/// use dpop_nonce::client::parse_challenges;
///
/// let challenges = parse_challenges(br#"dpop error="use_dpop_nonce", error_description="a \"b\"""#)?;
/// assert!(challenges[0].is_scheme("DPoP"));
/// assert_eq!(challenges[0].param("error_description"), Some(r#"a "b""#));
///
/// assert!(parse_challenges(br#"DPoP error="open"#).is_err());
/// # Ok::<(), dpop_nonce::client::ChallengeError>(())
/// ```
pub fn parse_challenges(input: &[u8]) -> Result<Vec<Challenge>, ChallengeError> {
    Parser { input, pos: 0 }.challenges()
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The characters of a token68 before its trailing `=` (RFC 9110 §11.2).
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn error(&self, kind: ChallengeErrorKind) -> ChallengeError {
        ChallengeError {
            kind,
            offset: self.pos,
        }
    }

    /// Skips spaces and tabs; returns how many.
    fn skip_ows(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &[u8] {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    fn token(&mut self) -> Result<String, ChallengeError> {
        let token = self.take_while(is_tchar);
        if token.is_empty() {
            return Err(self.error(ChallengeErrorKind::ExpectedToken));
        }
        // Every tchar is ASCII, so the slice is valid UTF-8.
        Ok(String::from_utf8_lossy(token).into_owned())
    }

    /// After an item: optional spaces, then a comma or the end.
    fn end_of_item(&mut self) -> Result<(), ChallengeError> {
        self.skip_ows();
        match self.peek() {
            None | Some(b',') => Ok(()),
            Some(_) => Err(self.error(ChallengeErrorKind::ExpectedComma)),
        }
    }

    /// A quoted string, the opening quote at `self.pos`; returns the unescaped content.
    fn quoted_string(&mut self) -> Result<String, ChallengeError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error(ChallengeErrorKind::UnterminatedQuote));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(String::from_utf8(out).unwrap_or_else(|err| {
                        String::from_utf8_lossy(err.as_bytes()).into_owned()
                    }));
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.error(ChallengeErrorKind::UnterminatedQuote)),
                        Some(escaped @ (b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)) => {
                            out.push(escaped);
                            self.pos += 1;
                        }
                        Some(_) => return Err(self.error(ChallengeErrorKind::InvalidQuotedChar)),
                    }
                }
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => {
                    out.push(b);
                    self.pos += 1;
                }
                _ => return Err(self.error(ChallengeErrorKind::InvalidQuotedChar)),
            }
        }
    }

    /// If a token68 starts at `self.pos` and fills the rest of the item, consumes and returns it.
    fn try_token68(&mut self) -> Option<String> {
        let start = self.pos;
        let body = self.take_while(is_token68_char).len();
        if body == 0 {
            self.pos = start;
            return None;
        }
        self.take_while(|b| b == b'=');
        let end = self.pos;
        self.skip_ows();
        if matches!(self.peek(), None | Some(b',')) {
            Some(String::from_utf8_lossy(&self.input[start..end]).into_owned())
        } else {
            self.pos = start;
            None
        }
    }

    fn challenges(mut self) -> Result<Vec<Challenge>, ChallengeError> {
        let mut challenges: Vec<Challenge> = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(challenges),
                // Empty list elements are allowed (RFC 9110 §5.6.1).
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let item_start = self.pos;
            let name = self.token()?;
            self.skip_ows();
            if self.peek() == Some(b'=') {
                // `name = value`: a parameter of the challenge in progress.
                let Some(current) = challenges.last_mut() else {
                    self.pos = item_start;
                    return Err(self.error(ChallengeErrorKind::ParamWithoutScheme));
                };
                self.pos += 1;
                self.skip_ows();
                let value = match self.peek() {
                    Some(b'"') => self.quoted_string()?,
                    Some(b) if is_tchar(b) => self.token()?,
                    _ => return Err(self.error(ChallengeErrorKind::ExpectedValue)),
                };
                let name = name.to_ascii_lowercase();
                if current.params.iter().any(|(n, _)| *n == name) {
                    self.pos = item_start;
                    return Err(self.error(ChallengeErrorKind::DuplicateParam));
                }
                current.params.push((name, value));
                self.end_of_item()?;
                continue;
            }
            // A new challenge: `scheme [ 1*SP ( token68 / #auth-param ) ]`.
            self.pos = item_start + name.len();
            challenges.push(Challenge {
                scheme: name,
                token68: None,
                params: Vec::new(),
            });
            let spaces = self.skip_ows();
            if matches!(self.peek(), None | Some(b',')) {
                continue;
            }
            if spaces == 0 {
                return Err(self.error(ChallengeErrorKind::ExpectedSpace));
            }
            if let Some(token68) = self.try_token68()
                && let Some(current) = challenges.last_mut()
            {
                current.token68 = Some(token68);
            }
            // Otherwise the parameters that follow are read by the next turns of the loop.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Vec<Challenge> {
        match parse_challenges(input.as_bytes()) {
            Ok(challenges) => challenges,
            Err(err) => panic!("{input:?}: {err}"),
        }
    }

    fn kind(input: &str) -> ChallengeErrorKind {
        match parse_challenges(input.as_bytes()) {
            Ok(challenges) => panic!("{input:?} parsed as {challenges:?}"),
            Err(err) => err.kind(),
        }
    }

    #[test]
    fn token68_and_params() {
        let c =
            parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Newauth realm=apps, type=1 ,title=\"Login\"");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].token68(), Some("YWxhZGRpbjpvcGVuc2VzYW1l=="));
        assert_eq!(c[1].param("REALM"), Some("apps"));
        assert_eq!(c[1].param("type"), Some("1"));
        assert_eq!(c[1].param("title"), Some("Login"));
    }

    #[test]
    fn bare_schemes_and_empty_elements() {
        let c = parse(" , DPoP ,, Bearer, ");
        assert_eq!(c.len(), 2);
        assert!(c[0].is_scheme("dpop") && c[1].is_scheme("bearer"));
        assert!(parse("").is_empty());
    }

    #[test]
    fn bws_around_equals() {
        let c = parse("DPoP error = \"use_dpop_nonce\"");
        assert_eq!(c[0].param("error"), Some("use_dpop_nonce"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            kind("DPoP error=\"x"),
            ChallengeErrorKind::UnterminatedQuote
        );
        assert_eq!(
            kind("DPoP error=\"x\\"),
            ChallengeErrorKind::UnterminatedQuote
        );
        assert_eq!(
            kind("DPoP error=\"a\nb\""),
            ChallengeErrorKind::InvalidQuotedChar
        );
        assert_eq!(kind("realm=\"x\""), ChallengeErrorKind::ParamWithoutScheme);
        assert_eq!(kind("DPoP a=1, a=2"), ChallengeErrorKind::DuplicateParam);
        assert_eq!(kind("DPoP a=\"1\" b=2"), ChallengeErrorKind::ExpectedComma);
        assert_eq!(kind("DPoP b=1, a="), ChallengeErrorKind::ExpectedValue);
        assert_eq!(parse("DPoP a=")[0].token68(), Some("a="));
        assert_eq!(kind("DPoP\"x\""), ChallengeErrorKind::ExpectedSpace);
        assert_eq!(kind("@"), ChallengeErrorKind::ExpectedToken);
    }

    #[test]
    fn obs_text_is_decoded_lossily() {
        let c = parse_challenges(b"DPoP x=\"a\xffb\"").unwrap_or_default();
        assert_eq!(c[0].param("x"), Some("a\u{fffd}b"));
    }
}
