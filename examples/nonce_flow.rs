//! The whole `use_dpop_nonce` dance in one process, printed step by step.
//!
//! An authorization server and a resource server each keep their own nonce source on a manual
//! clock, so rotation happens instantly. A pretend client sends proofs whose `nonce` claim is
//! whatever it last learned from a `DPoP-Nonce` header; proof signing and verification are left
//! out, since this crate only checks the claim.
//!
//! Run it with `cargo run --example nonce_flow`.

use std::sync::Arc;

use dpop_nonce::render::header::DPOP_NONCE;
use dpop_nonce::render::{Algs, Answer, ResponseParts, Role};
use dpop_nonce::{Accepted, InMemoryNonceSource, ManualClock, NonceValidator, UseDpopNonce};
use time::Duration;
use time::macros::datetime;

const ROTATION: Duration = Duration::minutes(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-21 09:00:00 UTC)));
    let source = |clock: &Arc<ManualClock>| {
        InMemoryNonceSource::builder()
            .rotation(ROTATION)
            .clock(Arc::clone(clock))
            .build()
    };
    // RFC 9449 §9: each server hands out, and accepts, only its own nonces.
    let token_endpoint = NonceValidator::new(source(&clock)?);
    let resource = NonceValidator::new(source(&clock)?);
    let api = Role::ResourceServer {
        algs: Algs::new(["ES256", "EdDSA", "PS256"])?,
    };

    println!("== Authorization server, token endpoint (rotation every {ROTATION}) ==\n");

    step(
        &clock,
        "1. The client sends its first proof, without a nonce claim",
    );
    let refused = token_endpoint.validate(None).unwrap_err();
    let answer = show_refusal(refused, &Role::AuthorizationServer);
    let mut client_nonce = learn(&answer);

    step(&clock, "2. It retries once, with the nonce from DPoP-Nonce");
    let accepted = token_endpoint
        .validate(Some(&client_nonce))
        .expect("the retry succeeds");
    show_accepted(&accepted, &mut client_nonce);

    clock.advance(ROTATION);
    step(
        &clock,
        "3. One rotation later, its nonce is the previous one: still accepted",
    );
    let accepted = token_endpoint
        .validate(Some(&client_nonce))
        .expect("previous is accepted");
    let stale = client_nonce.clone();
    show_accepted(&accepted, &mut client_nonce);
    assert_ne!(stale, client_nonce, "a refresh nonce came with the 200");

    clock.advance(ROTATION * 2);
    step(&clock, "4. Two rotations later, that nonce has expired");
    let refused = token_endpoint.validate(Some(&client_nonce)).unwrap_err();
    assert_ne!(
        refused.nonce().as_str(),
        client_nonce,
        "never the nonce it just sent"
    );
    let answer = show_refusal(refused, &Role::AuthorizationServer);
    client_nonce = learn(&answer);
    let accepted = token_endpoint
        .validate(Some(&client_nonce))
        .expect("the retry succeeds");
    println!("   retry with the new nonce:");
    show_accepted(&accepted, &mut client_nonce);

    println!("\n== Resource server (its own nonces) ==\n");

    step(
        &clock,
        "5. The client calls the API with the authorization server's nonce",
    );
    let refused = resource.validate(Some(&client_nonce)).unwrap_err();
    let answer = show_refusal(refused, &api);
    let mut api_nonce = learn(&answer);

    step(
        &clock,
        "6. It retries once, with the resource server's nonce",
    );
    let accepted = resource
        .validate(Some(&api_nonce))
        .expect("the retry succeeds");
    show_accepted(&accepted, &mut api_nonce);

    step(
        &clock,
        "7. A proof without a nonce, after one was handed out, is a downgrade",
    );
    let refused = resource.validate(None).unwrap_err();
    show_refusal(refused, &api);

    println!(
        "\nDone: every refusal carried exactly one fresh DPoP-Nonce, and every retry succeeded."
    );
    Ok(())
}

fn step(clock: &ManualClock, what: &str) {
    use dpop_nonce::Clock as _;
    let (hour, minute, second) = clock.now().to_hms();
    println!("[{hour:02}:{minute:02}:{second:02}] {what}");
}

/// Prints the answer `role` gives to `refused`, and returns it.
fn show_refusal(refused: UseDpopNonce, role: &Role) -> ResponseParts {
    println!("   -> use_dpop_nonce, reason: {}", refused.reason());
    let answer = Answer::from(refused).to_parts(role);
    println!("   HTTP {}", answer.status);
    for (name, value) in &answer.headers {
        println!("   {name}: {value}");
    }
    if !answer.body.is_empty() {
        println!("\n   {}", answer.body);
    }
    println!();
    answer
}

fn show_accepted(accepted: &Accepted, client_nonce: &mut String) {
    println!("   -> accepted: HTTP 200");
    match accepted.refresh() {
        Some(refresh) => {
            println!("   {DPOP_NONCE}: {refresh}   (the client switches to it)");
            *client_nonce = refresh.to_string();
        }
        None => println!("   (no DPoP-Nonce needed: the client's nonce is current)"),
    }
    println!();
}

/// What the client takes from an answer: the one `DPoP-Nonce` header.
fn learn(answer: &ResponseParts) -> String {
    let nonces: Vec<_> = answer
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(DPOP_NONCE))
        .collect();
    assert_eq!(nonces.len(), 1, "exactly one DPoP-Nonce header");
    nonces[0].1.clone()
}
