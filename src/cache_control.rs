//! Reading `Cache-Control` field values as lists of directives (RFC 9111 §5.2, RFC 9110 §5.6).
//!
//! ```text
//! Cache-Control   = #cache-directive
//! cache-directive = token [ "=" ( token / quoted-string ) ]
//! ```
//!
//! The list is comma-separated, with optional spaces and tabs around the commas and empty
//! elements allowed (RFC 9110 §5.6.1). A quoted string may hold commas and `\` escapes, so a
//! directive name inside one (`no-cache="Set-Cookie, no-store"`) is not a directive. Directive
//! names compare case-insensitively. Nothing is allowed around `=`, as the grammar has it.
//!
//! The one question asked here is whether a directive is present, and the answer is used to
//! decide whether `no-store` must be added. So the reading is strict and fails safe: a value that
//! does not follow the grammar is taken as holding no directive at all.

/// `true` when the `Cache-Control` field lines `values` hold the directive `name` (compared
/// case-insensitively) with no argument.
///
/// The lines are read together, as one list (RFC 9110 §5.3). The answer is `false` when any line
/// does not follow the grammar, since such a value could be read differently by a cache. An
/// occurrence with an argument (`no-store=1`, `no-store="x"`) does not count either: directives
/// such as `no-store` are defined without one, and a cache may ignore the odd form.
pub(crate) fn has_directive<'a>(values: impl IntoIterator<Item = &'a [u8]>, name: &str) -> bool {
    let mut found = false;
    for line in values {
        let parsed = each_directive(line, |directive, argument| {
            if argument.is_none() && directive.eq_ignore_ascii_case(name.as_bytes()) {
                found = true;
            }
        });
        if parsed.is_none() {
            return false;
        }
    }
    found
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `qdtext` of RFC 9110 §5.6.4: what a quoted string holds unescaped.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// What may follow a `\` in a quoted string (RFC 9110 §5.6.4).
fn is_escapable(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

/// Calls `each(name, argument)` for every directive of one field line, in order; `argument` is
/// the text after `=` as sent (a token, or a quoted string with its quotes and escapes).
/// Returns `None`, possibly after some calls, when the line does not follow the grammar.
/// One pass, linear in the length of `line`.
fn each_directive<'a>(
    line: &'a [u8],
    mut each: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Option<()> {
    let mut pos = 0;
    let skip_ows = |pos: &mut usize| {
        while matches!(line.get(*pos), Some(b' ' | b'\t')) {
            *pos += 1;
        }
    };
    let token = |pos: &mut usize| {
        let start = *pos;
        while line.get(*pos).copied().is_some_and(is_tchar) {
            *pos += 1;
        }
        (*pos > start).then(|| &line[start..*pos])
    };
    loop {
        skip_ows(&mut pos);
        match line.get(pos) {
            None => return Some(()),
            // Empty list elements are allowed.
            Some(b',') => {
                pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = token(&mut pos)?;
        let argument = if line.get(pos) == Some(&b'=') {
            pos += 1;
            let start = pos;
            if line.get(pos) == Some(&b'"') {
                pos += 1;
                loop {
                    match *line.get(pos)? {
                        b'"' => {
                            pos += 1;
                            break;
                        }
                        b'\\' if line.get(pos + 1).copied().is_some_and(is_escapable) => pos += 2,
                        b if is_qdtext(b) => pos += 1,
                        _ => return None,
                    }
                }
            } else {
                token(&mut pos)?;
            }
            Some(&line[start..pos])
        } else {
            None
        };
        each(name, argument);
        skip_ows(&mut pos);
        match line.get(pos) {
            None => return Some(()),
            Some(b',') => pos += 1,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Directives<'a> = Vec<(&'a str, Option<&'a str>)>;

    /// `bytes` as text; every slice the parser hands out starts and ends at an ASCII byte.
    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap_or("\u{fffd}")
    }

    /// The directives of `line`, or `None` when it does not parse.
    fn directives(line: &str) -> Option<Directives<'_>> {
        let mut out = Vec::new();
        each_directive(line.as_bytes(), |name, argument| {
            out.push((text(name), argument.map(text)));
        })?;
        Some(out)
    }

    fn has(lines: &[&str], name: &str) -> bool {
        has_directive(lines.iter().map(|l| l.as_bytes()), name)
    }

    #[test]
    fn directives_and_arguments() {
        assert_eq!(
            directives(r#"private, max-age=60 ,,  no-cache="Set-Cookie, no-store",	x="a\"b\\""#),
            Some(vec![
                ("private", None),
                ("max-age", Some("60")),
                ("no-cache", Some(r#""Set-Cookie, no-store""#)),
                ("x", Some(r#""a\"b\\""#)),
            ])
        );
        assert_eq!(directives(""), Some(vec![]));
        assert_eq!(directives(" , ,"), Some(vec![]));
    }

    #[test]
    fn malformed_lines() {
        for line in [
            "no-store no-cache",
            "no-store;",
            "max-age =60",
            "max-age= 60",
            "max-age=",
            "=60",
            r#"no-cache="open"#,
            r#"no-cache="a\"#,
            "no-cache=\"a\u{7f}\"",
            r#"x="a"b"#,
            "no-store, @",
            "\"no-store\"",
        ] {
            assert_eq!(directives(line), None, "{line:?}");
        }
        assert_eq!(each_directive(b"x=\"\x01\"", |_, _| ()), None);
        assert_eq!(each_directive(b"x=\"\xff\"", |_, _| ()), Some(()));
    }

    #[test]
    fn finds_only_bare_directives_outside_quotes() {
        assert!(has(&["no-store"], "no-store"));
        assert!(has(&["private, NO-STORE"], "no-store"));
        assert!(has(&["max-age=0", "No-Store"], "no-store"));
        assert!(has(&[r#"no-cache="Set-Cookie", no-store"#], "no-store"));

        assert!(!has(&[], "no-store"));
        assert!(!has(&["no-storage, x-no-store"], "no-store"));
        assert!(!has(&[r#"no-cache="Set-Cookie, no-store""#], "no-store"));
        assert!(!has(&[r#"no-cache="\", no-store""#], "no-store"));
        assert!(!has(&["no-store=1"], "no-store"));
        assert!(!has(&[r#"no-store="""#], "no-store"));
    }

    #[test]
    fn one_unparseable_line_spoils_the_field() {
        assert!(!has(&["no-store, \"oops"], "no-store"));
        assert!(!has(&["no-store", "max-age=60 x"], "no-store"));
        assert!(!has(&["max-age=60 x", "no-store"], "no-store"));
    }
}
