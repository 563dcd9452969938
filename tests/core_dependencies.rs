//! The core crate, without features, depends on nothing heavy: no HTTP stack, no JSON, no Redis,
//! no HMAC. Checked with `cargo tree` on the normal (non-dev) dependency graph.

use std::process::Command;

/// Crates that only optional features may bring in.
const FEATURE_ONLY: [&str; 9] = [
    "http",
    "axum",
    "axum-core",
    "tokio",
    "hyper",
    "serde_json",
    "redis",
    "hmac",
    "sha2",
];

/// Runs `cargo tree` on this package's normal dependencies with `features` and returns the crate
/// names in the graph. Tries offline first, so a checkout with a `Cargo.lock` and a filled
/// registry cache needs no network; falls back to a normal run otherwise.
fn dependency_names(features: &[&str]) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let run = |offline: bool| {
        let mut command = Command::new(env!("CARGO"));
        command.args([
            "tree",
            "--manifest-path",
            manifest,
            "--edges",
            "normal",
            "--no-default-features",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--color",
            "never",
        ]);
        if !features.is_empty() {
            command.args(["--features", &features.join(",")]);
        }
        if offline {
            command.arg("--offline");
        }
        command.output()
    };
    let output = match run(true) {
        Ok(output) if output.status.success() => output,
        _ => run(false).unwrap_or_else(|err| panic!("cannot run cargo tree: {err}")),
    };
    assert!(
        output.status.success(),
        "cargo tree failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let names: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.iter().any(|n| n == "dpop-nonce"),
        "unexpected cargo tree output:\n{stdout}"
    );
    names
}

#[test]
fn core_has_no_feature_only_dependencies() {
    let names = dependency_names(&[]);
    let found: Vec<&str> = FEATURE_ONLY
        .into_iter()
        .filter(|banned| names.iter().any(|n| n == banned))
        .collect();
    assert!(found.is_empty(), "the core crate depends on {found:?}");
}

#[test]
fn http_feature_brings_in_http() {
    // Proves the check above can fail: the same query sees `http` once the feature is on.
    let names = dependency_names(&["http"]);
    assert!(names.iter().any(|n| n == "http"), "no `http` in {names:?}");
    assert!(!names.iter().any(|n| n == "axum-core" || n == "serde_json"));
}
