//! The authorization server and resource server: state, routes and handlers.
//!
//! - `GET /.well-known/oauth-authorization-server`: metadata (RFC 8414).
//! - `POST /token`: the `client_credentials` grant, DPoP-bound (RFC 9449 §5), with an
//!   authorization-server nonce.
//! - `GET /resource`: a protected resource taking `Authorization: DPoP <token>` (RFC 9449 §7),
//!   with a resource-server nonce from a separate source (§9).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dpop_nonce::axum::Reply;
use dpop_nonce::http::expose_dpop_headers;
use dpop_nonce::render::{Algs, Answer, ErrorDescription, Role};
use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayCheck, ReplayKey};
use dpop_nonce::{InMemoryNonceSource, NonceValidator};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};

use crate::proof::{self, Expected, ProofError, SUPPORTED_ALGS, VerifiedProof};

/// The one registered client.
const CLIENT_ID: &str = "demo-client";
const CLIENT_SECRET: &str = "demo-secret";
/// Lifetime of an access token, in seconds.
const TOKEN_LIFETIME: i64 = 300;
/// Live access tokens kept at most; past this, token requests get 503 until some expire.
const MAX_TOKENS: usize = 100_000;
/// Longest `Authorization` header value accepted, in bytes.
const MAX_AUTHORIZATION_LEN: usize = 4096;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL clients reach the server at, without a trailing slash: the issuer, and the base
    /// of the `htu` every proof must name.
    pub public_url: String,
    /// How often nonces rotate.
    pub rotation: Duration,
}

/// Everything the handlers share.
struct AppState {
    issuer: String,
    token_url: String,
    resource_url: String,
    /// Nonces of the authorization server (`/token`).
    as_nonces: NonceValidator<InMemoryNonceSource>,
    /// Nonces of the resource server (`/resource`): a separate source, so a nonce of one server
    /// is refused by the other (RFC 9449 §9).
    rs_nonces: NonceValidator<InMemoryNonceSource>,
    replay: InMemoryReplayCache,
    /// Access tokens by the base64url SHA-256 of the token, which is also the `ath` a proof
    /// must carry for it: only hashes of tokens are kept.
    tokens: Mutex<HashMap<String, Grant>>,
    /// The resource server, naming the accepted algorithms in its challenges.
    resource_server: Role,
}

/// What an access token stands for.
struct Grant {
    client_id: String,
    /// The thumbprint of the key the token is bound to (`cnf.jkt`).
    jkt: String,
    expires_at: i64,
}

/// Builds the router.
///
/// # Errors
///
/// A message when the configuration cannot work (a rotation interval that is not positive).
pub fn router(config: Config) -> Result<Router, String> {
    let nonce_source = || {
        InMemoryNonceSource::builder()
            .rotation(config.rotation)
            .build()
            .map_err(|err| err.to_string())
    };
    let as_source = nonce_source()?;
    // A proof is accepted only while its nonce is, so the replay cache keeps each `jti` for the
    // longest time a nonce of this rotation lives.
    let replay = InMemoryReplayCache::for_source(&as_source);
    let issuer = config.public_url.trim_end_matches('/').to_owned();
    let state = AppState {
        token_url: format!("{issuer}/token"),
        resource_url: format!("{issuer}/resource"),
        issuer,
        as_nonces: NonceValidator::new(as_source),
        rs_nonces: NonceValidator::new(nonce_source()?),
        replay,
        tokens: Mutex::new(HashMap::new()),
        resource_server: resource_server()?,
    };
    Ok(Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/token", post(token))
        .route("/resource", get(resource))
        .fallback(|| async { error_json(StatusCode::NOT_FOUND, "not_found", "No such endpoint") })
        .method_not_allowed_fallback(|| async {
            error_json(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "Method not allowed on this endpoint",
            )
        })
        .with_state(Arc::new(state)))
}

async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "issuer": state.issuer,
        "token_endpoint": state.token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "dpop_signing_alg_values_supported": SUPPORTED_ALGS,
    }))
    .into_response()
}

/// `POST /token`.
async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut response = issue_token(&state, &headers, body).into_response();
    // Browser clients may read the nonce and the challenge (RFC 9449 §8, §7.1).
    expose_dpop_headers(response.headers_mut());
    response
}

fn issue_token(
    state: &AppState,
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

    // RFC 9449 §4.3: the proof, then its nonce (§8), then its `jti` (§11.1).
    let as_error = |ProofError(why)| {
        Refusal::dpop(
            described(Answer::invalid_dpop_proof(), why),
            Role::AuthorizationServer,
        )
    };
    let proof = single_proof(headers)
        .and_then(|proof| {
            proof::verify(
                proof,
                Expected {
                    method: "POST",
                    url: &state.token_url,
                    now: now(),
                },
            )
        })
        .map_err(as_error)?;
    let accepted = state
        .as_nonces
        .validate(proof.nonce.as_deref())
        .map_err(|refused| Refusal::dpop(refused.into(), Role::AuthorizationServer))?;
    check_replay(state, &proof).map_err(as_error)?;

    let access_token = random_token().ok_or(Refusal::Unavailable)?;
    let grant = Grant {
        client_id,
        jkt: proof.jkt,
        expires_at: now() + TOKEN_LIFETIME,
    };
    store_token(state, &access_token, grant)?;
    // `accepted` adds the refresh nonce, if any, as the one `DPoP-Nonce` header (§8.2).
    let body = Json(json!({
        "access_token": access_token,
        "token_type": "DPoP",
        "expires_in": TOKEN_LIFETIME,
    }));
    Ok((accepted, [(CACHE_CONTROL, "no-store")], body).into_response())
}

/// `GET /resource`.
async fn resource(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut response = serve_resource(&state, &headers).into_response();
    expose_dpop_headers(response.headers_mut());
    response
}

fn serve_resource(state: &AppState, headers: &HeaderMap) -> Result<Response, Refusal> {
    let access_token = dpop_access_token(headers).map_err(|why| match why {
        None => Refusal::challenge(Challenge::NoCredentials, "DPoP access token required"),
        Some(why) => Refusal::challenge(Challenge::InvalidToken, why),
    })?;
    let proof = single_proof(headers)
        .and_then(|proof| {
            proof::verify(
                proof,
                Expected {
                    method: "GET",
                    url: &state.resource_url,
                    now: now(),
                },
            )
        })
        .map_err(|ProofError(why)| Refusal::challenge(Challenge::InvalidDpopProof, why))?;

    // The token and its key binding come before the nonce: a proof made with the wrong key
    // cannot be fixed by a retry with a fresh nonce, so it must not be told to try one.
    let token_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()));
    let client_id = {
        let tokens = state.tokens.lock().map_err(|_| Refusal::Unavailable)?;
        let grant = tokens
            .get(&token_hash)
            .filter(|grant| grant.expires_at > now())
            .ok_or_else(|| {
                Refusal::challenge(Challenge::InvalidToken, "Unknown or expired access token")
            })?;
        if grant.jkt != proof.jkt {
            return Err(Refusal::challenge(
                Challenge::InvalidToken,
                "Invalid DPoP key binding",
            ));
        }
        grant.client_id.clone()
    };
    if proof.ath.as_deref() != Some(token_hash.as_str()) {
        return Err(Refusal::challenge(
            Challenge::InvalidToken,
            "DPoP proof ath does not match the access token",
        ));
    }
    let accepted = state
        .rs_nonces
        .validate(proof.nonce.as_deref())
        .map_err(|refused| Refusal::dpop(refused.into(), state.resource_server.clone()))?;
    check_replay(state, &proof)
        .map_err(|ProofError(why)| Refusal::challenge(Challenge::InvalidDpopProof, why))?;

    let body = Json(json!({
        "message": "Hello from the resource server",
        "client_id": client_id,
        "jkt": proof.jkt,
    }));
    Ok((accepted, body).into_response())
}

/// The `DPoP` header: exactly one, of bounded size, visible ASCII.
fn single_proof(headers: &HeaderMap) -> Result<&str, ProofError> {
    let mut values = headers.get_all("dpop").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ProofError("Exactly one DPoP header is required"));
    };
    if value.len() > proof::MAX_PROOF_LEN {
        return Err(ProofError("DPoP proof is too large"));
    }
    value
        .to_str()
        .map_err(|_| ProofError("DPoP header is not visible ASCII"))
}

/// Records the proof's `jti`, scoped by its key, and refuses a proof seen before. Any cache
/// failure refuses the proof too: a `jti` that cannot be shown to be new is not accepted.
fn check_replay(state: &AppState, proof: &VerifiedProof) -> Result<(), ProofError> {
    let key = ReplayKey::new(&proof.jkt, &proof.jti)
        .map_err(|_| ProofError("DPoP proof jti is not acceptable"))?;
    match state.replay.insert(&key) {
        Ok(ReplayCheck::Fresh) => Ok(()),
        Ok(ReplayCheck::Replayed) => Err(ProofError("DPoP proof was already used")),
        Err(_) => Err(ProofError(
            "DPoP proof could not be checked for replay; try again",
        )),
    }
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

/// The token of `Authorization: DPoP <token>`: `Err(None)` when there is no `Authorization`
/// header at all, `Err(Some(why))` when there is one that does not fit.
fn dpop_access_token(headers: &HeaderMap) -> Result<&str, Option<&'static str>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(Some("Exactly one Authorization header is required")),
    };
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Some("Authorization header is too large"));
    }
    let value = value
        .to_str()
        .map_err(|_| Some("Authorization header is not visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Some("Authorization header is malformed"))?;
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err(Some(
            "A DPoP-bound access token must be sent with the DPoP scheme",
        ));
    }
    let token = token.trim();
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(token68) {
        return Err(Some("Access token is malformed"));
    }
    Ok(token)
}

fn store_token(state: &AppState, access_token: &str, grant: Grant) -> Result<(), Refusal> {
    let mut tokens = state.tokens.lock().map_err(|_| Refusal::Unavailable)?;
    if tokens.len() >= MAX_TOKENS {
        let now = now();
        tokens.retain(|_, grant| grant.expires_at > now);
        if tokens.len() >= MAX_TOKENS {
            return Err(Refusal::Unavailable);
        }
    }
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()));
    tokens.insert(hash, grant);
    Ok(())
}

/// 256 bits from the operating system, base64url: an opaque access token.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    OsRng.try_fill_bytes(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The resource server's role: its challenges name [`SUPPORTED_ALGS`].
fn resource_server() -> Result<Role, String> {
    let algs = Algs::new(SUPPORTED_ALGS).map_err(|err| err.to_string())?;
    Ok(Role::ResourceServer { algs })
}

/// `answer` with one of the server's own messages as its `error_description`, repaired rather
/// than dropped should one ever hold a character that cannot be sent.
fn described(answer: Answer, text: &str) -> Answer {
    match ErrorDescription::lossy(text) {
        Some(description) => answer.with_description(description),
        None => answer,
    }
}

/// Every way a request is refused. Each renders with `Cache-Control: no-store`.
enum Refusal {
    /// An error of the token endpoint (or any endpoint) with its status: a JSON body
    /// (RFC 6749 §5.2).
    Request {
        status: StatusCode,
        error: &'static str,
        description: &'static str,
    },
    /// 401 `invalid_client`, with a `Basic` challenge when the client tried `Basic`.
    Client { tried_basic: bool },
    /// A DPoP answer rendered by `dpop_nonce` for the server that gives it: 400 with a JSON body
    /// from the authorization server, 401 with a `DPoP` challenge from the resource server, one
    /// `DPoP-Nonce` when there is a nonce.
    Dpop(Box<Reply>),
    /// A resource-server refusal: the `DPoP` challenge of [`Refusal::Dpop`] (RFC 9449 §7.1),
    /// with the error repeated in a JSON body for clients that read bodies.
    Challenge {
        challenge: Challenge,
        description: &'static str,
    },
    /// The server cannot take more work right now.
    Unavailable,
}

/// What a resource server's challenge says.
#[derive(Clone, Copy)]
enum Challenge {
    /// No `Authorization` at all: the bare challenge, without error information
    /// (RFC 6750 §3.1). The JSON body still says `invalid_token`.
    NoCredentials,
    /// The token is malformed, unknown, expired, or bound to another key.
    InvalidToken,
    /// The proof is missing, invalid or replayed.
    InvalidDpopProof,
}

impl Challenge {
    fn answer(self) -> Answer {
        match self {
            Self::NoCredentials => Answer::no_credentials(),
            Self::InvalidToken => Answer::invalid_token(),
            Self::InvalidDpopProof => Answer::invalid_dpop_proof(),
        }
    }

    /// The `error` of the JSON body.
    fn error(self) -> &'static str {
        match self {
            Self::NoCredentials | Self::InvalidToken => "invalid_token",
            Self::InvalidDpopProof => "invalid_dpop_proof",
        }
    }
}

impl Refusal {
    fn invalid_request(description: &'static str) -> Self {
        Self::Request {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
        }
    }

    fn dpop(answer: Answer, role: Role) -> Self {
        Self::Dpop(Box::new(answer.into_axum(role)))
    }

    fn challenge(challenge: Challenge, description: &'static str) -> Self {
        Self::Challenge {
            challenge,
            description,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error, description, challenge) = match self {
            Self::Dpop(reply) => return reply.into_response(),
            Self::Challenge {
                challenge,
                description,
            } => {
                let role = resource_server().unwrap_or(Role::ResourceServer { algs: Algs::none() });
                let answer = described(challenge.answer(), description);
                let (parts, _) = answer.into_axum(role).into_response().into_parts();
                let body = Json(json!({
                    "error": challenge.error(),
                    "error_description": description,
                }));
                return (parts, body).into_response();
            }
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
