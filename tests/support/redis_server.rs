//! A throwaway `redis-server` for integration tests: a unix socket in a fresh directory, no
//! persistence, killed on drop, and able to stop and restart on the same socket.
//!
//! Include it with `#[path = "support/redis_server.rs"] mod redis_server;`.
//!
//! When `redis-server` is not on `PATH`, [`RedisServer::start_or_skip`] prints a loud line and
//! returns `None` so the test can return early; with the `CI` variable set (non-empty) it panics
//! instead, so a CI run never passes without having run the Redis tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _};

#[path = "processes.rs"]
pub mod processes;

const BINARY: &str = "redis-server";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) `redis-server` owned by one test.
pub struct RedisServer {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server, or explains loudly why the calling test cannot run.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing and `CI` is set, or when the server does not come up.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        processes::binaries_or_skip(test, &[BINARY], "it (apt-get install redis-server)")
            .then(Self::start)
    }

    /// Starts a server in a fresh directory. Panics when it does not answer PING in time.
    pub fn start() -> Self {
        let dir = processes::fresh_dir("redis");
        let socket = dir.join("redis.sock");
        let mut server = Self {
            dir,
            socket,
            child: None,
        };
        server.spawn();
        server
    }

    /// The unix socket the server listens on (also while it is stopped).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Connection details for the socket.
    pub fn connection_info(&self) -> ConnectionInfo {
        ConnectionAddr::Unix(self.socket.clone())
            .into_connection_info()
            .expect("a unix socket address is valid")
    }

    /// A client for the socket; each one gives its own connections.
    pub fn client(&self) -> Client {
        Client::open(self.connection_info()).expect("a unix socket client")
    }

    /// A fresh connection for the test's own commands.
    pub fn admin(&self) -> redis::Connection {
        let connection = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("the test Redis answers");
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        connection
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        connection
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the server again on the same socket, with an empty data set.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Commands the server has run, all kinds together except `INFO` (which the count itself
    /// uses), from `INFO commandstats`.
    pub fn command_count(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.admin())
            .expect("INFO commandstats");
        count_commands(&info)
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(BINARY)
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&self.socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(connection) = self
                .client()
                .get_connection_with_timeout(Duration::from_millis(200))
            {
                let mut connection = connection;
                let _ = connection.set_read_timeout(Some(Duration::from_millis(500)));
                if redis::cmd("PING")
                    .query::<String>(&mut connection)
                    .is_ok_and(|pong| pong == "PONG")
                {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server exited at start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {READY_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sums `calls=` over every `cmdstat_*` line but `cmdstat_info`.
pub fn count_commands(info: &str) -> u64 {
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| !line.starts_with("info:"))
        .filter_map(|line| {
            let calls = line.split_once("calls=")?.1;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}
