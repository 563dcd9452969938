//! The authorization server and resource server: state, routes and handlers.
//!
//! - `GET /.well-known/oauth-authorization-server`: metadata (RFC 8414).
//! - `POST /token`: the `client_credentials` grant, DPoP-bound (RFC 9449 §5), with an
//!   authorization-server nonce. The proof is verified by the `TokenEndpointProof` extractor.
//! - `GET /resource`: a protected resource taking `Authorization: DPoP <token>` (RFC 9449 §7),
//!   with a resource-server nonce from a separate source (§9). The route sits behind
//!   `DpopLayer`, which answers every refusal itself: the handler only runs for a valid token
//!   and a verified proof of its key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dpop_nonce::axum::{Reply, TokenEndpointProof};
use dpop_nonce::http::expose_dpop_headers;
use dpop_nonce::proof::{VerifiedProof, dpop_access_token};
use dpop_nonce::tower::DpopLayer;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use time::Duration;

use crate::stores::{self, Backend, EndpointVerifier, Nonces, ReplayStore};
use crate::tokens::TokenKey;

/// The one registered client.
const CLIENT_ID: &str = "demo-client";
const CLIENT_SECRET: &str = "demo-secret";
/// Lifetime of an access token, in seconds.
const TOKEN_LIFETIME: i64 = 300;
/// Longest `Basic` credentials accepted, in bytes.
const MAX_AUTHORIZATION_LEN: usize = 4096;

/// How to run the server.
pub struct Config {
    /// The URL clients reach the server at, without a trailing slash: the issuer, and the base
    /// of the `htu` every proof must name.
    pub public_url: String,
    /// How often nonces rotate.
    pub rotation: Duration,
    /// Where nonces and replay entries live.
    pub backend: Backend,
    /// Signs the access tokens, and checks them at the resource server.
    pub token_key: TokenKey,
}

impl Config {
    /// A server under `public_url` with in-memory state and a random token secret.
    pub fn in_memory(public_url: impl Into<String>, rotation: Duration) -> Result<Self, String> {
        Ok(Self {
            public_url: public_url.into(),
            rotation,
            backend: Backend::default(),
            token_key: TokenKey::random()?,
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    issuer: Arc<str>,
    /// Proofs at `/token`, with the authorization server's nonces.
    token_proofs: Arc<EndpointVerifier>,
    tokens: Arc<TokenKey>,
}

/// How `TokenEndpointProof` finds the token endpoint's verifier in the state.
impl FromRef<AppState> for Arc<EndpointVerifier> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.token_proofs)
    }
}

/// The verified proof of a token request.
type TokenProof = TokenEndpointProof<Nonces, ReplayStore>;

/// Builds the router. Call it inside the tokio runtime that serves it.
///
/// # Errors
///
/// A message when the configuration cannot work (a rotation interval out of range, a public
/// URL that is not an absolute `http(s)` URL without query).
pub fn router(config: Config) -> Result<Router, String> {
    let issuer = config.public_url.trim_end_matches('/').to_owned();
    let token_proofs = stores::verifier(&config.backend, "as", &issuer, config.rotation)?;
    let resource_proofs = stores::verifier(&config.backend, "rs", &issuer, config.rotation)?;
    let tokens = Arc::new(config.token_key);

    // The resource server: the layer checks the token's binding and the whole proof, and
    // answers every refusal (401, `WWW-Authenticate: DPoP`, one `DPoP-Nonce`) itself.
    let protected = Router::new().route("/resource", get(resource)).route_layer(
        DpopLayer::new(Arc::new(resource_proofs), Arc::clone(&tokens)).expose_to_browsers(),
    );

    let state = AppState {
        issuer: issuer.into(),
        token_proofs: Arc::new(token_proofs),
        tokens,
    };
    Ok(Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/token", post(token))
        .merge(protected)
        .fallback(|| async { error_json(StatusCode::NOT_FOUND, "not_found", "No such endpoint") })
        .method_not_allowed_fallback(|| async {
            error_json(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "Method not allowed on this endpoint",
            )
        })
        .with_state(state))
}

/// `GET /resource`, behind `DpopLayer`: the token is valid and the proof verified.
async fn resource(
    State(app): State<AppState>,
    Extension(proof): Extension<VerifiedProof>,
    headers: HeaderMap,
) -> Response {
    // Who the token was issued to (the layer already checked it is valid and bound to the key).
    let client_id = dpop_access_token(headers.get_all(AUTHORIZATION))
        .ok()
        .and_then(|token| app.tokens.verify(token))
        .map(|grant| grant.client_id);
    Json(json!({
        "message": "Hello from the resource server",
        "client_id": client_id,
        "jkt": proof.jkt().as_str(),
    }))
    .into_response()
}

async fn metadata(State(app): State<AppState>) -> Response {
    let algs: Vec<&str> = app
        .token_proofs
        .algorithms()
        .iter()
        .map(|alg| alg.name())
        .collect();
    Json(json!({
        "issuer": &*app.issuer,
        "token_endpoint": format!("{}/token", app.issuer),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "dpop_signing_alg_values_supported": algs,
    }))
    .into_response()
}

/// `POST /token`. The extractor has verified the proof (RFC 9449 §4.3 in one call: the
/// proof, its nonce (§8), then its `jti` (§11.1)); a refused proof is answered only once the
/// request and the client are known to be good.
async fn token(
    State(app): State<AppState>,
    proof: Result<TokenProof, Reply>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut response = issue_token(&app, proof, &headers, body).into_response();
    // Browser clients may read the nonce (RFC 9449 §8).
    expose_dpop_headers(response.headers_mut());
    response
}

fn issue_token(
    app: &AppState,
    proof: Result<TokenProof, Reply>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let form = parse_form(headers, body)?;
    let client_id = authenticate_client(headers, &form)?;
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(Refusal::Request {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "Only client_credentials is supported",
            });
        }
        None => return Err(Refusal::invalid_request("grant_type is missing")),
    }
    let proof = proof.map_err(|reply| Refusal::Dpop(Box::new(reply)))?;

    // The token is bound to the proof's key: `cnf.jkt` (RFC 9449 §6).
    let access_token = app
        .tokens
        .issue(&client_id, proof.jkt().as_str(), TOKEN_LIFETIME)
        .ok_or(Refusal::Unavailable)?;
    let body = Json(json!({
        "access_token": access_token,
        "token_type": "DPoP",
        "expires_in": TOKEN_LIFETIME,
    }));
    // The proof adds the refresh nonce, if any, as the one `DPoP-Nonce` header (§8.2).
    Ok(([(CACHE_CONTROL, "no-store")], proof.into_inner(), body).into_response())
}

/// The token endpoint's form body, refusing anything else and repeated parameters.
fn parse_form(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HashMap<String, String>, Refusal> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Refusal::invalid_request(
            "The body must be application/x-www-form-urlencoded",
        ));
    }
    let body = body.map_err(|_| Refusal::invalid_request("The body could not be read"))?;
    let mut form = HashMap::new();
    for (name, value) in form_urlencoded::parse(&body) {
        if form.insert(name.into_owned(), value.into_owned()).is_some() {
            return Err(Refusal::invalid_request("A parameter is repeated"));
        }
    }
    Ok(form)
}

/// `client_secret_basic` or `client_secret_post`, never both (RFC 6749 §2.3.1).
fn authenticate_client(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, Refusal> {
    let basic = headers
        .get(AUTHORIZATION)
        .map(|value| parse_basic(value).ok_or(Refusal::Client { tried_basic: true }))
        .transpose()?;
    let post = form
        .get("client_secret")
        .map(|secret| (form.get("client_id"), secret));
    let (client_id, secret, used_basic) = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(Refusal::invalid_request(
                "Use one client authentication method only",
            ));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|form_id| *form_id != id) {
                return Err(Refusal::invalid_request(
                    "client_id does not match the authenticated client",
                ));
            }
            (id, secret, true)
        }
        (None, Some((Some(id), secret))) => (id.clone(), secret.clone(), false),
        (None, Some((None, _))) => return Err(Refusal::invalid_request("client_id is missing")),
        (None, None) => return Err(Refusal::Client { tried_basic: false }),
    };
    let known = client_id.as_bytes().ct_eq(CLIENT_ID.as_bytes())
        & secret.as_bytes().ct_eq(CLIENT_SECRET.as_bytes());
    if bool::from(known) {
        Ok(client_id)
    } else {
        Err(Refusal::Client {
            tried_basic: used_basic,
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || credentials.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(credentials.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(value: &str) -> Option<String> {
    let plus_as_space = value.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// Every way a token request is refused. Each renders with `Cache-Control: no-store`.
enum Refusal {
    /// An error with its status: a JSON body (RFC 6749 §5.2).
    Request {
        status: StatusCode,
        error: &'static str,
        description: &'static str,
    },
    /// 401 `invalid_client`, with a `Basic` challenge when the client tried `Basic`.
    Client { tried_basic: bool },
    /// The extractor's answer to a refused proof: 400 with a JSON body, and one `DPoP-Nonce`
    /// with `use_dpop_nonce`.
    Dpop(Box<Reply>),
    /// The server cannot take more work right now.
    Unavailable,
}

impl Refusal {
    fn invalid_request(description: &'static str) -> Self {
        Self::Request {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error, description, challenge) = match self {
            Self::Dpop(reply) => return reply.into_response(),
            Self::Request {
                status,
                error,
                description,
            } => (status, error, description, None),
            Self::Client { tried_basic } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
                tried_basic.then_some(r#"Basic realm="token""#),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server is busy; try again later",
                None,
            ),
        };
        let mut response = error_json(status, error, description);
        if let Some(value) = challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        response
    }
}

/// An OAuth error body, never cached.
fn error_json(status: StatusCode, error: &str, description: &str) -> Response {
    let body = Json(json!({ "error": error, "error_description": description }));
    (status, [(CACHE_CONTROL, "no-store")], body).into_response()
}
