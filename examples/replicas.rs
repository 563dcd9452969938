//! Two replicas of one authorization server, in one process, sharing nonces through a secret.
//!
//! Each replica has its own clock, a few seconds apart, as real hosts do. Neither stores nor
//! sends anything to the other, yet a nonce handed out by one is accepted by the other, across
//! rotations. A resource server using the same secret under another label refuses them.
//!
//! ```text
//! cargo run --example replicas --features derived
//! ```

use std::sync::Arc;

use dpop_nonce::ConfigError;
use dpop_nonce::derived::DerivedNonceSource;
use dpop_nonce::{Clock, ManualClock, NonceSource, NonceValidator};
use time::Duration;

fn main() -> Result<(), ConfigError> {
    // In production: 32 or more random bytes from your secret store, the same on every replica.
    let secret = [0x42u8; 32];
    let rotation = Duration::minutes(5);

    // Replica B's clock runs 3 seconds ahead of replica A's (the default skew tolerance is 5 s).
    // 10 seconds before the end of a 5-minute window (1_800_000_000 is a multiple of 300).
    let start = Duration::seconds(1_800_000_000 + 290);
    let clock_a = Arc::new(ManualClock::at_unix(start));
    let clock_b = Arc::new(ManualClock::at_unix(start + Duration::seconds(3)));

    let replica = |label: &str, clock: &Arc<ManualClock>| {
        DerivedNonceSource::builder(label)
            .secret(secret)
            .rotation(rotation)
            .clock(Arc::clone(clock))
            .build()
            .map(NonceValidator::new)
    };
    let a = replica("as", &clock_a)?;
    let b = replica("as", &clock_b)?;
    let resource_server = replica("rs", &clock_a)?;

    println!(
        "two replicas of the authorization server (label \"as\"), rotation {} s, skew {} s",
        rotation.whole_seconds(),
        a.source().lead().whole_seconds()
    );
    println!(
        "a nonce is accepted for at most {} s; give that to the replay cache\n",
        a.source().max_nonce_lifetime().whole_seconds()
    );

    let first = a.issue();
    for step in 0..4 {
        let nonce = a.issue();
        let window = |clock: &ManualClock| a.source().rotation().window_of(clock.unix_time());
        let (window_a, window_b) = (window(&clock_a), window(&clock_b));
        println!(
            "t_A = {} s (window {window_a}), t_B = {} s (window {window_b}){}",
            clock_a.unix_time().whole_seconds(),
            clock_b.unix_time().whole_seconds(),
            if window_a == window_b {
                ""
            } else {
                ": B has rotated, A has not"
            }
        );
        println!("  replica A hands out  {nonce}");
        match b.validate(Some(nonce.as_str())) {
            Ok(accepted) => match accepted.refresh() {
                None => println!("  replica B accepts it as current"),
                Some(fresh) => println!("  replica B accepts it, and hands out {fresh}"),
            },
            Err(refused) => println!("  replica B REFUSES it ({})", refused.reason()),
        }
        let from_b = b.issue();
        let verdict = if a.validate(Some(from_b.as_str())).is_ok() {
            "accepts"
        } else {
            "REFUSES"
        };
        println!("  replica A {verdict} B's nonce {from_b}");
        match resource_server.validate(Some(nonce.as_str())) {
            Ok(_) => println!("  the resource server (\"rs\") ACCEPTS it: labels do not separate"),
            Err(refused) => println!(
                "  the resource server (\"rs\") refuses it ({}): a nonce is only good where it was issued",
                refused.reason()
            ),
        }
        let first_at_b = if b.validate(Some(first.as_str())).is_ok() {
            "still accepted"
        } else {
            "expired"
        };
        println!("  A's very first nonce, at replica B: {first_at_b}");
        println!();

        // The first steps cross a rotation while the clocks disagree about it.
        let by = if step == 0 {
            Duration::seconds(8)
        } else {
            Duration::minutes(4)
        };
        clock_a.advance(by);
        clock_b.advance(by);
    }
    Ok(())
}
