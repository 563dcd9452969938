//! What the Redis test helpers share: finding the binaries (with a loud skip, or a failure
//! under `CI`, when one is missing) and a fresh directory for a server's files.
//!
//! Included by `redis_server.rs` and `redis_topology.rs` with
//! `#[path = "processes.rs"] mod processes;`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `true` when `binary --version` runs and succeeds.
pub fn available(binary: impl AsRef<OsStr>) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `true` when every one of `binaries` runs. Otherwise prints a loud skip line for `test`,
/// naming the missing ones and what to install (`install`), and returns `false`; with the `CI`
/// variable set (non-empty) it panics instead, so a CI run never passes without the test.
pub fn binaries_or_skip(test: &str, binaries: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|binary| !available(binary))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|value| !value.is_empty());
    let message = format!(
        "SKIPPED: {} not found; install {install} — Redis test `{test}` did not run",
        missing.join(", ")
    );
    assert!(!ci, "{message} (CI is set, so this is a failure)");
    // Straight to the stderr handle: the test harness captures `eprintln!` of passing tests,
    // and this line must be seen.
    let _ = writeln!(std::io::stderr(), "\n!!!!! {message} !!!!!\n");
    false
}

/// A new, empty, private directory under the system temp dir, named after `kind` (short, so
/// that a unix socket path inside stays under the limit of about 100 bytes).
pub fn fresh_dir(kind: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "dpop-{kind}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).expect("a fresh temp dir");
    dir
}
