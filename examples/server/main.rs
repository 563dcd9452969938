//! A small OAuth authorization server and resource server that demand DPoP nonces, on axum.
//!
//! ```text
//! cargo run --example server --features axum,proof,tower,tokio,derived -- --addr 127.0.0.1:8080
//! ```
//!
//! Options:
//!
//! - `--addr HOST:PORT`: where to listen (default `127.0.0.1:8080`; port 0 picks a free port).
//! - `--rotation SECONDS`: how often nonces rotate (default 300).
//! - `--public-url URL`: the URL clients use, when the server runs behind a proxy (default
//!   `http://` and the bound address). Proofs must name it in `htu`.
//! - `--redis URL`: keep the DPoP state in one Redis server (`redis://host:port`,
//!   `redis+unix:///path`): the authorization-server and resource-server nonces (labels `as`
//!   and `rs`) come from `RedisNonceSource`s that a background task refreshes, so no request
//!   waits for Redis, and `jti`s go to an `AsyncRedisReplayCache`. Keys start with
//!   `dpop-demo`. Without a Redis option, all state is in this process.
//! - `--redis-sentinel URL[,URL...]`: the same state on the primary that these sentinels
//!   monitor as `--redis-master NAME` (default `mymaster`), found again after a failover
//!   (`RedisEndpoint::sentinel`).
//! - `--redis-cluster URL[,URL...]`: the same state in a Redis Cluster reached through these
//!   nodes (`RedisEndpoint::cluster`). `--redis`, `--redis-sentinel` and `--redis-cluster`
//!   exclude each other.
//! - `--derived-secret HEX`: 64 hex digits (32 bytes); nonces are `DerivedNonceSource`s
//!   (labels `as` and `rs`) on that secret, so replicas that share it accept each other's
//!   nonces without Redis. With a Redis option too, the replay cache stays on Redis: replicas
//!   need a shared replay cache whatever the source.
//! - `--token-secret HEX`: 64 hex digits (32 bytes) that sign the self-contained access
//!   tokens, so that every replica started with it accepts the tokens of the others (default:
//!   a random secret per process).
//!
//! Once it accepts connections, the server prints one line on standard output:
//! `listening on http://ADDR (public URL URL)`.
//!
//! The client `demo-client` with secret `demo-secret` may use `client_secret_basic` or
//! `client_secret_post`. See `app.rs` for the endpoints; proofs are verified by
//! `dpop_nonce::proof::Verifier`, with ES256, ES384, EdDSA, Ed25519, RS256 and PS256 keys.

mod app;
mod stores;
mod tokens;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use dpop_nonce::redis::RedisEndpoint;
use time::Duration;

const USAGE: &str = "\
usage: server [--addr HOST:PORT] [--rotation SECONDS] [--public-url URL]
              [--redis URL | --redis-sentinel URL[,URL...] [--redis-master NAME]
               | --redis-cluster URL[,URL...]]
              [--derived-secret HEX] [--token-secret HEX]

  --addr HOST:PORT       where to listen (default 127.0.0.1:8080; port 0 picks a free port)
  --rotation SECONDS     how often nonces rotate (default 300)
  --public-url URL       the URL clients use (default http:// and the bound address)
  --redis URL            nonces (labels as, rs) and replay cache in Redis, keys dpop-demo:*
  --redis-sentinel URLS  the same, on the primary these sentinels name (comma-separated)
  --redis-master NAME    the name the sentinels monitor the primary under (default mymaster)
  --redis-cluster URLS   the same, in the Redis Cluster of these nodes (comma-separated)
  --derived-secret HEX   32 bytes: nonces derived from this secret, shared by replicas
  --token-secret HEX     32 bytes: signs access tokens, shared by replicas (default: random)";

/// The master name `--redis-sentinel` looks for without `--redis-master`.
const DEFAULT_MASTER_NAME: &str = "mymaster";

struct Args {
    addr: SocketAddr,
    rotation: Duration,
    public_url: Option<String>,
    redis: Option<RedisEndpoint>,
    derived_secret: Option<[u8; 32]>,
    token_secret: Option<[u8; 32]>,
}

/// The Redis options as given, checked and turned into an endpoint once all are read.
#[derive(Default)]
struct RedisOptions {
    /// Each deployment option given, with its value.
    given: Vec<(&'static str, String)>,
    master: Option<String>,
}

impl RedisOptions {
    fn endpoint(self) -> Result<Option<RedisEndpoint>, String> {
        let mut given = self.given.into_iter();
        let Some((flag, value)) = given.next() else {
            return match self.master {
                Some(_) => Err("--redis-master needs --redis-sentinel".to_owned()),
                None => Ok(None),
            };
        };
        if let Some((other, _)) = given.next() {
            return Err(format!(
                "{flag} and {other} exclude each other: give one of --redis, --redis-sentinel \
                 and --redis-cluster, once\n{USAGE}"
            ));
        }
        if self.master.is_some() && flag != "--redis-sentinel" {
            return Err(format!(
                "--redis-master goes with --redis-sentinel, not {flag}"
            ));
        }
        let urls = || -> Result<Vec<&str>, String> {
            let urls: Vec<&str> = value.split(',').map(str::trim).collect();
            if urls.iter().any(|url| url.is_empty()) {
                return Err(format!("{flag} {value}: expected URL[,URL...]"));
            }
            Ok(urls)
        };
        let endpoint = match flag {
            "--redis" => redis::Client::open(value.as_str()).map(RedisEndpoint::standalone),
            "--redis-sentinel" => {
                let master = self.master.as_deref().unwrap_or(DEFAULT_MASTER_NAME);
                RedisEndpoint::sentinel(urls()?, master)
            }
            _ => RedisEndpoint::cluster(urls()?),
        };
        endpoint
            .map(Some)
            .map_err(|err| format!("{flag} {value}: {err}"))
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        rotation: Duration::minutes(5),
        public_url: None,
        redis: None,
        derived_secret: None,
        token_secret: None,
    };
    let mut redis = RedisOptions::default();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => {
                args.addr = value
                    .parse()
                    .map_err(|err| format!("--addr {value}: {err}"))?;
            }
            "--rotation" => {
                let seconds: u32 = value
                    .parse()
                    .ok()
                    .filter(|seconds| *seconds > 0)
                    .ok_or_else(|| {
                        format!("--rotation {value}: expected a positive number of seconds")
                    })?;
                args.rotation = Duration::seconds(i64::from(seconds));
            }
            "--public-url" => {
                if dpop_nonce::proof::normalize_htu(&value).is_none() || value.contains(['?', '#'])
                {
                    return Err(format!(
                        "--public-url {value}: expected an http(s) URL without query"
                    ));
                }
                args.public_url = Some(value);
            }
            "--redis" => redis.given.push(("--redis", value)),
            "--redis-sentinel" => redis.given.push(("--redis-sentinel", value)),
            "--redis-cluster" => redis.given.push(("--redis-cluster", value)),
            "--redis-master" => {
                if value.is_empty() || redis.master.replace(value).is_some() {
                    return Err("--redis-master: expected one non-empty name".to_owned());
                }
            }
            "--derived-secret" => args.derived_secret = Some(secret(&flag, &value)?),
            "--token-secret" => args.token_secret = Some(secret(&flag, &value)?),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    args.redis = redis.endpoint()?;
    Ok(args)
}

/// 32 bytes from 64 hex digits.
fn secret(flag: &str, hex: &str) -> Result<[u8; 32], String> {
    let wrong = || format!("{flag}: expected 64 hex digits (32 bytes)");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(wrong());
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| wrong())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| wrong())?;
    }
    Ok(secret)
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.addr))?;
    let bound = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{bound}"));

    let mut config = app::Config::in_memory(public_url.clone(), args.rotation)?;
    config.backend = stores::Backend {
        redis: args.redis,
        derived_secret: args.derived_secret,
    };
    if let Some(secret) = args.token_secret {
        config.token_key = tokens::TokenKey::new(&secret);
    }
    let router = app::router(config)?;

    println!("listening on http://{bound} (public URL {public_url})");
    // Whoever started the server may be waiting for that line on a pipe.
    let _ = std::io::stdout().flush();

    axum::serve(listener, router)
        .await
        .map_err(|err| format!("server error: {err}"))
}
