//! The Redis commands behind [`RedisNonceSource`](super::RedisNonceSource): create a window's
//! value once, read it back, and refuse anything this crate did not make.

use redis::{Connection, ErrorKind, RedisError, RedisResult, Value};

use crate::ct::{self, Packed};
use crate::nonce::Nonce;

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
    ct::pack(&bytes)
        .filter(|packed| ct::unpack(packed).is_some())
        .ok_or_else(|| {
            RedisError::from((
                ErrorKind::Parse,
                "the nonce key holds a value this crate did not make",
            ))
        })
}
