//! A multi-process soak: one `redis-server`, three replicas of the example server sharing it,
//! and 32 DPoP clients whose requests a simulated load balancer spreads round-robin across the
//! replicas.
//!
//! ```text
//! cargo build --release --all-features --example server --example soak
//! cargo run --release --all-features --example soak -- --json soak-redis.json
//! cargo run --release --all-features --example soak -- --derived
//! cargo run --release --all-features --example soak -- --kill-redis
//! ```
//!
//! `.ci/soak` runs those three. Everything the soak talks to, it starts itself, on loopback:
//! Redis on a free port (no persistence, in a temporary directory), and the replicas with
//! `--addr 127.0.0.1:0 --rotation 2 --public-url http://soak-lb.invalid` (the public URL is only
//! named in proofs; nothing resolves it), `--redis`, a shared `--token-secret`, and with
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
//! succeeds, or when the failover window exceeds `--failover-bound`. Exit status 2 means the
//! run could not be set up. A summary is printed, and written as JSON with `--json PATH`.
//!
//! With `--kill-redis`, Redis is killed (SIGKILL) at `--kill-at` seconds (default: half the
//! duration) and started again, empty, on the same port `--redis-down` seconds (default 1)
//! later. The failover window is the time from the signal to the end of the last dance that
//! needed more than one retry or failed; it must stay within `--failover-bound` (default: the
//! down time plus 4 s, the replay cache's longest reconnect back-off of 2 s with slack). Dances
//! overlapping `[kill, kill + bound]` are exempt from the one-retry and no-failure checks, and
//! none of the others is. Each client also sends the last proof it had accepted before the kill
//! once more after the restart: those answers are reported (`across_restart`) but not checked,
//! since a Redis restarted empty has forgotten every `jti`, which is the documented limit of a
//! replay cache on Redis without persistence.
//!
//! When `redis-server` is missing, the soak says so loudly and exits 0, unless the `CI`
//! variable is set (non-empty): then it fails.

mod dance;
mod http;
mod procs;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::TryRngCore as _;
use rand::rngs::OsRng;

use crate::dance::{Client, ClientLog, Plan};
use crate::http::Balancer;
use crate::procs::{Redis, Replica, TempDir};
use crate::report::{Failover, Setup};

/// The public URL of the replicas, behind the simulated load balancer. Never resolved.
const PUBLIC_URL: &str = "http://soak-lb.invalid";
const PUBLIC_HOST: &str = "soak-lb.invalid";

/// The failover bound past the time Redis is down: the replay cache's longest reconnect
/// back-off (2 s by default), a nonce refresh, and slack for a loaded machine.
const DEFAULT_FAILOVER_MARGIN: Duration = Duration::from_secs(4);

const USAGE: &str = "\
usage: soak [--server PATH] [--redis-server PATH] [--replicas N] [--clients N]
            [--duration SECONDS] [--rotation SECONDS] [--resources N]
            [--replay-every N] [--unknown-every N] [--max-attempts N]
            [--derived] [--memory] [--kill-redis] [--kill-at SECONDS]
            [--redis-down SECONDS] [--failover-bound SECONDS]
            [--server-arg ARG]... [--json PATH]";

struct Args {
    server: Option<PathBuf>,
    redis_server: PathBuf,
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
    redis_down: Duration,
    failover_bound: Option<Duration>,
    server_args: Vec<String>,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: None,
        redis_server: PathBuf::from("redis-server"),
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
        redis_down: Duration::from_secs(1),
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
            "--help" | "-h" => return Err(USAGE.to_owned()),
            _ => {
                let value = argv
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                set_option(&mut args, &flag, value)?;
            }
        }
    }
    if args.memory && (args.derived || args.kill_redis) {
        return Err("--memory runs without Redis: no --derived or --kill-redis".to_owned());
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
        "--redis-server" => args.redis_server = PathBuf::from(value),
        "--replicas" => args.replicas = number(flag, &value)?,
        "--clients" => args.clients = number(flag, &value)?,
        "--duration" => args.duration = seconds(flag, &value)?,
        "--rotation" => args.rotation = number(flag, &value)?,
        "--resources" => args.resources = number(flag, &value)?,
        "--replay-every" => args.replay_every = number(flag, &value)?,
        "--unknown-every" => args.unknown_every = number(flag, &value)?,
        "--max-attempts" => args.max_attempts = number(flag, &value)?,
        "--kill-at" => args.kill_at = Some(seconds(flag, &value)?),
        "--redis-down" => args.redis_down = seconds(flag, &value)?,
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
    match (args.memory, args.derived, args.kill_redis) {
        (true, _, _) => "memory".to_owned(),
        (false, derived, kill) => {
            let mut mode = if derived { "derived+redis" } else { "redis" }.to_owned();
            if kill {
                mode.push_str(", Redis killed and restarted");
            }
            mode
        }
    }
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
    if !args.memory && !procs::runs(&args.redis_server) {
        let message = format!(
            "{} not found; install it (apt-get install redis-server): the soak did not run",
            args.redis_server.display()
        );
        if std::env::var("CI").is_ok_and(|value| !value.is_empty()) {
            return Err(format!("{message} (CI is set, so this is a failure)"));
        }
        eprintln!("\n!!!!! SKIPPED: {message} !!!!!\n");
        return Ok(true);
    }

    let dir = TempDir::new()?;
    let mut redis = if args.memory {
        None
    } else {
        Some(Redis::start(&args.redis_server, dir.path())?)
    };
    let mut server_args: Vec<String> = vec![
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--rotation".into(),
        args.rotation.to_string(),
        "--public-url".into(),
        PUBLIC_URL.into(),
    ];
    if let Some(redis) = &redis {
        server_args.extend(["--redis".into(), redis.url()]);
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
        kill_at: args
            .kill_redis
            .then(|| start + args.kill_at.unwrap_or(args.duration / 2)),
        restarted: AtomicBool::new(false),
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
        && let Some(mut server) = redis.take()
    {
        tokio::time::sleep_until(kill_at.into()).await;
        // The window counts from the signal, so read the clock before sending it.
        let killed_at = start.elapsed();
        server.kill();
        tokio::time::sleep(args.redis_down).await;
        let (server, restarted) = tokio::task::spawn_blocking(move || {
            let restarted = server.restart();
            (server, restarted)
        })
        .await
        .map_err(|err| format!("the restart task failed: {err}"))?;
        restarted?;
        plan.restarted.store(true, Ordering::Relaxed);
        redis = Some(server);
        failover = Some(Failover {
            killed_at,
            restarted_at: start.elapsed(),
            bound: args
                .failover_bound
                .unwrap_or(args.redis_down + DEFAULT_FAILOVER_MARGIN),
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
        replicas: args.replicas,
        clients: args.clients,
        duration: args.duration,
        rotation_s: args.rotation,
        replay_every: args.replay_every,
        unknown_every: args.unknown_every,
    };
    let report = report::build(
        &setup,
        &logs,
        elapsed,
        requests,
        failover.as_ref(),
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
    drop(redis);
    Ok(report.violations.is_empty())
}
