//! The smallest useful axum resource server that demands DPoP nonces.
//!
//! Run it with `cargo run --example axum_minimal --features axum [-- ADDR]`, then:
//!
//! ```text
//! curl -i http://127.0.0.1:3000/resource                          # 401, DPoP-Nonce: N
//! curl -i -H 'X-Fake-Nonce-Claim: N' http://127.0.0.1:3000/resource  # 200
//! ```

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use dpop_nonce::axum::Reply;
use dpop_nonce::render::{Algs, Answer, Role};
use dpop_nonce::{InMemoryNonceSource, NonceValidator};

struct AppState {
    nonces: NonceValidator<InMemoryNonceSource>,
    role: Role,
}

async fn resource(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Reply> {
    // FAKE, for the example only: a real server verifies the DPoP proof (the `DPoP` header) with
    // its JOSE library and passes the proof's `nonce` claim here. This example skips all proof
    // checking and reads the claim from a plain header instead.
    let claim = headers
        .get("x-fake-nonce-claim")
        .and_then(|value| value.to_str().ok());

    // A missing or stale nonce becomes a 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`
    // and one `DPoP-Nonce`; an accepted one may carry a fresh nonce for the 200.
    let accepted = state
        .nonces
        .validate(claim)
        .map_err(|refused| Answer::from(refused).into_axum(state.role.clone()))?;
    Ok((accepted, "protected data\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = Arc::new(AppState {
        nonces: NonceValidator::new(InMemoryNonceSource::new()),
        role: Role::ResourceServer {
            algs: Algs::new(["ES256", "EdDSA"])?,
        },
    });
    let app = Router::new()
        .route("/resource", get(resource))
        .with_state(state);

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
