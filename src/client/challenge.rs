//! Parsing `WWW-Authenticate` challenges (RFC 9110 §11.6.1, §11.2), with bounded work.
//!
//! A server controls these headers, so the parser must not let one of them cost the client more
//! than a small, fixed amount of time and memory. The work is linear in the length of the value,
//! and [`Limits::DEFAULT`] caps what a value may hold: its length (checked before anything is
//! read), its challenges, and the parameters of each challenge. A value beyond a cap is refused
//! with an error of its own kind, like any malformed value.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

/// The longest `WWW-Authenticate` field value parsed: 16 KiB. Real challenges take well under
/// 1 KiB; a longer value is refused before it is read.
pub(crate) const MAX_VALUE_LEN: usize = 16 * 1024;

/// The most challenges one field value may hold: 16.
pub(crate) const MAX_CHALLENGES: usize = 16;

/// The most parameters one challenge may hold: 32. RFC 9449 §7.1 and RFC 6750 §3 define six.
pub(crate) const MAX_PARAMS: usize = 32;

/// The caps the parser enforces on one field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest value, in bytes.
    pub(crate) max_len: usize,
    /// The most challenges.
    pub(crate) max_challenges: usize,
    /// The most parameters per challenge.
    pub(crate) max_params: usize,
}

impl Limits {
    /// [`MAX_VALUE_LEN`], [`MAX_CHALLENGES`] and [`MAX_PARAMS`].
    pub(crate) const DEFAULT: Self = Self {
        max_len: MAX_VALUE_LEN,
        max_challenges: MAX_CHALLENGES,
        max_params: MAX_PARAMS,
    };
}

/// One authentication challenge of a `WWW-Authenticate` header: a scheme followed by either a
/// token68 or a list of parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The authentication scheme, as sent.
    scheme: String,
    /// The token68 that follows the scheme, if the challenge has one instead of parameters.
    /// The client has no use for it; the tests check that it is told apart from parameters.
    #[cfg_attr(not(test), allow(dead_code))]
    token68: Option<String>,
    /// The parameters, by name in lowercase. Also how repeated names are caught: one lookup per
    /// parameter, whatever the number before it.
    params: HashMap<String, String>,
}

impl Challenge {
    /// `true` when the scheme is `scheme`, compared case-insensitively (RFC 9110 §11.1).
    pub(crate) fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of parameter `name` (compared case-insensitively), unquoted and unescaped.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Why a `WWW-Authenticate` value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeErrorKind {
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
    /// The value is longer than [`Limits::max_len`]; nothing of it was read.
    TooLong,
    /// The value holds more than [`Limits::max_challenges`] challenges.
    TooManyChallenges,
    /// A challenge holds more than [`Limits::max_params`] parameters.
    TooManyParams,
}

/// A `WWW-Authenticate` value that is not a valid list of challenges, or exceeds a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChallengeError {
    /// What went wrong.
    kind: ChallengeErrorKind,
    /// The byte offset where the parser stopped.
    offset: usize,
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
            ChallengeErrorKind::TooLong => "value too long",
            ChallengeErrorKind::TooManyChallenges => "too many challenges",
            ChallengeErrorKind::TooManyParams => "too many parameters in one challenge",
        };
        write!(
            f,
            "malformed WWW-Authenticate at byte {}: {what}",
            self.offset
        )
    }
}

impl std::error::Error for ChallengeError {}

/// Parses one `WWW-Authenticate` field value into its challenges (RFC 9110 §11.6.1), within
/// [`Limits::DEFAULT`]: a comma-separated list in which each challenge is a scheme followed by a
/// token68 or by `name=value` parameters, values being tokens or quoted strings with `\`
/// escapes.
///
/// Takes bytes, so a header value that is not UTF-8 can be passed as it is; bytes above 0x7F
/// inside quoted strings (obs-text) come out through lossy UTF-8 decoding.
pub(crate) fn parse_challenges(input: &[u8]) -> Result<Vec<Challenge>, ChallengeError> {
    parse_challenges_with(input, Limits::DEFAULT)
}

/// [`parse_challenges`] within `limits`.
///
/// One pass without recursion: every byte is looked at a bounded number of times, and repeated
/// parameter names are found through each challenge's hash map of parameters, so the time is
/// linear in the length of `input` whatever the limits. No input makes it panic.
pub(crate) fn parse_challenges_with(
    input: &[u8],
    limits: Limits,
) -> Result<Vec<Challenge>, ChallengeError> {
    if input.len() > limits.max_len {
        return Err(ChallengeError {
            kind: ChallengeErrorKind::TooLong,
            offset: limits.max_len,
        });
    }
    Parser {
        input,
        pos: 0,
        limits,
    }
    .challenges()
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
    limits: Limits,
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
            let mut name = self.token()?;
            self.skip_ows();
            if self.peek() == Some(b'=') {
                // `name = value`: a parameter of the challenge in progress.
                let Some(current) = challenges.last_mut() else {
                    self.pos = item_start;
                    return Err(self.error(ChallengeErrorKind::ParamWithoutScheme));
                };
                if current.params.len() >= self.limits.max_params {
                    self.pos = item_start;
                    return Err(self.error(ChallengeErrorKind::TooManyParams));
                }
                self.pos += 1;
                self.skip_ows();
                let value = match self.peek() {
                    Some(b'"') => self.quoted_string()?,
                    Some(b) if is_tchar(b) => self.token()?,
                    _ => return Err(self.error(ChallengeErrorKind::ExpectedValue)),
                };
                name.make_ascii_lowercase();
                match current.params.entry(name) {
                    Entry::Occupied(_) => {
                        self.pos = item_start;
                        return Err(self.error(ChallengeErrorKind::DuplicateParam));
                    }
                    Entry::Vacant(entry) => {
                        entry.insert(value);
                    }
                }
                self.end_of_item()?;
                continue;
            }
            // A new challenge: `scheme [ 1*SP ( token68 / #auth-param ) ]`.
            if challenges.len() >= self.limits.max_challenges {
                self.pos = item_start;
                return Err(self.error(ChallengeErrorKind::TooManyChallenges));
            }
            self.pos = item_start + name.len();
            challenges.push(Challenge {
                scheme: name,
                token68: None,
                params: HashMap::new(),
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
    use proptest::prelude::*;

    use super::*;

    fn parse(input: &str) -> Vec<Challenge> {
        match parse_challenges(input.as_bytes()) {
            Ok(challenges) => challenges,
            Err(err) => panic!("{input:?}: {err}"),
        }
    }

    fn error(input: &str) -> ChallengeError {
        match parse_challenges(input.as_bytes()) {
            Ok(challenges) => panic!("{input:?} parsed as {challenges:?}"),
            Err(err) => err,
        }
    }

    fn kind(input: &str) -> ChallengeErrorKind {
        error(input).kind
    }

    /// `count` challenges `S0 p=1, S1 p=1, ...`, each with one parameter.
    fn challenges(count: usize) -> String {
        (0..count)
            .map(|i| format!("S{i} p=1"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One `DPoP` challenge with the parameters `p0=1, p1=1, ...`.
    fn params(count: usize) -> String {
        let list: Vec<String> = (0..count).map(|i| format!("p{i}=1")).collect();
        format!("DPoP {}", list.join(", "))
    }

    #[test]
    fn rfc_9449_challenge() {
        let c = parse(
            r#"DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "DPoP");
        assert_eq!(c[0].param("error"), Some("invalid_token"));
        assert_eq!(
            c[0].param("Error_Description"),
            Some("Invalid DPoP key binding")
        );
        assert_eq!(c[0].param("algs"), Some("ES256"));
        assert_eq!(c[0].params.len(), 3);
        assert_eq!(c[0].token68, None);
    }

    #[test]
    fn token68_and_params() {
        let c =
            parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Newauth realm=apps, type=1 ,title=\"Login\"");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].token68.as_deref(), Some("YWxhZGRpbjpvcGVuc2VzYW1l=="));
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
        assert_eq!(kind("DPoP a=\"1\" b=2"), ChallengeErrorKind::ExpectedComma);
        assert_eq!(kind("DPoP b=1, a="), ChallengeErrorKind::ExpectedValue);
        assert_eq!(parse("DPoP a=")[0].token68.as_deref(), Some("a="));
        assert_eq!(kind("DPoP\"x\""), ChallengeErrorKind::ExpectedSpace);
        assert_eq!(kind("@"), ChallengeErrorKind::ExpectedToken);
    }

    #[test]
    fn repeated_names_are_refused_within_a_challenge_only() {
        let dup = error("DPoP a=1, b=2, a=3");
        assert_eq!(dup.kind, ChallengeErrorKind::DuplicateParam);
        assert_eq!(dup.offset, "DPoP a=1, b=2, ".len());
        // Names compare case-insensitively.
        assert_eq!(
            kind(r#"DPoP error="use_dpop_nonce", ERROR="invalid_token""#),
            ChallengeErrorKind::DuplicateParam
        );
        // The same name in two challenges is fine, and is still caught when repeated in the
        // second one.
        let c = parse("Bearer error=a, DPoP error=b, realm=x, Other realm=y");
        assert_eq!(c[0].param("error"), Some("a"));
        assert_eq!(c[1].param("error"), Some("b"));
        assert_eq!(c[2].param("realm"), Some("y"));
        assert_eq!(
            kind("Bearer x=1, DPoP x=2, y=3, X=4"),
            ChallengeErrorKind::DuplicateParam
        );
    }

    #[test]
    fn length_cap() {
        // A valid value of exactly the cap: one challenge with one long quoted parameter.
        let head = "DPoP error=\"";
        let fill = "x".repeat(MAX_VALUE_LEN - head.len() - 1);
        let at_cap = format!("{head}{fill}\"");
        assert_eq!(at_cap.len(), MAX_VALUE_LEN);
        assert_eq!(parse(&at_cap)[0].param("error"), Some(fill.as_str()));

        let over = format!("{at_cap} ");
        let err = error(&over);
        assert_eq!(err.kind, ChallengeErrorKind::TooLong);
        assert_eq!(err.offset, MAX_VALUE_LEN);
        // Refused before parsing: a value that would be malformed early is still "too long".
        assert_eq!(
            kind(&format!("@{}", " ".repeat(MAX_VALUE_LEN))),
            ChallengeErrorKind::TooLong
        );
    }

    #[test]
    fn challenge_cap() {
        assert_eq!(parse(&challenges(MAX_CHALLENGES)).len(), MAX_CHALLENGES);
        let over = challenges(MAX_CHALLENGES + 1);
        let err = error(&over);
        assert_eq!(err.kind, ChallengeErrorKind::TooManyChallenges);
        assert_eq!(err.offset, challenges(MAX_CHALLENGES).len() + ", ".len());
        // Bare schemes count too.
        assert_eq!(
            kind(&vec!["A"; MAX_CHALLENGES + 1].join(",")),
            ChallengeErrorKind::TooManyChallenges
        );
    }

    #[test]
    fn param_cap() {
        let at_cap = parse(&params(MAX_PARAMS));
        assert_eq!(at_cap[0].params.len(), MAX_PARAMS);
        let over = params(MAX_PARAMS + 1);
        let err = error(&over);
        assert_eq!(err.kind, ChallengeErrorKind::TooManyParams);
        assert_eq!(err.offset, params(MAX_PARAMS).len() + ", ".len());
        // The cap is per challenge: a second challenge starts a new count.
        let two = format!("{}, {}", params(MAX_PARAMS), params(MAX_PARAMS));
        assert_eq!(parse(&two).len(), 2);
    }

    #[test]
    fn many_names_without_caps() {
        let unbounded = Limits {
            max_len: usize::MAX,
            max_challenges: usize::MAX,
            max_params: usize::MAX,
        };
        let count = 50_000;
        let many = params(count);
        let parsed = parse_challenges_with(many.as_bytes(), unbounded).unwrap_or_default();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].params.len(), count);
        assert_eq!(parsed[0].param("P49999"), Some("1"));

        let repeated = format!("{many}, P0=2");
        let err = parse_challenges_with(repeated.as_bytes(), unbounded).err();
        assert_eq!(
            err.map(|e| (e.kind, e.offset)),
            Some((ChallengeErrorKind::DuplicateParam, many.len() + ", ".len()))
        );
    }

    #[test]
    fn obs_text_is_decoded_lossily() {
        let c = parse_challenges(b"DPoP x=\"a\xffb\"").unwrap_or_default();
        assert_eq!(c[0].param("x"), Some("a\u{fffd}b"));
    }

    proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_challenges(&input);
        }

        #[test]
        fn never_panics_on_header_like_text(
            input in r#"([ \t,=\x22\\a-zA-Z0-9_/+~.-]|DPoP|error|use_dpop_nonce){0,64}"#
        ) {
            let _ = parse_challenges(input.as_bytes());
        }

        #[test]
        fn quoted_values_round_trip(value in r#"[ -~]{0,40}"#) {
            let escaped: String = value
                .chars()
                .flat_map(|c| if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] })
                .collect();
            let header =
                format!(r#"Bearer realm="x", DPoP error="use_dpop_nonce", note="{escaped}""#);
            let challenges = parse_challenges(header.as_bytes());
            prop_assert!(challenges.is_ok(), "{header}");
            let challenges = challenges.unwrap_or_default();
            prop_assert_eq!(challenges.len(), 2);
            prop_assert_eq!(challenges[1].param("note"), Some(value.as_str()));
        }
    }
}
