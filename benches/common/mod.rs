//! Helpers shared by the timing benches: the baselines, the clocks and claims the sources are
//! measured with, the back-to-back ratios, and a private `redis-server`.
//!
//! Each bench uses only some of them.
#![allow(dead_code)]

pub mod baseline;
pub mod paired;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};

use dpop_nonce::{Clock, Nonce, Rotation, SystemClock};
use time::Duration;

/// Length of the nonces the crate generates.
pub const LEN: usize = Nonce::GENERATED_LEN;

/// The system clock moved by an offset. Only used to put a source one window ahead, so that a
/// nonce it issued becomes its previous one while the check still reads the real clock.
#[derive(Debug, Default)]
pub struct ShiftedSystemClock {
    offset_seconds: AtomicI64,
}

impl ShiftedSystemClock {
    pub fn shift(&self, by: Duration) {
        self.offset_seconds
            .fetch_add(by.whole_seconds(), Ordering::Relaxed);
    }
}

impl Clock for ShiftedSystemClock {
    #[inline]
    fn unix_time(&self) -> Duration {
        SystemClock.unix_time().saturating_add(Duration::seconds(
            self.offset_seconds.load(Ordering::Relaxed),
        ))
    }
}

/// The rotation used on the system clock: the longest one, so that no window boundary falls in
/// the middle of a measurement (which would turn "current" into "previous"). The cost of a check
/// does not depend on the interval.
pub fn long_rotation() -> Duration {
    Rotation::MAX
}

/// A claim of the right length and grammar that no source issued: `nonce` with its first byte
/// changed to another base64url character.
pub fn unknown_like(nonce: &Nonce) -> String {
    let mut bytes = nonce.as_bytes().to_vec();
    bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

/// A 43-byte claim that breaks the grammar (a space in the middle).
pub fn malformed_claim() -> String {
    let mut claim = "x".repeat(LEN);
    claim.replace_range(20..21, " ");
    claim
}

/// A claim of one mebibyte.
pub fn huge_claim() -> String {
    "A".repeat(1 << 20)
}

/// Where criterion keeps its results, found the way criterion finds it. The back-to-back
/// ratios are written beside them, for `scripts/bench_report.py`.
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let output = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(PathBuf::from(metadata.get("target_directory")?.as_str()?))
    });
    from_metadata
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// A private `redis-server` on a unix socket in a temporary directory, stopped on drop.
#[cfg(feature = "redis")]
pub struct RedisServer {
    child: std::process::Child,
    dir: PathBuf,
}

#[cfg(feature = "redis")]
impl RedisServer {
    /// Starts one, or `None` when `redis-server` is not on `PATH` or does not come up.
    pub fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("dpop-nonce-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let socket = dir.join("redis.sock");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, dir };
        for _ in 0..200 {
            if socket.exists() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// A client for the server's socket.
    pub fn client(&self) -> Option<redis::Client> {
        let socket = self.dir.join("redis.sock");
        redis::Client::open(format!("redis+unix://{}", socket.display())).ok()
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prints the line that marks benches skipped for want of something, loud enough to notice.
pub fn skipped(what: &str, why: &str) {
    println!();
    println!("!!!! SKIPPED {what}: {why} !!!!");
    println!();
}
