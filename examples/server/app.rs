//! The authorization server and resource server: state, routes and handlers.
//!
//! - `GET /.well-known/oauth-authorization-server`: metadata (RFC 8414).
//! - `POST /token`: the `client_credentials` grant, DPoP-bound (RFC 9449 §5), with an
//!   authorization-server nonce.
//! - `GET /resource`: a protected resource taking `Authorization: DPoP <token>` (RFC 9449 §7),
//!   with a resource-server nonce from a separate source (§9).
//!
//! Each endpoint has its own `dpop_nonce::proof::Verifier`: it checks the whole proof (RFC 9449
//! §4.3), the nonce and the `jti`, and its refusals render through `dpop_nonce::render`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dpop_nonce::axum::Reply;
use dpop_nonce::http::expose_dpop_headers;
use dpop_nonce::proof::{ProofRequest, Reason, Rejection, Verifier, dpop_access_token};
use dpop_nonce::render::{Answer, ErrorDescription, Role};
use dpop_nonce::replay::InMemoryReplayCache;
use dpop_nonce::{InMemoryNonceSource, NonceValidator};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};

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

/// The proof verifier of one endpoint: its own nonce source and replay cache.
type EndpointVerifier = Verifier<InMemoryNonceSource, InMemoryReplayCache>;

/// Everything the handlers share.
struct AppState {
    issuer: String,
    token_url: String,
    /// Proofs at `/token`, with the authorization server's nonces.
    token_proofs: EndpointVerifier,
    /// Proofs at `/resource`, with the resource server's nonces: a separate source, so a nonce
    /// of one server is refused by the other (RFC 9449 §9).
    resource_proofs: EndpointVerifier,
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

/// A verifier for the endpoints under `public_url`: nonces rotating every `rotation`, required
/// in every proof; the default algorithms (ES256, ES384, EdDSA, Ed25519, RS256, PS256) and
/// `iat` leeways.
///
/// The replay cache keeps each `jti` as long as its proof could pass again: as long as a nonce
/// lives, and at least the `iat` window, which is the longer of the two with short rotations.
/// The verifier refuses to be built with a cache that forgets sooner.
fn endpoint_verifier(public_url: &str, rotation: Duration) -> Result<EndpointVerifier, String> {
    let source = InMemoryNonceSource::builder()
        .rotation(rotation)
        .build()
        .map_err(|err| err.to_string())?;
    let replay = InMemoryReplayCache::for_proofs(&source);
    Verifier::builder(NonceValidator::new(source), replay)
        .public_base_url(public_url)
        .build()
        .map_err(|err| format!("{public_url}: {err}"))
}

/// Builds the router.
///
/// # Errors
///
/// A message when the configuration cannot work (a rotation interval that is not positive, a
/// public URL that is not an absolute `http(s)` URL without query).
pub fn router(config: Config) -> Result<Router, String> {
    let issuer = config.public_url.trim_end_matches('/').to_owned();
    let token_proofs = endpoint_verifier(&issuer, config.rotation)?;
    let resource_proofs = endpoint_verifier(&issuer, config.rotation)?;
    let state = AppState {
        token_url: format!("{issuer}/token"),
        issuer,
        resource_server: Role::ResourceServer {
            algs: resource_proofs.algs(),
        },
        token_proofs,
        resource_proofs,
        tokens: Mutex::new(HashMap::new()),
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
    let algs: Vec<&str> = state
        .token_proofs
        .algorithms()
        .iter()
        .map(|alg| alg.name())
        .collect();
    Json(json!({
        "issuer": state.issuer,
        "token_endpoint": state.token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "dpop_signing_alg_values_supported": algs,
    }))
    .into_response()
}

/// `POST /token`.
async fn token(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut response = issue_token(&state, &uri, &headers, body).into_response();
    // Browser clients may read the nonce and the challenge (RFC 9449 §8, §7.1).
    expose_dpop_headers(response.headers_mut());
    response
}

fn issue_token(
    state: &AppState,
    uri: &Uri,
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

    // RFC 9449 §4.3 in one call: the proof, its nonce (§8), then its `jti` (§11.1).
    let target = uri.to_string();
    let request = ProofRequest::new("POST", &target, headers.get_all("dpop"));
    let verified = state
        .token_proofs
        .verify(&request)
        .map_err(|refused| Refusal::dpop(refused.answer(), Role::AuthorizationServer))?;

    let access_token = random_token().ok_or(Refusal::Unavailable)?;
    let grant = Grant {
        client_id,
        jkt: verified.jkt().as_str().to_owned(),
        expires_at: now() + TOKEN_LIFETIME,
    };
    store_token(state, &access_token, grant)?;
    let body = Json(json!({
        "access_token": access_token,
        "token_type": "DPoP",
        "expires_in": TOKEN_LIFETIME,
    }));
    // `verified` adds the refresh nonce, if any, as the one `DPoP-Nonce` header (§8.2).
    Ok(([(CACHE_CONTROL, "no-store")], verified, body).into_response())
}

/// `GET /resource`.
async fn resource(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Response {
    let mut response = serve_resource(&state, &uri, &headers).into_response();
    expose_dpop_headers(response.headers_mut());
    response
}

fn serve_resource(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<Response, Refusal> {
    let refuse = |refused| Refusal::resource(&state.resource_server, refused);
    let authorization = headers.get_all(AUTHORIZATION);
    if authorization
        .iter()
        .any(|value| value.len() > MAX_AUTHORIZATION_LEN)
    {
        return Err(refuse(Rejection::new(Reason::MalformedAuthorization)));
    }
    let access_token = dpop_access_token(authorization).map_err(refuse)?;

    // The token's key binding, when the token is known. An unknown token is bound to no key:
    // the proof is still checked, so a missing or broken proof is reported as such, and the
    // verifier then stops at the binding (`invalid_token`), before the nonce and the replay
    // cache.
    let token_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()));
    let grant = {
        let tokens = state.tokens.lock().map_err(|_| Refusal::Unavailable)?;
        tokens
            .get(&token_hash)
            .filter(|grant| grant.expires_at > now())
            .map(|grant| (grant.client_id.clone(), grant.jkt.clone()))
    };
    let bound_jkt = grant.as_ref().map_or("", |(_, jkt)| jkt.as_str());
    let target = uri.to_string();
    let request = ProofRequest::new("GET", &target, headers.get_all("dpop"))
        .access_token(access_token, bound_jkt);
    let verified = match (state.resource_proofs.verify(&request), grant) {
        (Ok(verified), Some((client_id, _))) => (verified, client_id),
        // A good proof for a token bound to no key stops at the binding: the token is unknown.
        (Err(refused), None) if refused.reason() == Reason::JktMismatch => {
            return Err(Refusal::unknown_token(&state.resource_server));
        }
        (Err(refused), _) => return Err(refuse(refused)),
        // Unreachable, as no thumbprint is empty; refused all the same.
        (Ok(_), None) => return Err(Refusal::unknown_token(&state.resource_server)),
    };
    let (verified, client_id) = verified;

    let body = Json(json!({
        "message": "Hello from the resource server",
        "client_id": client_id,
        "jkt": verified.jkt().as_str(),
    }));
    Ok((verified, body).into_response())
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
    Resource {
        reply: Box<Reply>,
        error: &'static str,
        description: &'static str,
    },
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

    fn dpop(answer: Answer, role: Role) -> Self {
        Self::Dpop(Box::new(answer.into_axum(role)))
    }

    /// The resource server's answer to `refused`.
    fn resource(role: &Role, refused: Rejection) -> Self {
        // The bare challenge of a request without credentials has no error code; the body
        // still names one.
        let error = if refused.is_missing_credentials() {
            "invalid_token"
        } else {
            refused.error_code()
        };
        Self::Resource {
            reply: Box::new(refused.answer().into_axum(role.clone())),
            error,
            description: refused.description(),
        }
    }

    /// The resource server's answer to a token it does not know, or that expired.
    fn unknown_token(role: &Role) -> Self {
        const WHY: &str = "Unknown or expired access token";
        let answer = match ErrorDescription::new(WHY) {
            Ok(description) => Answer::invalid_token().with_description(description),
            Err(_) => Answer::invalid_token(),
        };
        Self::Resource {
            reply: Box::new(answer.into_axum(role.clone())),
            error: "invalid_token",
            description: WHY,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error, description, challenge) = match self {
            Self::Dpop(reply) => return reply.into_response(),
            Self::Resource {
                reply,
                error,
                description,
            } => {
                let (parts, _) = reply.into_response().into_parts();
                let body = Json(json!({
                    "error": error,
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
