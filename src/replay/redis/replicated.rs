//! The replay insert on any deployment, and the optional `WAIT` for replicas after it.

use std::time::Duration;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::error::ConfigError;
use crate::replay::{ReplayCheck, ReplayError};
use crate::source::redis::endpoint::Link;

/// The most replicas an insert can wait for.
const MAX_REPLICAS: u32 = 100;

/// `WAIT replicas timeout_ms` after each insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaitForReplicas {
    pub(super) replicas: u32,
    pub(super) timeout_ms: i64,
}

impl WaitForReplicas {
    /// Checks the setting; returns how much longer than `io_timeout` a read may then take.
    pub(super) fn check(&self) -> Result<Duration, ConfigError> {
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

/// `SET key 1 NX PX lifetime_ms`, and with `wait`, `WAIT replicas timeout` on the node that
/// took the write: in the same round trip on one server, on the key's primary in a cluster
/// (only after a fresh insert: a replayed one is refused anyway). Returns the `SET` reply and
/// the number of replicas `WAIT` counted.
pub(super) fn set_nx(
    connection: &mut Link,
    key: &str,
    lifetime_ms: i64,
    wait: Option<&WaitForReplicas>,
) -> RedisResult<(Value, Option<i64>)> {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(1).arg("NX").arg("PX").arg(lifetime_ms);
    let Some(wait) = wait else {
        return Ok((set.query(connection.as_dyn())?, None));
    };
    let mut wait_cmd = redis::cmd("WAIT");
    wait_cmd.arg(wait.replicas).arg(wait.timeout_ms);
    match connection {
        Link::Single(connection) => {
            let replies: Vec<Value> = redis::pipe()
                .add_command(set)
                .add_command(wait_cmd)
                .query(connection)?;
            let mut replies = replies.into_iter();
            let set_reply = replies.next().unwrap_or(Value::Nil);
            let acked = replies.next().map(count).transpose()?;
            Ok((set_reply, acked))
        }
        Link::Cluster(connection) => {
            let set_reply: Value = set.query(connection.as_mut())?;
            if set_reply == Value::Nil {
                return Ok((set_reply, None));
            }
            // WAIT names no key: sent to the primary of the key's slot, the node that took the
            // write over this same cluster connection.
            let route = Route::with_key(key, SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            let acked = count(connection.route_command(&wait_cmd, routing)?)?;
            Ok((set_reply, Some(acked)))
        }
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
pub(super) fn enough(
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
    fn only_an_integer_counts() {
        assert_eq!(count(Value::Int(2)).ok(), Some(2));
        assert!(count(Value::Okay).is_err());
        assert!(count(Value::Nil).is_err());
    }
}
