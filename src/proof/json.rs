//! Bounded JSON parsing for the proof's header and claims.
//!
//! The parser accepts one JSON object (RFC 8259) and refuses what a generic parser lets through:
//! duplicate member names (RFC 7515 §5.2 and RFC 7519 §4 ask for refusal or last-wins; the
//! first is the safe one, since two parsers then never disagree on a proof), and nesting deeper
//! than [`MAX_JSON_DEPTH`]. Recursion is bounded by that depth, so no input can exhaust the
//! stack, and the input itself is bounded by the caller (the proof size cap).

/// The deepest nesting of objects and arrays accepted in a proof's header or claims. The header
/// needs 2 (the `jwk` inside it); real claims rarely go beyond 3.
pub const MAX_JSON_DEPTH: usize = 16;

/// Why the bytes are not an acceptable JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not UTF-8, not JSON, or JSON but not an object.
    Syntax,
    /// An object names the same member twice.
    Duplicate,
    /// Objects and arrays nest deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
}

/// A JSON number: an integer that fits in an `i64`, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Number {
    /// No fraction, no exponent, within `i64`.
    Integer(i64),
    /// Any other number (fraction, exponent, or out of range).
    Other,
}

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub(crate) fn as_object(&self) -> Option<&Object> {
        match self {
            Self::Object(object) => Some(object),
            _ => None,
        }
    }
}

/// A JSON object whose member names are known to be distinct, in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Object {
    members: Vec<(String, Value)>,
}

impl Object {
    /// The value of member `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.members
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value)
    }

    /// Whether the object has a member `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Parses `bytes` as exactly one JSON object, with optional surrounding whitespace.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Object, JsonError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(JsonError::Syntax);
    }
    let mut parser = Parser { bytes, pos: 0 };
    parser.skip_whitespace();
    if parser.peek() != Some(b'{') {
        return Err(JsonError::Syntax);
    }
    let Value::Object(object) = parser.value(1)? else {
        return Err(JsonError::Syntax);
    };
    parser.skip_whitespace();
    if parser.pos != bytes.len() {
        return Err(JsonError::Syntax);
    }
    Ok(object)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.next() == Some(byte) {
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, text: &[u8], value: Value) -> Result<Value, JsonError> {
        let end = self.pos.checked_add(text.len()).ok_or(JsonError::Syntax)?;
        if self.bytes.get(self.pos..end) == Some(text) {
            self.pos = end;
            Ok(value)
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// One value; `depth` is the nesting level an object or array here would have.
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            _ => Err(JsonError::Syntax),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_JSON_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(Object { members }));
        }
        loop {
            self.skip_whitespace();
            let name = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            members.push((name, value));
            self.skip_whitespace();
            match self.next() {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return Err(JsonError::Syntax),
            }
        }
        let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(JsonError::Duplicate);
        }
        Ok(Value::Object(Object { members }))
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_JSON_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.next() {
                Some(b',') => {}
                Some(b']') => break,
                _ => return Err(JsonError::Syntax),
            }
        }
        Ok(Value::Array(items))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .next()
                .and_then(|byte| char::from(byte).to_digit(16))
                .ok_or(JsonError::Syntax)?;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next().ok_or(JsonError::Syntax)? {
                b'"' => break,
                b'\\' => {
                    let escaped = match self.next().ok_or(JsonError::Syntax)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(JsonError::Syntax),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(escaped.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(JsonError::Syntax),
                byte => out.push(byte),
            }
        }
        // The input is UTF-8 and escapes add whole characters, so this holds; refuse otherwise.
        String::from_utf8(out).map_err(|_| JsonError::Syntax)
    }

    /// The character of a `\u` escape (the `\u` already read), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                self.expect(b'\\')?;
                self.expect(b'u')?;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(JsonError::Syntax);
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(JsonError::Syntax),
            code => code,
        };
        char::from_u32(code).ok_or(JsonError::Syntax)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if !integer {
            return Ok(Number::Other);
        }
        let text =
            std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| JsonError::Syntax)?;
        Ok(text.parse().map_or(Number::Other, Number::Integer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects() {
        let object = parse_object(
            br#" {"a": [1, -2, 3.5, true, null], "b": {"c": "d\u00e9\ud83d\ude00"}} "#,
        )
        .unwrap();
        assert!(object.contains("a"));
        let inner = object.get("b").and_then(Value::as_object).unwrap();
        assert_eq!(inner.get("c").and_then(Value::as_str), Some("dé😀"));
    }

    #[test]
    fn refuses_duplicates_even_when_escaped() {
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(JsonError::Duplicate));
        assert_eq!(
            parse_object(br#"{"a":1,"\u0061":2}"#),
            Err(JsonError::Duplicate)
        );
        assert_eq!(
            parse_object(br#"{"x":{"a":1,"a":2}}"#),
            Err(JsonError::Duplicate)
        );
    }

    #[test]
    fn caps_depth() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH - 1),
            "]".repeat(MAX_JSON_DEPTH - 1)
        );
        assert!(parse_object(format!(r#"{{"a":{ok}}}"#).as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(
            parse_object(format!(r#"{{"a":{deep}}}"#).as_bytes()),
            Err(JsonError::TooDeep)
        );
    }

    #[test]
    fn refuses_junk() {
        for junk in [
            &b""[..],
            b"[]",
            b"{",
            b"{}x",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\" 1}",
            b"{\"a\":tru}",
        ] {
            assert_eq!(parse_object(junk), Err(JsonError::Syntax), "{junk:?}");
        }
    }

    #[test]
    fn numbers() {
        let object =
            parse_object(br#"{"i":1562262616,"f":1.5,"big":99999999999999999999}"#).unwrap();
        assert_eq!(
            object.get("i"),
            Some(&Value::Number(Number::Integer(1_562_262_616)))
        );
        assert_eq!(object.get("f"), Some(&Value::Number(Number::Other)));
        assert_eq!(object.get("big"), Some(&Value::Number(Number::Other)));
    }
}
