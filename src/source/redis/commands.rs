//! The Redis commands behind [`RedisNonceSource`](super::RedisNonceSource): create a window's
//! value once, read it back, and refuse anything this crate did not make.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::{ErrorKind, RedisError, RedisResult, Value};

use super::endpoint::Link;

use crate::nonce::Nonce;
use crate::source::engine::{Packed, pack_nonce};

/// Bytes behind a generated nonce: 32 random bytes encode to [`Nonce::GENERATED_LEN`] characters.
const GENERATED_BYTES: usize = 32;

/// A TTL cap far beyond any rotation accepted, but safe from overflow inside Redis.
pub(super) const MAX_TTL_MS: i64 = 1 << 50;

/// `SET key candidate NX PX ttl` then `GET key` (and `GET previous`) in one pipeline. Works on
/// every Redis version since 2.6.12: a value, once set, never changes, so the `GET` returns the
/// winner whoever it was. In a cluster, the cluster client's pipeline sends each command to the
/// node of its key's slot (the two windows' keys may live on different nodes); every command is
/// single-key, so nothing needs the pipeline to be atomic.
pub(super) fn set_and_get(
    connection: &mut Link,
    key: &str,
    candidate: &Nonce,
    ttl_ms: i64,
    previous_key: Option<&str>,
) -> RedisResult<(Packed, Option<Packed>)> {
    /// The same commands, on a plain or a cluster pipeline.
    macro_rules! commands {
        ($pipe:ident) => {{
            $pipe
                .cmd("SET")
                .arg(key)
                .arg(candidate.as_str())
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .cmd("GET")
                .arg(key);
            if let Some(previous_key) = previous_key {
                $pipe.cmd("GET").arg(previous_key);
            }
        }};
    }
    let replies: Vec<Value> = match connection {
        Link::Single(connection) => {
            let mut pipe = redis::pipe();
            commands!(pipe);
            pipe.query(connection)?
        }
        Link::Cluster(connection) => {
            let mut pipe = redis::cluster::cluster_pipe();
            commands!(pipe);
            pipe.query(connection.as_mut())?
        }
    };
    let mut replies = replies.into_iter();
    let value = match replies.next() {
        Some(Value::Nil) => {
            return Err(RedisError::from((
                ErrorKind::Parse,
                "the nonce key vanished right after it was set (evicted?)",
            )));
        }
        Some(reply) => parse_nonce(reply)?,
        None => return Err(RedisError::from((ErrorKind::Parse, "missing GET reply"))),
    };
    let previous = match (previous_key, replies.next()) {
        (None, _) | (Some(_), Some(Value::Nil)) => None,
        (Some(_), Some(reply)) => Some(parse_nonce(reply)?),
        (Some(_), None) => {
            return Err(RedisError::from((ErrorKind::Parse, "missing GET reply")));
        }
    };
    Ok((value, previous))
}

/// A reply that must hold a nonce this crate made: exactly what [`Nonce::generate`] writes, 32
/// bytes in unpadded base64url. Anything else is an error, never a nonce: another type, another
/// length, bytes that are not UTF-8, characters outside `A-Z a-z 0-9 - _` (even NQCHARs, which a
/// nonce could hold but this crate never writes), and a last character whose unused low bits
/// are set (no 32-byte value encodes to it).
fn parse_nonce(reply: Value) -> RedisResult<Packed> {
    let bytes = match reply {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => {
            return Err(RedisError::from((
                ErrorKind::Parse,
                "the nonce key holds something other than a string",
            )));
        }
    };
    Some(bytes.as_slice())
        .filter(|bytes| is_generated_form(bytes))
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| Nonce::parse(text).ok())
        .and_then(|nonce| pack_nonce(&nonce))
        .ok_or_else(|| {
            RedisError::from((
                ErrorKind::Parse,
                "the nonce key holds a value this crate did not make",
            ))
        })
}

/// `true` when `bytes` is what [`Nonce::generate`] produces: [`Nonce::GENERATED_LEN`]
/// characters of unpadded base64url that decode to exactly 32 bytes. The decoder refuses every
/// byte outside the base64url alphabet and a last character with unused bits set, so only the
/// canonical encoding of some 32 bytes passes.
fn is_generated_form(bytes: &[u8]) -> bool {
    // Room for the decoder's conservative estimate (three bytes per four characters, rounded
    // up); the decoded length is then checked exactly.
    let mut decoded = [0u8; Nonce::GENERATED_LEN.div_ceil(4) * 3];
    bytes.len() == Nonce::GENERATED_LEN
        && URL_SAFE_NO_PAD
            .decode_slice(bytes, &mut decoded)
            .is_ok_and(|len| len == GENERATED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    #[test]
    fn a_generated_nonce_is_read_back_as_it_was_written() {
        let nonce = Nonce::generate();
        let packed = parse_nonce(bulk(nonce.as_bytes())).expect("a generated nonce parses");
        assert_eq!(crate::source::engine::unpack(&packed), Some(nonce.clone()));
        let simple = parse_nonce(Value::SimpleString(nonce.to_string())).expect("simple string");
        assert_eq!(simple, packed);
    }

    #[test]
    fn values_this_crate_did_not_make_are_refused() {
        let mut spaced = Nonce::generate().as_bytes().to_vec();
        spaced[20] = b' ';
        let mut quoted = Nonce::generate().as_bytes().to_vec();
        quoted[42] = b'"';
        let mut latin = Nonce::generate().as_bytes().to_vec();
        latin[0] = 0xe9;
        // NQCHARs, so a valid nonce, but outside base64url: never written by this crate.
        let mut dotted = Nonce::generate().as_bytes().to_vec();
        dotted[10] = b'.';
        let mut plus = Nonce::generate().as_bytes().to_vec();
        plus[0] = b'+';
        let mut slash = Nonce::generate().as_bytes().to_vec();
        slash[5] = b'/';
        // Base64url, but the last character has unused bits set: no 32 bytes encode to it.
        let mut trailing = b"A".repeat(Nonce::GENERATED_LEN);
        trailing[Nonce::GENERATED_LEN - 1] = b'B';
        let padded = format!(
            "{}=",
            &Nonce::generate().as_str()[..Nonce::GENERATED_LEN - 1]
        );
        let refused: [&[u8]; 15] = [
            &[0u8; Nonce::GENERATED_LEN],
            &spaced,
            &quoted,
            &latin,
            &dotted,
            &plus,
            &slash,
            &trailing,
            padded.as_bytes(),
            &[b'!'; Nonce::GENERATED_LEN],
            &[b'~'; Nonce::GENERATED_LEN],
            &[b'a'; Nonce::GENERATED_LEN - 1],
            &[b'a'; Nonce::GENERATED_LEN + 1],
            &[0xff; Nonce::GENERATED_LEN],
            b"",
        ];
        for value in refused {
            let err = parse_nonce(bulk(value)).expect_err("a foreign value is refused");
            assert_eq!(err.kind(), ErrorKind::Parse, "{value:?}");
            let Ok(text) = String::from_utf8(value.to_vec()) else {
                continue;
            };
            assert!(parse_nonce(Value::SimpleString(text)).is_err(), "{value:?}");
        }
        let others = [
            Value::Int(7),
            Value::Nil,
            Value::Okay,
            Value::Array(vec![bulk(Nonce::generate().as_bytes())]),
            Value::Boolean(true),
        ];
        for other in others {
            assert!(parse_nonce(other.clone()).is_err(), "{other:?}");
        }
    }

    #[test]
    fn every_generated_nonce_passes_the_strict_check() {
        for _ in 0..1_000 {
            let nonce = Nonce::generate();
            assert!(is_generated_form(nonce.as_bytes()), "{nonce:?}");
        }
        let canonical_last = b"AEIMQUYcgkosw048";
        for last in canonical_last {
            let mut value = b"A".repeat(Nonce::GENERATED_LEN);
            value[Nonce::GENERATED_LEN - 1] = *last;
            assert!(is_generated_form(&value), "{}", *last as char);
        }
    }
}
