//! Turns the clients' logs into the summary: counts, histograms, the failover window, and the
//! invariants that decide the exit code.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::dance::{ClientLog, DanceRecord, Kind, ProbeRecord};

/// The Redis kill and recovery of a `--kill-redis` run, in time since the start of the load.
pub struct Failover {
    pub killed_at: Duration,
    /// When Redis was back: restarted, or a replica promoted (as the deployment reports it);
    /// `None` when that was not seen.
    pub recovered_at: Option<Duration>,
    /// `restarted empty` or `replica promoted`.
    pub recovery: &'static str,
    /// The port of the node killed.
    pub killed_port: u16,
    /// In a cluster: the key whose slot's primary was killed, and that slot.
    pub key: Option<(String, u16)>,
    /// Dances within `bound` after the kill may retry more than once or fail.
    pub bound: Duration,
}

impl Failover {
    /// `true` when the dance overlaps `[kill, kill + bound]`.
    fn covers(&self, dance: &DanceRecord) -> bool {
        dance.end >= self.killed_at && dance.start <= self.killed_at + self.bound
    }
}

/// What the run was, for the summary's header.
pub struct Setup {
    pub mode: String,
    /// `standalone`, `sentinel`, `cluster`, or `none` (in memory).
    pub topology: &'static str,
    pub replicas: usize,
    pub clients: usize,
    pub duration: Duration,
    pub rotation_s: u32,
    pub replay_every: u64,
    pub unknown_every: u64,
    /// The kill cannot lose an acknowledged `jti` (a durable server restarted in place): a
    /// proof accepted before the kill and accepted again after it is a violation.
    pub keeps_every_jti: bool,
}

/// The summary as JSON, its text form, and the invariants that failed (none: the run passes).
pub struct Report {
    pub json: Value,
    pub text: String,
    pub violations: Vec<String>,
}

fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

fn percentile(sorted: &[u32], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (sorted.len() - 1) * per_mille / 1000;
    f64::from(sorted[index]) / 1000.0
}

fn count_answers(probes: &[&ProbeRecord]) -> BTreeMap<String, u64> {
    let mut answers = BTreeMap::new();
    for probe in probes {
        *answers.entry(probe.answer.clone()).or_insert(0) += 1;
    }
    answers
}

fn answers_text(answers: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = answers
        .iter()
        .map(|(answer, count)| format!("{answer}: {count}"))
        .collect();
    parts.join(", ")
}

/// The dances of one endpoint: totals and the histogram of retries.
fn dance_stats(dances: &[&DanceRecord], failover: Option<&Failover>) -> (Value, String) {
    let mut histogram = [0u64; 4];
    let mut failures = BTreeMap::new();
    for dance in dances {
        histogram[dance.retries.min(3) as usize] += 1;
        if let Some(failure) = &dance.failure {
            *failures.entry(failure.clone()).or_insert(0u64) += 1;
        }
    }
    let outside = |dance: &&&DanceRecord| failover.is_none_or(|f| !f.covers(dance));
    let max_outside = dances
        .iter()
        .filter(outside)
        .map(|d| d.retries)
        .max()
        .unwrap_or(0);
    let failed: u64 = failures.values().sum();
    let json = json!({
        "dances": dances.len(),
        "failed": failed,
        "retries": {
            "0": histogram[0], "1": histogram[1], "2": histogram[2], "3+": histogram[3],
        },
        "max_retries": dances.iter().map(|d| d.retries).max().unwrap_or(0),
        "max_retries_outside_failover_window": max_outside,
        "failures": failures,
    });
    let text = format!(
        "{} dances, retries 0:{} 1:{} 2:{} 3+:{}, failed {failed}{}",
        dances.len(),
        histogram[0],
        histogram[1],
        histogram[2],
        histogram[3],
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", answers_text(&failures))
        }
    );
    (json, text)
}

/// Of the `jti`s each client had recorded last before the kill: how many Redis still holds
/// at the end, and how many it lost. A proof re-sent and accepted after the kill shows that its
/// `jti` was lost, though the acceptance recorded it again.
fn jti_before_kill(logs: &[ClientLog], held: &HashMap<String, Option<bool>>) -> Value {
    let (mut recorded, mut kept, mut lost, mut unknown) = (0, 0, 0, 0);
    for log in logs {
        let Some(key) = &log.before_kill_replay_key else {
            continue;
        };
        recorded += 1;
        let accepted_again = log.across_restart.iter().any(|probe| probe.accepted);
        match held.get(key).copied().flatten() {
            _ if accepted_again => lost += 1,
            Some(true) => kept += 1,
            Some(false) => lost += 1,
            None => unknown += 1,
        }
    }
    json!({ "recorded": recorded, "kept": kept, "lost": lost, "not_checked": unknown })
}

/// Builds the report and checks the invariants.
pub fn build(
    setup: &Setup,
    logs: &[ClientLog],
    elapsed: Duration,
    requests: u64,
    failover: Option<&Failover>,
    held: &HashMap<String, Option<bool>>,
    mut violations: Vec<String>,
) -> Report {
    let dances: Vec<&DanceRecord> = logs.iter().flat_map(|log| &log.dances).collect();
    let replays: Vec<&ProbeRecord> = logs.iter().flat_map(|log| &log.replays).collect();
    let unknown: Vec<&ProbeRecord> = logs.iter().flat_map(|log| &log.unknown).collect();
    let across_restart: Vec<&ProbeRecord> =
        logs.iter().flat_map(|log| &log.across_restart).collect();
    let mut latencies: Vec<u32> = logs
        .iter()
        .flat_map(|log| log.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();

    let rps = if elapsed.is_zero() {
        0.0
    } else {
        requests as f64 / elapsed.as_secs_f64()
    };
    let succeeded = dances.iter().filter(|d| d.failure.is_none()).count();
    let by_kind = |kind: Kind| -> Vec<&DanceRecord> {
        dances.iter().copied().filter(|d| d.kind == kind).collect()
    };
    let (token_json, token_text) = dance_stats(&by_kind(Kind::Token), failover);
    let (resource_json, resource_text) = dance_stats(&by_kind(Kind::Resource), failover);

    let outside: Vec<&DanceRecord> = dances
        .iter()
        .copied()
        .filter(|d| failover.is_none_or(|f| !f.covers(d)))
        .collect();
    let max_retries_outside = outside.iter().map(|d| d.retries).max().unwrap_or(0);
    let failures_outside = outside.iter().filter(|d| d.failure.is_some()).count();
    // The first few failures and multi-retry dances outside the window, to tell a slow start
    // from a late error.
    let failures_outside_at: Vec<f64> = outside
        .iter()
        .filter(|d| d.failure.is_some())
        .map(|d| seconds(d.end))
        .take(10)
        .collect();
    let multi_retries_outside_at: Vec<f64> = outside
        .iter()
        .filter(|d| d.retries > 1)
        .map(|d| seconds(d.end))
        .take(10)
        .collect();

    let twice_accepted: Vec<&ProbeRecord> =
        replays.iter().copied().filter(|p| p.accepted).collect();
    let unknown_accepted: Vec<&ProbeRecord> =
        unknown.iter().copied().filter(|p| p.accepted).collect();
    let probe_json = |probes: &[&ProbeRecord], accepted: &[&ProbeRecord]| {
        json!({
            "sent": probes.len(),
            "accepted": accepted.len(),
            "accepted_at_s": accepted.iter().map(|p| seconds(p.at)).collect::<Vec<_>>(),
            "accepted_endpoints": accepted.iter().map(|p| p.kind.name()).collect::<Vec<_>>(),
            "answers": count_answers(probes),
        })
    };

    let failover_json = failover.map(|f| {
        let last = |pick: &dyn Fn(&DanceRecord) -> bool| {
            dances
                .iter()
                .filter(|d| d.end >= f.killed_at && pick(d))
                .map(|d| d.end - f.killed_at)
                .max()
        };
        let last_multi_retry = last(&|d| d.retries > 1);
        let last_failure = last(&|d| d.failure.is_some());
        let window = last_multi_retry.max(last_failure).unwrap_or_default();
        let in_window: Vec<&DanceRecord> = dances.iter().copied().filter(|d| f.covers(d)).collect();
        let mut failures = BTreeMap::new();
        for failure in in_window.iter().filter_map(|d| d.failure.as_ref()) {
            *failures.entry(failure.clone()).or_insert(0u64) += 1;
        }
        if window > f.bound {
            violations.push(format!(
                "failover window {:.3} s exceeds the bound of {:.3} s",
                window.as_secs_f64(),
                f.bound.as_secs_f64()
            ));
        }
        if f.recovered_at.is_none() {
            violations.push(format!(
                "Redis did not recover ({}) before the end of the run",
                f.recovery
            ));
        }
        // Dances after the bound are checked like any other; there must be some.
        let after_bound = dances
            .iter()
            .filter(|d| d.start > f.killed_at + f.bound)
            .count();
        if after_bound == 0 {
            violations.push(
                "no dance started after the failover bound: the recovery was not seen".to_owned(),
            );
        }
        json!({
            "killed_at_s": seconds(f.killed_at),
            "killed_port": f.killed_port,
            "killed_for_key": f.key.as_ref().map(|(key, _)| key),
            "killed_for_slot": f.key.as_ref().map(|(_, slot)| slot),
            "recovery": f.recovery,
            "recovered_at_s": f.recovered_at.map(seconds),
            "down_s": f.recovered_at.map(|at| seconds(at.saturating_sub(f.killed_at))),
            "dances_after_bound": after_bound,
            "last_multi_retry_after_kill_s": last_multi_retry.map(seconds),
            "last_failure_after_kill_s": last_failure.map(seconds),
            "window_s": seconds(window),
            "bound_s": seconds(f.bound),
            "dances_in_window": in_window.len(),
            "multi_retry_dances_in_window": in_window.iter().filter(|d| d.retries > 1).count(),
            "failures_in_window": failures,
        })
    });

    if !twice_accepted.is_empty() {
        violations.push(format!(
            "{} replayed proofs were accepted by a second replica",
            twice_accepted.len()
        ));
    }
    if setup.keeps_every_jti {
        let again = across_restart.iter().filter(|p| p.accepted).count();
        if again > 0 {
            violations.push(format!(
                "{again} proofs accepted before the kill were accepted again after the restart"
            ));
        }
        let lost = logs
            .iter()
            .filter_map(|log| log.before_kill_replay_key.as_ref())
            .filter(|key| held.get(*key).copied().flatten() == Some(false))
            .count();
        if lost > 0 {
            violations.push(format!(
                "{lost} jtis recorded before the kill were gone after the restart"
            ));
        }
        if across_restart.is_empty() {
            violations.push(
                "no proof accepted before the kill was sent again: the check did not run"
                    .to_owned(),
            );
        }
    }
    if !unknown_accepted.is_empty() {
        violations.push(format!(
            "{} proofs with unknown nonces were accepted",
            unknown_accepted.len()
        ));
    }
    if max_retries_outside > 1 {
        violations.push(format!(
            "a dance took {max_retries_outside} retries outside the failover window (dances \
             with more than one retry ended at {multi_retries_outside_at:?} s)"
        ));
    }
    if failures_outside > 0 {
        violations.push(format!(
            "{failures_outside} dances failed outside the failover window"
        ));
    }
    if rps <= 0.0 || succeeded == 0 {
        violations.push("no request succeeded (0 requests per second)".to_owned());
    }
    if setup.replay_every > 0 && replays.is_empty() {
        violations.push("no accepted proof was replayed: the check did not run".to_owned());
    }
    if setup.unknown_every > 0 && unknown.is_empty() {
        violations.push("no unknown nonce was sent: the check did not run".to_owned());
    }

    let json = json!({
        "mode": setup.mode,
        "topology": setup.topology,
        "replicas": setup.replicas,
        "clients": setup.clients,
        "duration_s": seconds(setup.duration),
        "rotation_s": setup.rotation_s,
        "elapsed_s": seconds(elapsed),
        "requests": requests,
        "requests_per_s": (rps * 10.0).round() / 10.0,
        "dances_per_s": if elapsed.is_zero() { 0.0 } else {
            (dances.len() as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0
        },
        "latency_ms": {
            "p50": percentile(&latencies, 500),
            "p99": percentile(&latencies, 990),
            "max": percentile(&latencies, 1000),
        },
        "token": token_json,
        "resource": resource_json,
        "max_retries_outside_failover_window": max_retries_outside,
        "failures_outside_failover_window": failures_outside,
        "failures_outside_failover_window_at_s": failures_outside_at,
        "multi_retry_dances_outside_failover_window_at_s": multi_retries_outside_at,
        "replays": probe_json(&replays, &twice_accepted),
        "unknown_nonces": probe_json(&unknown, &unknown_accepted),
        "failover": failover_json,
        "across_restart": failover.map(|_| {
            let accepted: Vec<&ProbeRecord> =
                across_restart.iter().copied().filter(|p| p.accepted).collect();
            let mut probes = probe_json(&across_restart, &accepted);
            probes["sends"] = json!(logs.iter().map(|log| log.across_restart_sends).sum::<u32>());
            probes
        }),
        "jti_before_kill": failover.map(|_| jti_before_kill(logs, held)),
        "passed": violations.is_empty(),
        "violations": violations,
    });

    let mut text = String::new();
    let _ = writeln!(
        text,
        "soak [{}]: {} replicas, {} clients, {:.1} s, rotation {} s",
        setup.mode,
        setup.replicas,
        setup.clients,
        elapsed.as_secs_f64(),
        setup.rotation_s
    );
    let _ = writeln!(
        text,
        "  requests   {requests} ({rps:.0}/s), latency p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 500),
        percentile(&latencies, 990)
    );
    let _ = writeln!(text, "  token      {token_text}");
    let _ = writeln!(text, "  resource   {resource_text}");
    let _ = writeln!(
        text,
        "  replays    {} sent to another replica, {} accepted ({})",
        replays.len(),
        twice_accepted.len(),
        answers_text(&count_answers(&replays))
    );
    let _ = writeln!(
        text,
        "  unknown    {} nonces sent, {} accepted ({})",
        unknown.len(),
        unknown_accepted.len(),
        answers_text(&count_answers(&unknown))
    );
    if let Some(f) = &json["failover"].as_object() {
        let opt = |key: &str| {
            f[key]
                .as_f64()
                .map_or_else(|| "none".to_owned(), |s| format!("{s:.3} s"))
        };
        let target = match &failover.and_then(|f| f.key.as_ref()) {
            Some((key, slot)) => format!(" (port {}, slot {slot} of {key})", f["killed_port"]),
            None => format!(" (port {})", f["killed_port"]),
        };
        let _ = writeln!(
            text,
            "  failover   Redis killed at {:.3} s{target}, {} at {}; after the kill: last dance \
             with >1 retry {}, last failure {}; window {} (bound {} s)",
            f["killed_at_s"].as_f64().unwrap_or_default(),
            f["recovery"].as_str().unwrap_or_default(),
            opt("recovered_at_s"),
            opt("last_multi_retry_after_kill_s"),
            opt("last_failure_after_kill_s"),
            opt("window_s"),
            f["bound_s"]
        );
    }
    if let Some(f) = failover {
        let accepted = across_restart.iter().filter(|p| p.accepted).count();
        let why = if setup.keeps_every_jti {
            "checked: Redis keeps every acknowledged write"
        } else if f.recovery == "restarted empty" {
            "not checked: Redis came back empty"
        } else {
            "not checked: the primary acknowledges an insert before its replica has it"
        };
        let _ = writeln!(
            text,
            "  across     {} proofs accepted before the kill sent again after the recovery, \
             {accepted} accepted again ({why}) ({})",
            across_restart.len(),
            answers_text(&count_answers(&across_restart))
        );
        let jti = &json["jti_before_kill"];
        let _ = writeln!(
            text,
            "  jti        of the {} recorded last before the kill, {} still in Redis at the end, \
             {} lost, {} not checked",
            jti["recorded"], jti["kept"], jti["lost"], jti["not_checked"]
        );
    }
    if violations.is_empty() {
        let _ = writeln!(text, "  PASS");
    } else {
        for violation in &violations {
            let _ = writeln!(text, "  FAIL: {violation}");
        }
    }
    Report {
        json,
        text,
        violations,
    }
}
