//! The Redis deployment of a run: one `redis-server` (`procs::Redis`, started again after a
//! kill, from its append-only file or empty), or one of the replicated deployments of `tests/support/redis_topology.rs`, the code
//! the failover tests use: a primary with one replica and three sentinels, or a Redis Cluster
//! of three primaries with one replica each. After a kill, a replicated deployment fails over
//! on its own; nothing is restarted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::procs::Redis;
use crate::redis_topology::{ClusterTopology, MASTER_NAME, SentinelTopology};

/// How often the run looks whether the deployment has failed over.
const POLL: Duration = Duration::from_millis(50);

/// Which deployment the replicas share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Sentinel,
    Cluster,
}

impl Topology {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "standalone" => Some(Self::Standalone),
            "sentinel" => Some(Self::Sentinel),
            "cluster" => Some(Self::Cluster),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Sentinel => "sentinel",
            Self::Cluster => "cluster",
        }
    }

    /// The binaries the replicated deployments start, besides `redis-server` (found on `PATH`,
    /// as the failover tests find them).
    pub fn extra_binaries(self) -> &'static [&'static str] {
        match self {
            Self::Standalone => &[],
            Self::Sentinel => &["redis-sentinel"],
            Self::Cluster => &["redis-cli"],
        }
    }

    /// What follows a kill, for the summary.
    pub fn recovery(self, durable: bool) -> &'static str {
        match self {
            Self::Standalone if durable => "restarted from its append-only file",
            Self::Standalone => "restarted empty",
            Self::Sentinel | Self::Cluster => "replica promoted",
        }
    }
}

/// The running deployment; every process in it is killed when it is dropped.
pub enum Deployment {
    Standalone(Redis),
    Sentinel(SentinelTopology),
    Cluster(ClusterTopology),
}

/// What a kill hit, and when.
pub struct Kill {
    /// Since the start of the load, read just before the signal.
    pub at: Duration,
    /// The port of the node killed.
    pub port: u16,
    /// In a cluster: the key whose slot's primary was killed, and that slot.
    pub key: Option<(String, u16)>,
}

impl Deployment {
    /// Starts `topology` and waits until it is ready (blocking: seconds for a cluster).
    /// `durable` (standalone only): Redis keeps every acknowledged write across a restart.
    pub fn start(
        topology: Topology,
        redis_server: &Path,
        dir: &Path,
        durable: bool,
    ) -> Result<Self, String> {
        match topology {
            Topology::Standalone => Redis::start(redis_server, dir, durable).map(Self::Standalone),
            // The topology code panics when a deployment does not come up; the panic message,
            // printed by the default hook, says why.
            Topology::Sentinel => catch_unwind(SentinelTopology::start)
                .map(Self::Sentinel)
                .map_err(|_| "the Sentinel deployment did not start (see above)".to_owned()),
            Topology::Cluster => catch_unwind(ClusterTopology::start)
                .map(Self::Cluster)
                .map_err(|_| "the Redis Cluster did not start (see above)".to_owned()),
        }
    }

    /// The server options that point a replica at this deployment.
    pub fn server_args(&self) -> Vec<String> {
        match self {
            Self::Standalone(redis) => vec!["--redis".into(), redis.url()],
            Self::Sentinel(topology) => vec![
                "--redis-sentinel".into(),
                topology.sentinel_urls().join(","),
                "--redis-master".into(),
                MASTER_NAME.into(),
            ],
            Self::Cluster(topology) => vec!["--redis-cluster".into(), topology.urls().join(",")],
        }
    }

    /// SIGKILLs Redis: the server, the Sentinel primary, or the cluster primary serving
    /// `key_now()`'s slot (the key is taken at the moment of the kill).
    pub fn kill(
        &mut self,
        start: Instant,
        key_now: impl FnOnce() -> String,
    ) -> Result<Kill, String> {
        match self {
            Self::Standalone(redis) => {
                let at = start.elapsed();
                redis.kill();
                Ok(Kill {
                    at,
                    port: redis.port(),
                    key: None,
                })
            }
            Self::Sentinel(topology) => {
                let index = topology
                    .primary_index()
                    .ok_or("no data node answers as the primary")?;
                let node = &mut topology.servers[index];
                let at = start.elapsed();
                node.kill();
                Ok(Kill {
                    at,
                    port: node.port,
                    key: None,
                })
            }
            Self::Cluster(topology) => {
                let key = key_now();
                let slot = catch_unwind(AssertUnwindSafe(|| topology.keyslot(&key)))
                    .map_err(|_| format!("no cluster node computes the slot of {key}"))?;
                let port = topology
                    .primary_of_slot(slot)
                    .ok_or_else(|| format!("no healthy primary serves slot {slot}"))?;
                let at = start.elapsed();
                topology.kill_port(port);
                Ok(Kill {
                    at,
                    port,
                    key: Some((key, slot)),
                })
            }
        }
    }

    /// Brings Redis back after `kill`: the standalone server is started again, empty, on the
    /// same port after `down`; a replicated deployment is watched until it has failed over,
    /// until `give_up`. Returns when that happened (since `start`), `None` if it did not.
    pub fn recover(
        &mut self,
        kill: &Kill,
        down: Duration,
        start: Instant,
        give_up: Instant,
    ) -> Result<Option<Duration>, String> {
        let failed_over = |deployment: &Self| match deployment {
            Self::Standalone(_) => true,
            Self::Sentinel(topology) => topology.failed_over(kill.port),
            Self::Cluster(topology) => kill
                .key
                .as_ref()
                .is_some_and(|(_, slot)| topology.failed_over(*slot, kill.port)),
        };
        if let Self::Standalone(redis) = self {
            thread::sleep(down);
            redis.restart()?;
            return Ok(Some(start.elapsed()));
        }
        loop {
            if failed_over(self) {
                return Ok(Some(start.elapsed()));
            }
            if Instant::now() >= give_up {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// For each Redis key, whether the deployment holds it now (on the primary that serves it);
    /// `None` when that could not be asked.
    pub fn holds(&self, keys: &[String]) -> Vec<Option<bool>> {
        match self {
            Self::Standalone(redis) => {
                let connection = redis::Client::open(redis.url()).ok().and_then(|client| {
                    client
                        .get_connection_with_timeout(Duration::from_secs(1))
                        .ok()
                });
                let Some(mut connection) = connection else {
                    return vec![None; keys.len()];
                };
                keys.iter()
                    .map(|key| {
                        redis::cmd("EXISTS")
                            .arg(key)
                            .query::<i64>(&mut connection)
                            .ok()
                            .map(|n| n > 0)
                    })
                    .collect()
            }
            Self::Sentinel(topology) => {
                let primary = topology
                    .primary_index()
                    .map(|index| &topology.servers[index]);
                keys.iter()
                    .map(|key| primary?.query::<i64>(&["EXISTS", key]).map(|n| n > 0))
                    .collect()
            }
            Self::Cluster(topology) => keys
                .iter()
                .map(|key| {
                    let slot = catch_unwind(AssertUnwindSafe(|| topology.keyslot(key))).ok()?;
                    let port = topology.primary_of_slot(slot)?;
                    let node = topology.nodes.iter().find(|node| node.port == port)?;
                    node.query::<i64>(&["EXISTS", key]).map(|n| n > 0)
                })
                .collect(),
        }
    }
}

/// The Redis key of the nonce that the servers' `label` source holds for the current window:
/// `{prefix}:{label}:nonce:{window}`, windows of `rotation_s` seconds aligned on the epoch.
pub fn current_nonce_key(prefix: &str, label: &str, rotation_s: u32) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let window = now / u64::from(rotation_s.max(1));
    format!("{prefix}:{label}:nonce:{window}")
}
