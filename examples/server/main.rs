//! A small OAuth authorization server and resource server that demand DPoP nonces, on axum.
//!
//! ```text
//! cargo run --example server --features axum,proof -- --addr 127.0.0.1:8080
//! ```
//!
//! Options:
//!
//! - `--addr HOST:PORT`: where to listen (default `127.0.0.1:8080`; port 0 picks a free port).
//! - `--rotation SECONDS`: how often nonces rotate (default 300).
//! - `--public-url URL`: the URL clients use, when the server runs behind a proxy (default
//!   `http://` and the bound address). Proofs must name it in `htu`.
//!
//! The client `demo-client` with secret `demo-secret` may use `client_secret_basic` or
//! `client_secret_post`. See `app.rs` for the endpoints; proofs are verified by
//! `dpop_nonce::proof::Verifier`, with ES256, ES384, EdDSA, Ed25519, RS256 and PS256 keys.

mod app;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use time::Duration;

const USAGE: &str = "usage: server [--addr HOST:PORT] [--rotation SECONDS] [--public-url URL]";

struct Args {
    addr: SocketAddr,
    rotation: Duration,
    public_url: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        rotation: Duration::minutes(5),
        public_url: None,
    };
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
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {}: {err}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(bound) => bound,
        Err(err) => {
            eprintln!("cannot read the bound address: {err}");
            return ExitCode::FAILURE;
        }
    };
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{bound}"));
    let router = match app::router(app::Config {
        public_url: public_url.clone(),
        rotation: args.rotation,
    }) {
        Ok(router) => router,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };

    println!("listening on http://{bound} (public URL {public_url})");
    // Whoever started the server may be waiting for that line on a pipe.
    let _ = std::io::stdout().flush();

    if let Err(err) = axum::serve(listener, router).await {
        eprintln!("server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
