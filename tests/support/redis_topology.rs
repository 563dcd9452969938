//! Throwaway replicated Redis deployments for failover tests, started from the `redis-server`,
//! `redis-sentinel` and `redis-cli` binaries on loopback ports in a fresh directory, all killed
//! on drop:
//!
//! - [`SentinelTopology`]: a primary, one replica and three sentinels (`mymaster`, quorum 2);
//! - [`ClusterTopology`]: three primaries with one replica each.
//!
//! Include it with `#[path = "support/redis_topology.rs"] mod redis_topology;`.
//!
//! When a binary is missing, `start_or_skip` prints a loud line and returns `None`; with the `CI`
//! variable set (non-empty) it panics instead, so a CI run never passes without these tests.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Client, Connection};

#[path = "processes.rs"]
pub mod processes;

/// What to install for the binaries these deployments need.
const INSTALL: &str = "redis-server, redis-sentinel and redis-tools \
     (apt-get install redis-server redis-sentinel redis-tools)";

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "mymaster";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// One `redis-server` or `redis-sentinel` process on a loopback port.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
    frozen: bool,
}

impl Node {
    fn spawn(binary: &str, args: &[String], port: u16) -> Self {
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("{binary} starts: {err}"));
        Self {
            port,
            child: Some(child),
            frozen: false,
        }
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `true` until [`kill`](Self::kill), and while not [frozen](Self::freeze).
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !self.frozen
    }

    /// SIGKILL, like a crash, and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGSTOP` (`true`) or `SIGCONT` (`false`): a node that hangs without dying. A frozen
    /// node does not count as running: nothing asks it anything.
    pub fn freeze(&mut self, frozen: bool) {
        self.frozen = frozen;
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            assert!(status.is_ok_and(|status| status.success()), "kill {signal}");
        }
    }

    /// A fresh admin connection with generous timeouts; `None` when the node does not answer.
    pub fn admin(&self) -> Option<Connection> {
        let client = Client::open(self.url()).ok()?;
        let connection = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        connection
            .set_read_timeout(Some(Duration::from_secs(2)))
            .ok()?;
        connection
            .set_write_timeout(Some(Duration::from_secs(2)))
            .ok()?;
        Some(connection)
    }

    /// Runs `command args...` on the node; `None` on any failure.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Option<T> {
        let (name, rest) = args.split_first()?;
        let mut cmd = redis::cmd(name);
        for arg in rest {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.admin()?).ok()
    }

    /// `INFO section` as text; empty when the node does not answer.
    pub fn info(&self, section: &str) -> String {
        self.query::<String>(&["INFO", section]).unwrap_or_default()
    }

    /// On a cluster primary: a write to a key it serves (the first of a few names it does not
    /// answer with `MOVED`), acknowledged by one replica within a second.
    fn write_acknowledged(&self) -> bool {
        let Some(mut connection) = self.admin() else {
            return false;
        };
        for n in 0..200 {
            let written = redis::cmd("SET")
                .arg(format!("probe-{n}"))
                .arg(1)
                .arg("PX")
                .arg(10_000)
                .query::<redis::Value>(&mut connection);
            if written.is_ok() {
                return redis::cmd("WAIT")
                    .arg(1)
                    .arg(1_000)
                    .query::<i64>(&mut connection)
                    .is_ok_and(|acked| acked >= 1);
            }
        }
        false
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on right now (bound, then released).
fn free_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if taken.insert(port) {
            return port;
        }
    }
}

/// Arguments of a data node: loopback only, no persistence, files in `dir`.
fn server_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.to_string_lossy(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// Polls `ready` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if ready() {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        thread::sleep(POLL);
    }
}

/// A `key:value` line of an `INFO` or `CLUSTER INFO` text.
fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value)
}

/// A primary, one replica and three sentinels monitoring them as [`MASTER_NAME`] (quorum 2,
/// `down-after-milliseconds` 1000, `failover-timeout` 3000).
pub struct SentinelTopology {
    dir: PathBuf,
    /// The data nodes: the first one starts as the primary.
    pub servers: Vec<Node>,
    pub sentinels: Vec<Node>,
}

impl SentinelTopology {
    /// Starts the deployment and waits until it is ready, or explains loudly why the calling
    /// test cannot run.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        processes::binaries_or_skip(test, &["redis-server", "redis-sentinel"], INSTALL)
            .then(Self::start)
    }

    /// Starts the deployment and waits until every sentinel reports the primary, knows the
    /// replica and the other sentinels, and the replica is in sync.
    pub fn start() -> Self {
        let dir = processes::fresh_dir("sentinel");
        let mut taken = HashSet::new();
        let primary_port = free_port(&mut taken);
        let replica_port = free_port(&mut taken);
        let primary_dir = dir.join("primary");
        let replica_dir = dir.join("replica");
        for node_dir in [&primary_dir, &replica_dir] {
            std::fs::create_dir(node_dir).expect("a node dir");
        }
        let primary = Node::spawn(
            "redis-server",
            &server_args(primary_port, &primary_dir),
            primary_port,
        );
        let mut replica_args = server_args(replica_port, &replica_dir);
        replica_args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            primary_port.to_string(),
        ]);
        let replica = Node::spawn("redis-server", &replica_args, replica_port);
        let mut topology = Self {
            dir: dir.clone(),
            servers: vec![primary, replica],
            sentinels: Vec::new(),
        };
        topology.wait_replica_in_sync(1);
        for index in 0..3 {
            let port = free_port(&mut taken);
            let config = dir.join(format!("sentinel-{index}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 3000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display()
            );
            std::fs::write(&config, text).expect("a sentinel config");
            let args = [config.to_string_lossy().into_owned()];
            topology
                .sentinels
                .push(Node::spawn("redis-sentinel", &args, port));
        }
        wait_until("the sentinels see the deployment", READY_TIMEOUT, || {
            topology.sentinels.iter().all(|sentinel| {
                let master = sentinel.query::<Vec<String>>(&[
                    "SENTINEL",
                    "get-master-addr-by-name",
                    MASTER_NAME,
                ]);
                let replicas = sentinel
                    .query::<Vec<redis::Value>>(&["SENTINEL", "replicas", MASTER_NAME])
                    .map_or(0, |replicas| replicas.len());
                let peers = sentinel
                    .query::<Vec<redis::Value>>(&["SENTINEL", "sentinels", MASTER_NAME])
                    .map_or(0, |peers| peers.len());
                master.is_some_and(|addr| addr.get(1) == Some(&primary_port.to_string()))
                    && replicas == 1
                    && peers == 2
            })
        });
        topology
    }

    /// The sentinels' addresses, for `RedisEndpoint::sentinel`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// The port the sentinels report for the primary (the first one that answers).
    pub fn reported_primary(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|sentinel| {
            sentinel
                .query::<Vec<String>>(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME])?
                .get(1)?
                .parse()
                .ok()
        })
    }

    /// The data node that currently is the primary (by its own `INFO replication`).
    pub fn primary_index(&self) -> Option<usize> {
        self.servers.iter().position(|server| {
            server.is_running() && field(&server.info("replication"), "role") == Some("master")
        })
    }

    /// SIGKILLs the current primary; returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let index = self.primary_index().expect("a primary is running");
        self.servers[index].kill();
        self.servers[index].port
    }

    /// Waits until every sentinel reports a primary other than `old_port` and that node
    /// answers as a primary; returns how long that took.
    pub fn wait_failover(&self, old_port: u16, timeout: Duration) -> Duration {
        wait_until("the sentinels promote the replica", timeout, || {
            self.failed_over(old_port)
        })
    }

    /// `true` once every sentinel reports a primary other than `old_port` and that node
    /// answers as a primary (one look, no waiting).
    pub fn failed_over(&self, old_port: u16) -> bool {
        let reported: Vec<Option<u16>> = self
            .sentinels
            .iter()
            .map(|sentinel| {
                sentinel
                    .query::<Vec<String>>(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME])?
                    .get(1)?
                    .parse()
                    .ok()
            })
            .collect();
        let Some(Some(new_port)) = reported.first().copied() else {
            return false;
        };
        new_port != old_port
            && reported.iter().all(|port| *port == Some(new_port))
            && self.servers.iter().any(|server| {
                server.port == new_port
                    && server.is_running()
                    && field(&server.info("replication"), "role") == Some("master")
            })
    }

    /// Waits until the primary reports `count` replicas online with their link up.
    fn wait_replica_in_sync(&mut self, count: usize) {
        let primary_port = self.servers[0].port;
        wait_until("the replica syncs", READY_TIMEOUT, || {
            for server in &mut self.servers {
                if let Some(status) = server.exited() {
                    panic!("redis-server on port {} exited: {status}", server.port);
                }
            }
            let primary = &self.servers[0];
            let info = primary.info("replication");
            let online = (0..count).all(|index| {
                field(&info, &format!("slave{index}")).is_some_and(|line| line.contains("online"))
            });
            online
                && self.servers[1..].iter().all(|replica| {
                    let info = replica.info("replication");
                    field(&info, "master_link_status") == Some("up")
                        && field(&info, "master_port") == Some(&primary_port.to_string())
                })
        });
    }
}

impl Drop for SentinelTopology {
    fn drop(&mut self) {
        for node in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three primaries with one replica each (`cluster-node-timeout` 1000 ms).
pub struct ClusterTopology {
    dir: PathBuf,
    pub nodes: Vec<Node>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub port: u16,
    pub is_primary: bool,
    pub failed: bool,
    /// Inclusive slot ranges served (primaries only).
    pub slots: Vec<(u16, u16)>,
}

impl ClusterTopology {
    /// Starts the cluster and waits until it is ready, or explains loudly why the calling test
    /// cannot run.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        processes::binaries_or_skip(test, &["redis-server", "redis-cli"], INSTALL).then(Self::start)
    }

    /// Starts six nodes, creates the cluster with `redis-cli --cluster create`, and waits
    /// until every node reports `cluster_state:ok` and knows all six.
    pub fn start() -> Self {
        let dir = processes::fresh_dir("cluster");
        let mut taken = HashSet::new();
        let mut nodes = Vec::new();
        for index in 0..6 {
            let port = free_port(&mut taken);
            let bus_port = free_port(&mut taken);
            let node_dir = dir.join(format!("node-{index}"));
            std::fs::create_dir(&node_dir).expect("a node dir");
            let mut args = server_args(port, &node_dir);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                    &bus_port.to_string(),
                    "--cluster-replica-validity-factor",
                    "0",
                ]
                .iter()
                .map(|arg| (*arg).to_owned()),
            );
            nodes.push(Node::spawn("redis-server", &args, port));
        }
        let topology = Self { dir, nodes };
        wait_until("the cluster nodes answer", READY_TIMEOUT, || {
            topology
                .nodes
                .iter()
                .all(|node| node.query::<String>(&["PING"]).is_some())
        });
        let addresses: Vec<String> = topology
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        wait_until("the cluster is ok on every node", READY_TIMEOUT, || {
            topology.nodes.iter().all(|node| {
                let info = node
                    .query::<String>(&["CLUSTER", "INFO"])
                    .unwrap_or_default();
                field(&info, "cluster_state") == Some("ok")
                    && field(&info, "cluster_known_nodes") == Some("6")
                    && field(&info, "cluster_slots_ok") == Some("16384")
            }) && topology.replicas_in_sync()
        });
        topology
    }

    /// Every node's address, for `RedisEndpoint::cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// `CLUSTER NODES` as seen by the first running node that answers.
    pub fn cluster_nodes(&self) -> Vec<ClusterNode> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .find_map(|node| node.query::<String>(&["CLUSTER", "NODES"]))
            .map(|text| text.lines().filter_map(parse_cluster_node).collect())
            .unwrap_or_default()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .find_map(|node| node.query::<u16>(&["CLUSTER", "KEYSLOT", key]))
            .expect("a node answers CLUSTER KEYSLOT")
    }

    /// The port of the healthy primary serving `slot`, if any.
    pub fn primary_of_slot(&self, slot: u16) -> Option<u16> {
        self.cluster_nodes()
            .into_iter()
            .find(|node| {
                node.is_primary
                    && !node.failed
                    && node
                        .slots
                        .iter()
                        .any(|(from, to)| (*from..=*to).contains(&slot))
            })
            .map(|node| node.port)
    }

    /// SIGKILLs the primary serving `key`'s slot; returns its port.
    pub fn kill_primary_of(&mut self, key: &str) -> u16 {
        let slot = self.keyslot(key);
        let port = self
            .primary_of_slot(slot)
            .expect("a primary serves the slot");
        self.kill_port(port);
        port
    }

    /// SIGKILLs the node on `port`.
    pub fn kill_port(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            node.kill();
        }
    }

    /// Waits until a node other than `old_port` serves `slot` as primary and every running
    /// node reports `cluster_state:ok`; returns how long that took.
    pub fn wait_failover(&self, slot: u16, old_port: u16, timeout: Duration) -> Duration {
        wait_until("the cluster promotes the replica", timeout, || {
            self.failed_over(slot, old_port)
        })
    }

    /// `true` once a node other than `old_port` serves `slot` as primary and every running
    /// node reports `cluster_state:ok` (one look, no waiting).
    pub fn failed_over(&self, slot: u16, old_port: u16) -> bool {
        self.primary_of_slot(slot)
            .is_some_and(|port| port != old_port)
            && self
                .nodes
                .iter()
                .filter(|node| node.is_running())
                .all(|node| {
                    let info = node
                        .query::<String>(&["CLUSTER", "INFO"])
                        .unwrap_or_default();
                    field(&info, "cluster_state") == Some("ok")
                })
    }

    /// `true` when every replica reports its link to its primary up, and every primary sees
    /// a write of its own acknowledged by a replica (`WAIT 1`).
    fn replicas_in_sync(&self) -> bool {
        let (replicas, primaries): (Vec<&Node>, Vec<&Node>) = self
            .nodes
            .iter()
            .partition(|node| field(&node.info("replication"), "role") == Some("slave"));
        replicas.len() == 3
            && replicas
                .iter()
                .all(|node| field(&node.info("replication"), "master_link_status") == Some("up"))
            && primaries.iter().all(|node| node.write_acknowledged())
    }
}

impl Drop for ClusterTopology {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `id host:port@bus flags primary ping pong epoch link slots...`
fn parse_cluster_node(line: &str) -> Option<ClusterNode> {
    let mut parts = line.split_whitespace();
    let _id = parts.next()?;
    let address = parts.next()?;
    let flags = parts.next()?;
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags: Vec<&str> = flags.split(',').collect();
    let slots = parts
        .skip(5)
        .filter(|range| !range.starts_with('['))
        .filter_map(|range| match range.split_once('-') {
            Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
            None => {
                let slot = range.parse().ok()?;
                Some((slot, slot))
            }
        })
        .collect();
    Some(ClusterNode {
        port,
        is_primary: flags.contains(&"master"),
        failed: flags.iter().any(|flag| *flag == "fail" || *flag == "fail?"),
        slots,
    })
}
