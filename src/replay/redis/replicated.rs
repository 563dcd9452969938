//! The replay insert on any deployment, and the optional `WAIT` for replicas after it.

use std::time::Duration;

use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};

use crate::error::ConfigError;
use crate::replay::{ReplayCheck, ReplayError};
#[cfg(feature = "tokio")]
use crate::source::redis::endpoint::AsyncLink;
use crate::source::redis::endpoint::Link;

/// The most replicas an insert can wait for.
const MAX_REPLICAS: u32 = 100;

/// `WAIT replicas timeout_ms` after each insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::replay) struct WaitForReplicas {
    pub(in crate::replay) replicas: u32,
    pub(in crate::replay) timeout_ms: i64,
}

impl WaitForReplicas {
    /// The setting as given; [`check`](Self::check) judges it.
    pub(in crate::replay) fn new(replicas: u32, timeout: time::Duration) -> Self {
        Self {
            replicas,
            timeout_ms: i64::try_from(timeout.whole_milliseconds().max(0)).unwrap_or(i64::MAX),
        }
    }

    /// Checks the setting; returns how much longer than `io_timeout` a read may then take.
    pub(in crate::replay) fn check(&self) -> Result<Duration, ConfigError> {
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(ConfigError::CountOutOfRange {
                which: "number of replicas to wait for",
                min: 1,
                max: MAX_REPLICAS as usize,
            });
        }
        let Ok(ms @ 1..) = u64::try_from(self.timeout_ms) else {
            return Err(ConfigError::NonPositiveTimeout {
                which: "replica wait",
            });
        };
        Ok(Duration::from_millis(ms))
    }
}

/// `SET key 1 NX PX lifetime_ms`, and with `wait`, `WAIT replicas timeout` right after it.
/// Returns the `SET` reply and the number of replicas `WAIT` counted.
///
/// `WAIT` counts the replicas that acknowledged the writes sent before it *on the same
/// connection*, so both go in one request: in a cluster, the request is routed by the `SET`'s
/// key, and a retry (after `MOVED`, or a dropped node connection) sends both again, never the
/// `WAIT` alone to another node. A `SET NX` sent again answers nil, which refuses the proof.
pub(in crate::replay) fn set_nx(
    connection: &mut Link,
    key: &str,
    lifetime_ms: i64,
    wait: Option<&WaitForReplicas>,
) -> RedisResult<(Value, Option<i64>)> {
    let set = set_command(key, lifetime_ms);
    let Some(wait) = wait else {
        return Ok((set.query(connection.as_dyn())?, None));
    };
    // The cluster connection takes no `Pipeline::query` (it would split a pipeline by slot),
    // but routes one packed request by its first command's key.
    let packed = wait.after(set).get_packed_pipeline();
    split(connection.as_dyn().req_packed_commands(&packed, 0, 2)?)
}

/// [`set_nx`] on an async connection; the cluster client routes the pipeline by its first
/// command's key as a whole.
#[cfg(feature = "tokio")]
pub(in crate::replay) async fn set_nx_async(
    connection: &mut AsyncLink,
    key: &str,
    lifetime_ms: i64,
    wait: Option<&WaitForReplicas>,
) -> RedisResult<(Value, Option<i64>)> {
    let set = set_command(key, lifetime_ms);
    let Some(wait) = wait else {
        return Ok((connection.send(&set).await?, None));
    };
    split(connection.send_pipeline(&wait.after(set)).await?)
}

fn set_command(key: &str, lifetime_ms: i64) -> Cmd {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(1).arg("NX").arg("PX").arg(lifetime_ms);
    set
}

impl WaitForReplicas {
    fn command(&self) -> Cmd {
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.replicas).arg(self.timeout_ms);
        wait
    }

    /// `command` and then `WAIT`, in one request.
    fn after(&self, command: Cmd) -> Pipeline {
        let mut pipeline = redis::pipe();
        pipeline.add_command(command).add_command(self.command());
        pipeline
    }
}

/// The replies to the `SET` and `WAIT` request: an error reply in either is an error, and so
/// is a missing reply.
fn split(replies: Vec<Value>) -> RedisResult<(Value, Option<i64>)> {
    let mut replies = replies.into_iter().map(Value::extract_error);
    match (replies.next(), replies.next(), replies.next()) {
        (Some(set_reply), Some(acked), None) => Ok((set_reply?, Some(count(acked?)?))),
        _ => Err(RedisError::from((
            ErrorKind::Parse,
            "Redis did not answer SET and WAIT with two replies",
        ))),
    }
}

/// The reply to `WAIT`: the number of replicas that acknowledged.
fn count(reply: Value) -> RedisResult<i64> {
    match reply {
        Value::Int(count) => Ok(count),
        _ => Err(RedisError::from((
            ErrorKind::Parse,
            "Redis answered WAIT with something other than an integer",
        ))),
    }
}

/// A fresh insert stands only when enough replicas acknowledged it, if that was asked for.
pub(in crate::replay) fn enough(
    check: ReplayCheck,
    acked: Option<i64>,
    wait: Option<&WaitForReplicas>,
) -> Result<ReplayCheck, ReplayError> {
    let (ReplayCheck::Fresh, Some(wait)) = (check, wait) else {
        return Ok(check);
    };
    match acked {
        Some(acked) if acked >= i64::from(wait.replicas) => Ok(check),
        Some(acked) => Err(ReplayError::unavailable(format!(
            "only {acked} of {} replicas acknowledged the replay entry within {} ms; a \
             failover could lose it",
            wait.replicas, wait.timeout_ms
        ))),
        None => Err(ReplayError::unavailable(
            "the replicas' acknowledgement of the replay entry is unknown",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: WaitForReplicas = WaitForReplicas {
        replicas: 1,
        timeout_ms: 50,
    };

    #[test]
    fn too_few_acknowledgements_refuse_a_fresh_insert() {
        assert!(matches!(
            enough(ReplayCheck::Fresh, Some(1), Some(&ONE)),
            Ok(ReplayCheck::Fresh)
        ));
        assert!(matches!(
            enough(ReplayCheck::Fresh, Some(3), Some(&ONE)),
            Ok(ReplayCheck::Fresh)
        ));
        for acked in [Some(0), Some(-1), None] {
            assert!(matches!(
                enough(ReplayCheck::Fresh, acked, Some(&ONE)),
                Err(ReplayError::Unavailable(_))
            ));
        }
        assert!(matches!(
            enough(ReplayCheck::Replayed, None, Some(&ONE)),
            Ok(ReplayCheck::Replayed)
        ));
        assert!(matches!(
            enough(ReplayCheck::Fresh, None, None),
            Ok(ReplayCheck::Fresh)
        ));
    }

    #[test]
    fn the_setting_is_checked() {
        assert_eq!(ONE.check().ok(), Some(Duration::from_millis(50)));
        let none = WaitForReplicas { replicas: 0, ..ONE };
        assert!(none.check().is_err());
        let instant = WaitForReplicas {
            timeout_ms: 0,
            ..ONE
        };
        assert!(instant.check().is_err());
    }

    #[test]
    fn two_replies_or_an_error() {
        assert_eq!(
            split(vec![Value::Okay, Value::Int(1)]).ok(),
            Some((Value::Okay, Some(1)))
        );
        assert_eq!(
            split(vec![Value::Nil, Value::Int(0)]).ok(),
            Some((Value::Nil, Some(0)))
        );
        for short in [
            vec![],
            vec![Value::Okay],
            vec![Value::Okay, Value::Int(1), Value::Nil],
        ] {
            assert!(split(short).is_err());
        }
        let readonly = redis::parse_redis_value(b"-READONLY replica\r\n").expect("an error reply");
        assert!(matches!(readonly, Value::ServerError(_)));
        assert!(split(vec![readonly.clone(), Value::Int(1)]).is_err());
        assert!(split(vec![Value::Okay, readonly]).is_err());
    }

    #[test]
    fn only_an_integer_counts() {
        assert_eq!(count(Value::Int(2)).ok(), Some(2));
        assert!(count(Value::Okay).is_err());
        assert!(count(Value::Nil).is_err());
    }
}
