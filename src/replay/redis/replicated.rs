//! The replay insert on any deployment, and the optional `WAIT` for replicas after it.

use std::time::Duration;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
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

/// `SET key 1 NX PX lifetime_ms`, and with `wait`, `WAIT replicas timeout` on the node that
/// took the write: in the same round trip on one server, on the key's primary in a cluster
/// (only after a fresh insert: a replayed one is refused anyway). Returns the `SET` reply and
/// the number of replicas `WAIT` counted.
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
    match connection {
        Link::Single(connection) => split(wait.after(set).query(connection)?),
        Link::Cluster(connection) => {
            let set_reply: Value = set.query(connection.as_mut())?;
            if set_reply == Value::Nil {
                return Ok((set_reply, None));
            }
            let acked = connection
                .route_command(&wait.command(), primary_of(key))?
                .extract_error()?;
            Ok((set_reply, Some(count(acked)?)))
        }
    }
}

/// [`set_nx`] on an async connection.
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
    match connection {
        AsyncLink::Single(connection) => split(wait.after(set).query_async(connection).await?),
        AsyncLink::Cluster(connection) => {
            let set_reply: Value = set.query_async(connection).await?;
            if set_reply == Value::Nil {
                return Ok((set_reply, None));
            }
            let acked = connection
                .route_command(wait.command(), primary_of(key))
                .await?
                .extract_error()?;
            Ok((set_reply, Some(count(acked)?)))
        }
    }
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

    /// `command` and then `WAIT`, in one round trip to one server.
    fn after(&self, command: Cmd) -> Pipeline {
        let mut pipeline = redis::pipe();
        pipeline.add_command(command).add_command(self.command());
        pipeline
    }
}

/// `WAIT` names no key: it goes to the primary of the key's slot, the node that took the write
/// over the same cluster connection.
fn primary_of(key: &str) -> RoutingInfo {
    let route = Route::with_key(key, SlotAddr::Master);
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route))
}

/// The replies to the `SET` and `WAIT` pipeline.
fn split(replies: Vec<Value>) -> RedisResult<(Value, Option<i64>)> {
    let mut replies = replies.into_iter();
    let set_reply = replies.next().unwrap_or(Value::Nil);
    let acked = replies.next().map(count).transpose()?;
    Ok((set_reply, acked))
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
    fn only_an_integer_counts() {
        assert_eq!(count(Value::Int(2)).ok(), Some(2));
        assert!(count(Value::Okay).is_err());
        assert!(count(Value::Nil).is_err());
    }
}
