//! The Redis commands behind [`RedisNonceSource`](super::RedisNonceSource): create a window's
//! value once, read it back, and refuse anything this crate did not make.

use redis::{Connection, ErrorKind, RedisError, RedisResult, Value};

use crate::nonce::Nonce;
use crate::source::engine::{Packed, pack_nonce};

/// A TTL cap far beyond any rotation accepted, but safe from overflow inside Redis.
pub(super) const MAX_TTL_MS: i64 = 1 << 50;

/// `SET key candidate NX PX ttl` then `GET key` (and `GET previous`) in one pipeline. Works on
/// every Redis version since 2.6.12: a value, once set, never changes, so the `GET` returns the
/// winner whoever it was.
pub(super) fn set_and_get(
    connection: &mut Connection,
    key: &str,
    candidate: &Nonce,
    ttl_ms: i64,
    previous_key: Option<&str>,
) -> RedisResult<(Packed, Option<Packed>)> {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(key)
        .arg(candidate.as_str())
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .cmd("GET")
        .arg(key);
    if let Some(previous_key) = previous_key {
        pipe.cmd("GET").arg(previous_key);
    }
    let replies: Vec<Value> = pipe.query(connection)?;
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

/// A reply that must hold a nonce this crate made: [`Nonce::GENERATED_LEN`] NQCHARs.
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
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| Nonce::parse(text).ok())
        .and_then(|nonce| pack_nonce(&nonce))
        .ok_or_else(|| {
            RedisError::from((
                ErrorKind::Parse,
                "the nonce key holds a value this crate did not make",
            ))
        })
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
        let refused: [&[u8]; 6] = [
            &[0u8; Nonce::GENERATED_LEN],
            &spaced,
            &quoted,
            &latin,
            &[b'a'; Nonce::GENERATED_LEN - 1],
            &[b'a'; Nonce::GENERATED_LEN + 1],
        ];
        for value in refused {
            let err = parse_nonce(bulk(value)).expect_err("a foreign value is refused");
            assert_eq!(err.kind(), ErrorKind::Parse, "{value:?}");
        }
        assert!(parse_nonce(Value::Int(7)).is_err());
    }
}
