//! A multi-process soak: a Redis deployment, three replicas of the example server sharing it,
//! and 32 DPoP clients whose requests a simulated load balancer spreads round-robin across the
//! replicas.
//!
//! ```text
//! cargo build --release --all-features --example server --example soak
//! cargo run --release --all-features --example soak -- --json soak-redis.json
//! cargo run --release --all-features --example soak -- --derived
//! cargo run --release --all-features --example soak -- --kill-redis
//! cargo run --release --all-features --example soak -- --topology sentinel --kill-redis
//! cargo run --release --all-features --example soak -- --topology cluster --kill-redis
//! ```
//!
//! `.ci/soak` runs those, and the Sentinel and Cluster runs without a kill. Everything the soak
//! talks to, it starts itself, on loopback, without persistence, in temporary directories:
//!
//! - `--topology standalone` (the default): one `redis-server` on a free port (`--redis-server`
//!   names the binary); the replicas get `--redis URL`;
//! - `--topology sentinel`: a primary, one replica and three sentinels (master name
//!   `mymaster`, quorum 2, `down-after-milliseconds` 1000); the replicas get
//!   `--redis-sentinel URL,URL,URL --redis-master mymaster`;
//! - `--topology cluster`: a Redis Cluster of three primaries with one replica each
//!   (`cluster-node-timeout` 1000); the replicas get `--redis-cluster URL,...` with all six
//!   nodes.
//!
//! The replicated deployments are those of the failover tests (`tests/support/redis_topology.rs`,
//! included here), started from `redis-server`, `redis-sentinel` and `redis-cli` on `PATH`. The
//! replicas also get `--addr 127.0.0.1:0 --rotation 2 --public-url http://soak-lb.invalid` (the
//! public URL is only named in proofs; nothing resolves it), a shared `--token-secret`, and with
//! `--derived` a shared `--derived-secret`.
//!
//! Each client loops until the deadline: a token request (`client_credentials`, `Basic`
//! authentication of `demo-client`), then `--resources` resource requests with the DPoP-bound
//! token. Every request goes to the next replica. A `use_dpop_nonce` answer (read by
//! `dpop_nonce::client::NonceStore::observe`) is retried with the new nonce, up to
//! `--max-attempts` requests per dance, so a dance needing more than one retry is seen, not
//! hidden. Every `--replay-every`th accepted proof is sent again, unchanged, to another
//! replica; every `--unknown-every`th dance is preceded by a proof carrying a nonce no server
//! issued. Both must be refused.
//!
//! The run fails (exit status 1) when a replayed proof or an unknown nonce is accepted, when a
//! dance outside the failover window takes more than one retry or fails, when nothing
//! succeeds, or, with `--kill-redis`, when the deployment does not recover, when no dance
//! starts after the failover bound, or when the failover window exceeds `--failover-bound`.
//! Exit status 2 means the run could not be set up. A summary is printed, and written as JSON
//! with `--json PATH`.
//!
//! With `--kill-redis`, Redis is killed (SIGKILL) at `--kill-at` seconds (default: half the
//! duration standalone, a third with Sentinel or Cluster, whose failovers take longer):
//!
//! - standalone: the server, started again on the same port and files `--redis-down` seconds
//!   (default 1) later. It runs with an append-only file and `appendfsync always` (the
//!   configuration the crate's docs ask of a replay cache's Redis), so the restart keeps every
//!   write it acknowledged; `--no-persistence` runs it without, so the restart comes back
//!   empty;
//! - Sentinel: the primary; the sentinels promote the replica;
//! - Cluster: the primary serving the slot of the authorization server's nonce key for the
//!   current window (`dpop-demo:as:nonce:{window}`); the cluster promotes its replica.
//!
//! The failover window is the time from the signal to the end of the last dance that needed
//! more than one retry or failed; it must stay within `--failover-bound`. Its default covers
//! the outage and the replay cache's longest reconnect back-off (2 s), with slack for a loaded
//! two-core machine: standalone, the down time plus 4 s; Sentinel and Cluster, 7 s (failure
//! detection after 1 s, a promotion within about 2 s, then up to 2 s of back-off before the
//! replicas reconnect). Dances overlapping `[kill, kill + bound]` are exempt from the
//! one-retry and no-failure checks, and none of the others is; the run must last past
//! `kill + bound` by at least a second, so that the recovery is seen.
//!
//! Each client also sends the last proof it had accepted before the kill once more, after the
//! recovery and its first dance that passed since (again, up to five sends, while the answer
//! is that the replay cache could not be reached), and at the end the run asks Redis whether
//! that proof's `jti` is still recorded. Both are reported (`across_restart`,
//! `jti_before_kill`). On a durable standalone server both are checked: no such proof may be
//! accepted again, and no such `jti` may be gone. Otherwise they are not: a Redis restarted
//! empty (`--no-persistence`) has forgotten every `jti`, and a primary acknowledges an insert
//! before its replica has it, so a failover can lose the last inserts (the documented limit of
//! a replay cache that does not wait for replicas).
//!
//! When a Redis binary the topology needs is missing, the soak says so loudly and exits 0,
//! unless the `CI` variable is set (non-empty): then it fails.

mod dance;
mod deploy;
mod http;
mod procs;
#[path = "../../tests/support/redis_topology.rs"]
mod redis_topology;
mod report;

use std::collections::HashMap;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::TryRngCore as _;
use rand::rngs::OsRng;

use crate::dance::{Client, ClientLog, Plan};
use crate::deploy::{Deployment, Topology};
use crate::http::Balancer;
use crate::procs::{Replica, TempDir};
use crate::report::{Failover, Setup};

/// The public URL of the replicas, behind the simulated load balancer. Never resolved.
const PUBLIC_URL: &str = "http://soak-lb.invalid";
const PUBLIC_HOST: &str = "soak-lb.invalid";

/// The prefix of the example server's Redis keys (`REDIS_PREFIX` in its `stores.rs`).
const REDIS_PREFIX: &str = "dpop-demo";
/// The label of the authorization server's nonce source, whose key a cluster kill aims at.
const AS_LABEL: &str = "as";

/// The failover bound past the time a standalone Redis is down: the replay cache's longest
/// reconnect back-off (2 s by default), a nonce refresh, and slack for a loaded machine.
const DEFAULT_FAILOVER_MARGIN: Duration = Duration::from_secs(4);
/// The default failover bound of a Sentinel or Cluster run: detection (the sentinels'
/// `down-after-milliseconds`, the cluster's `cluster-node-timeout`: 1 s), the promotion (about
/// 2 s: agreement, election, the replica's election delay), the replay cache's longest
/// reconnect back-off (2 s) during which a replica that failed goes on refusing, and 2 s of
/// slack for a loaded machine.
const REPLICATED_FAILOVER_BOUND: Duration = Duration::from_secs(7);
/// How long past the deadline a replicated deployment is watched for its failover.
const RECOVERY_GRACE: Duration = Duration::from_secs(10);
/// The part of the run that must follow `kill + bound`, so that the recovery is seen.
const AFTER_BOUND: Duration = Duration::from_secs(1);

const USAGE: &str = "\
usage: soak [--server PATH] [--topology standalone|sentinel|cluster]
            [--redis-server PATH] [--replicas N] [--clients N]
            [--duration SECONDS] [--rotation SECONDS] [--resources N]
            [--replay-every N] [--unknown-every N] [--max-attempts N]
            [--derived] [--memory] [--kill-redis] [--kill-at SECONDS]
            [--redis-down SECONDS] [--no-persistence] [--failover-bound SECONDS]
            [--server-arg ARG]... [--json PATH]";

struct Args {
    server: Option<PathBuf>,
    topology: Topology,
    /// Standalone only; the replicated deployments use the binaries on `PATH`.
    redis_server: Option<PathBuf>,
    replicas: usize,
    clients: usize,
    duration: Duration,
    rotation: u32,
    resources: u32,
    replay_every: u64,
    unknown_every: u64,
    max_attempts: u32,
    derived: bool,
    memory: bool,
    kill_redis: bool,
    kill_at: Option<Duration>,
    /// Standalone only.
    redis_down: Option<Duration>,
    /// Standalone only: Redis without its append-only file, so a restart comes back empty.
    no_persistence: bool,
    failover_bound: Option<Duration>,
    server_args: Vec<String>,
    json: Option<PathBuf>,
}

impl Args {
    fn redis_down(&self) -> Duration {
        self.redis_down.unwrap_or(Duration::from_secs(1))
    }

    fn kill_at(&self) -> Duration {
        self.kill_at.unwrap_or(match self.topology {
            Topology::Standalone => self.duration / 2,
            Topology::Sentinel | Topology::Cluster => self.duration / 3,
        })
    }

    fn failover_bound(&self) -> Duration {
        self.failover_bound.unwrap_or(match self.topology {
            Topology::Standalone => self.redis_down() + DEFAULT_FAILOVER_MARGIN,
            Topology::Sentinel | Topology::Cluster => REPLICATED_FAILOVER_BOUND,
        })
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: None,
        topology: Topology::Standalone,
        redis_server: None,
        replicas: 3,
        clients: 32,
        duration: Duration::from_secs(15),
        rotation: 2,
        resources: 4,
        replay_every: 20,
        unknown_every: 20,
        max_attempts: 4,
        derived: false,
        memory: false,
        kill_redis: false,
        kill_at: None,
        redis_down: None,
        no_persistence: false,
        failover_bound: None,
        server_args: Vec::new(),
        json: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--derived" => args.derived = true,
            "--memory" => args.memory = true,
            "--kill-redis" => args.kill_redis = true,
            "--no-persistence" => args.no_persistence = true,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            _ => {
                let value = argv
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                set_option(&mut args, &flag, value)?;
            }
        }
    }
    if args.memory && (args.derived || args.kill_redis || args.topology != Topology::Standalone) {
        return Err("--memory runs without Redis: no --derived, --kill-redis or --topology".into());
    }
    if args.topology != Topology::Standalone
        && (args.redis_server.is_some() || args.redis_down.is_some() || args.no_persistence)
    {
        return Err(format!(
            "--redis-server, --redis-down and --no-persistence are for the standalone topology; {} runs the \
             Redis binaries on PATH and fails over instead of restarting",
            args.topology.name()
        ));
    }
    if args.kill_redis && args.kill_at() + args.failover_bound() + AFTER_BOUND > args.duration {
        return Err(format!(
            "--duration {:.1} s is too short to see the recovery: the kill at {:.1} s plus the \
             failover bound of {:.1} s must end at least {} s before the end",
            args.duration.as_secs_f64(),
            args.kill_at().as_secs_f64(),
            args.failover_bound().as_secs_f64(),
            AFTER_BOUND.as_secs()
        ));
    }
    if args.rotation == 0 {
        return Err("--rotation must be positive".to_owned());
    }
    if args.replicas == 0 || args.clients == 0 || args.max_attempts < 2 {
        return Err("--replicas and --clients must be positive, --max-attempts at least 2".into());
    }
    Ok(args)
}

fn set_option(args: &mut Args, flag: &str, value: String) -> Result<(), String> {
    fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("{flag} {value}: expected a number\n{USAGE}"))
    }
    fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
        let seconds: f64 = number(flag, value)?;
        Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|d| *d <= Duration::from_secs(3600))
            .ok_or_else(|| format!("{flag} {value}: expected 0 to 3600 seconds"))
    }
    match flag {
        "--server" => args.server = Some(PathBuf::from(value)),
        "--topology" => {
            args.topology = Topology::parse(&value).ok_or_else(|| {
                format!("--topology {value}: expected standalone, sentinel or cluster")
            })?;
        }
        "--redis-server" => args.redis_server = Some(PathBuf::from(value)),
        "--replicas" => args.replicas = number(flag, &value)?,
        "--clients" => args.clients = number(flag, &value)?,
        "--duration" => args.duration = seconds(flag, &value)?,
        "--rotation" => args.rotation = number(flag, &value)?,
        "--resources" => args.resources = number(flag, &value)?,
        "--replay-every" => args.replay_every = number(flag, &value)?,
        "--unknown-every" => args.unknown_every = number(flag, &value)?,
        "--max-attempts" => args.max_attempts = number(flag, &value)?,
        "--kill-at" => args.kill_at = Some(seconds(flag, &value)?),
        "--redis-down" => args.redis_down = Some(seconds(flag, &value)?),
        "--failover-bound" => args.failover_bound = Some(seconds(flag, &value)?),
        "--server-arg" => args.server_args.push(value),
        "--json" => args.json = Some(PathBuf::from(value)),
        _ => return Err(format!("unknown option {flag}\n{USAGE}")),
    }
    Ok(())
}

/// 32 random bytes as 64 hex digits.
fn random_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|err| format!("OS random: {err}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The server binary: `--server`, else `server` next to this executable (cargo puts every
/// example of a profile in the same directory).
fn server_binary(args: &Args) -> Result<PathBuf, String> {
    let path = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|err| format!("cannot find this executable: {err}"))?
            .with_file_name(format!("server{}", std::env::consts::EXE_SUFFIX)),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no server binary at {}: build it (cargo build --example server with the same \
             profile and features) or pass --server PATH",
            path.display()
        ))
    }
}

fn mode(args: &Args) -> String {
    if args.memory {
        return "memory".to_owned();
    }
    let mut mode = if args.derived {
        "derived+redis"
    } else {
        "redis"
    }
    .to_owned();
    if args.topology != Topology::Standalone {
        mode.push_str(" on ");
        mode.push_str(args.topology.name());
    }
    if args.kill_redis {
        mode.push_str(match args.topology {
            Topology::Standalone if args.no_persistence => ", Redis killed and restarted empty",
            Topology::Standalone => ", Redis killed and restarted from its append-only file",
            Topology::Sentinel | Topology::Cluster => ", primary killed, failed over",
        });
    }
    mode
}

/// The Redis binaries the run needs and cannot find.
fn missing_binaries(args: &Args) -> Vec<String> {
    if args.memory {
        return Vec::new();
    }
    let redis_server = args
        .redis_server
        .clone()
        .unwrap_or_else(|| PathBuf::from("redis-server"));
    std::iter::once(redis_server)
        .chain(args.topology.extra_binaries().iter().map(PathBuf::from))
        .filter(|binary| !redis_topology::processes::available(binary))
        .map(|binary| binary.display().to_string())
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::from(2)
        }
    }
}

/// Sets up, runs and reports; `Ok(false)` when an invariant failed.
async fn run(args: Args) -> Result<bool, String> {
    let server = server_binary(&args)?;
    let missing = missing_binaries(&args);
    if !missing.is_empty() {
        let message = format!(
            "{} not found; install redis-server, redis-sentinel and redis-tools (apt-get \
             install redis-server redis-sentinel redis-tools): the soak did not run",
            missing.join(", ")
        );
        if std::env::var("CI").is_ok_and(|value| !value.is_empty()) {
            return Err(format!("{message} (CI is set, so this is a failure)"));
        }
        eprintln!("\n!!!!! SKIPPED: {message} !!!!!\n");
        return Ok(true);
    }

    let dir = TempDir::new()?;
    let mut deployment = if args.memory {
        None
    } else {
        let topology = args.topology;
        let redis_server = args
            .redis_server
            .clone()
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let path = dir.path().to_owned();
        let no_persistence = args.no_persistence;
        let started = tokio::task::spawn_blocking(move || {
            Deployment::start(topology, &redis_server, &path, !no_persistence)
        })
        .await
        .map_err(|err| format!("the Redis start-up task failed: {err}"))??;
        Some(started)
    };
    let mut server_args: Vec<String> = vec![
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--rotation".into(),
        args.rotation.to_string(),
        "--public-url".into(),
        PUBLIC_URL.into(),
    ];
    if let Some(deployment) = &deployment {
        server_args.extend(deployment.server_args());
        server_args.extend(["--token-secret".into(), random_secret()?]);
        if args.derived {
            server_args.extend(["--derived-secret".into(), random_secret()?]);
        }
    }
    server_args.extend(args.server_args.iter().cloned());
    let mut replicas = Vec::new();
    for index in 0..args.replicas {
        let log = dir.path().join(format!("server-{index}.log"));
        replicas.push(Replica::start(&server, &server_args, log)?);
    }
    let balancer = Arc::new(Balancer::new(replicas.iter().map(|r| r.addr).collect()));

    let start = Instant::now();
    let plan = Arc::new(Plan {
        public_url: PUBLIC_URL.to_owned(),
        host: PUBLIC_HOST.to_owned(),
        resources_per_token: args.resources,
        replay_every: args.replay_every,
        unknown_every: args.unknown_every,
        max_attempts: args.max_attempts,
        start,
        deadline: start + args.duration,
        kill_at: args.kill_redis.then(|| start + args.kill_at()),
        redis_prefix: REDIS_PREFIX.to_owned(),
        recovered: AtomicBool::new(false),
    });
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let plan = Arc::clone(&plan);
        let balancer = Arc::clone(&balancer);
        clients.push(tokio::spawn(async move {
            match Client::new(&plan, &balancer) {
                Ok(client) => Ok(client.run().await),
                Err(message) => Err(message),
            }
        }));
    }

    let mut failover = None;
    if let Some(kill_at) = plan.kill_at
        && let Some(mut deployed) = deployment.take()
    {
        tokio::time::sleep_until(kill_at.into()).await;
        let rotation = args.rotation;
        let down = args.redis_down();
        let give_up = plan.deadline + RECOVERY_GRACE;
        let watched = Arc::clone(&plan);
        // Killing and watching the failover ask Redis over blocking connections.
        let (deployed, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = deployed
                .kill(start, || {
                    deploy::current_nonce_key(REDIS_PREFIX, AS_LABEL, rotation)
                })
                .and_then(|kill| {
                    let recovered_at = deployed.recover(&kill, down, start, give_up)?;
                    if recovered_at.is_some() {
                        watched.recovered.store(true, Ordering::Relaxed);
                    }
                    Ok((kill, recovered_at))
                });
            (deployed, outcome)
        })
        .await
        .map_err(|err| format!("the kill and recovery task failed: {err}"))?;
        deployment = Some(deployed);
        let (kill, recovered_at) = outcome?;
        failover = Some(Failover {
            killed_at: kill.at,
            recovered_at,
            recovery: args.topology.recovery(!args.no_persistence),
            killed_port: kill.port,
            key: kill.key,
            bound: args.failover_bound(),
        });
    }

    let mut logs: Vec<ClientLog> = Vec::new();
    for client in clients {
        let log = client
            .await
            .map_err(|err| format!("a client task failed: {err}"))??;
        logs.push(log);
    }
    let elapsed = start.elapsed();
    let requests = balancer.sent.load(Ordering::Relaxed);

    // Whether the `jti`s recorded just before the kill are still in Redis.
    let mut held = HashMap::new();
    if failover.is_some()
        && let Some(deployed) = deployment.take()
    {
        let keys: Vec<String> = logs
            .iter()
            .filter_map(|log| log.before_kill_replay_key.clone())
            .collect();
        let (deployed, answers) = tokio::task::spawn_blocking(move || {
            let answers = deployed.holds(&keys);
            (deployed, keys.into_iter().zip(answers).collect::<Vec<_>>())
        })
        .await
        .map_err(|err| format!("the Redis look-up task failed: {err}"))?;
        deployment = Some(deployed);
        held.extend(answers);
    }

    let mut violations = Vec::new();
    for (index, replica) in replicas.iter_mut().enumerate() {
        if let Some(status) = replica.exited() {
            violations.push(format!(
                "replica {index} exited during the run ({status}); its stderr:\n{}",
                procs::tail(&replica.log, 20)
            ));
        }
    }
    let setup = Setup {
        mode: mode(&args),
        topology: if args.memory {
            "none"
        } else {
            args.topology.name()
        },
        replicas: args.replicas,
        clients: args.clients,
        duration: args.duration,
        rotation_s: args.rotation,
        replay_every: args.replay_every,
        unknown_every: args.unknown_every,
        // Only a durable server restarted in place promises that no acknowledged `jti` is lost.
        keeps_every_jti: args.kill_redis
            && args.topology == Topology::Standalone
            && !args.no_persistence,
    };
    let report = report::build(
        &setup,
        &logs,
        elapsed,
        requests,
        failover.as_ref(),
        &held,
        violations,
    );
    print!("{}", report.text);
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(&report.json)
            .map_err(|err| format!("summary as JSON: {err}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    if !report.violations.is_empty() {
        for replica in &replicas {
            let tail = procs::tail(&replica.log, 5);
            if !tail.is_empty() {
                eprintln!("last lines of a replica's stderr:\n{tail}");
            }
        }
    }
    drop(replicas);
    drop(deployment);
    Ok(report.violations.is_empty())
}
