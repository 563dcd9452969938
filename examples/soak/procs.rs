//! The processes a soak run owns: one `redis-server` (the standalone deployment; `deploy.rs`
//! starts the others) and the server replicas, all listening on loopback only, all killed
//! (SIGKILL) and reaped when dropped. Their output goes to log files in the run's private
//! temporary directory, which is removed at the end.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a process may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The line a server prints when it is ready, followed by its address.
const READY_PREFIX: &str = "listening on http://";

/// A fresh private directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("dpop-soak-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback TCP port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| format!("cannot find a free loopback port: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot read a bound port: {err}"))
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A `redis-server` on a loopback port that can be killed and started again on the same port:
/// durable (an append-only file, `fsync` on every write, so a restart keeps every write it
/// acknowledged), or without persistence (a restart comes back empty).
pub struct Redis {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: u32,
    durable: bool,
}

impl Redis {
    /// Starts a server with its files in `dir` and waits until it answers `PING`.
    pub fn start(binary: &Path, dir: &Path, durable: bool) -> Result<Self, String> {
        let mut redis = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            port: free_port()?,
            child: None,
            starts: 0,
            durable,
        };
        redis.spawn()?;
        Ok(redis)
    }

    /// The URL the replicas connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, like a crash, and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and files (empty without persistence), and
    /// waits for `PING`.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let output = File::create(&log).map_err(|err| format!("redis log: {err}"))?;
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", ""])
            .args(if self.durable {
                ["--appendonly", "yes", "--appendfsync", "always"].as_slice()
            } else {
                ["--appendonly", "no"].as_slice()
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("{} does not start: {err}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "redis-server exited at start-up ({status}):\n{}",
                    tail(&log, 20)
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "redis-server did not answer PING within {READY_TIMEOUT:?}"
        ))
    }

    /// One `PING` over a new connection.
    fn ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server replica, started with `--addr 127.0.0.1:0` and found through its ready line.
pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Replica {
    /// Starts `binary args...`, with stderr to `log`, and waits for its ready line on stdout.
    pub fn start(binary: &Path, args: &[String], log: PathBuf) -> Result<Self, String> {
        let errors = File::create(&log).map_err(|err| format!("server log: {err}"))?;
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors)
            .spawn()
            .map_err(|err| format!("{} does not start: {err}", binary.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not piped".to_owned());
        };
        // The first line goes back on the channel; the rest is drained so the pipe never fills.
        let (first_line, ready) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            for _ in lines.by_ref() {}
        });
        let line = ready.recv_timeout(READY_TIMEOUT);
        let addr = line
            .as_deref()
            .ok()
            .and_then(|line| line.strip_prefix(READY_PREFIX))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse::<SocketAddr>().ok());
        let Some(addr) = addr.filter(|addr| addr.ip().is_loopback()) else {
            let _ = child.kill();
            let _ = child.wait();
            let got = match line {
                Ok(line) => format!("it printed {line:?}"),
                Err(mpsc::RecvTimeoutError::Timeout) => format!("none within {READY_TIMEOUT:?}"),
                Err(mpsc::RecvTimeoutError::Disconnected) => "it closed stdout first".to_owned(),
            };
            return Err(format!(
                "the server did not print `{READY_PREFIX}<loopback address> ...` ({got}); \
                 its stderr:\n{}",
                tail(&log, 20)
            ));
        };
        Ok(Self { child, addr, log })
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
