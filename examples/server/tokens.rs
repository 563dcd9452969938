//! Self-contained access tokens, bound to a DPoP key (RFC 9449 §6.1).
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`, the
//! payload a JSON object with the client, the key's thumbprint (`cnf.jkt`), the expiry and a
//! random id. Any replica started with the same `--token-secret` accepts the tokens of the
//! others, with no shared token store.
//!
//! [`TokenKey`] is also the [`TokenBinding`] the resource server's `DpopLayer` asks which key a
//! token is bound to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpop_nonce::tower::TokenBinding;
use hmac::{Hmac, Mac as _};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

/// Longest token accepted, in bytes: a real one is about 250.
const MAX_TOKEN_LEN: usize = 1024;

/// The secret that signs and checks access tokens.
pub struct TokenKey {
    mac: Hmac<Sha256>,
}

/// What a valid token stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub cnf: Confirmation,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// A random id, so that no two tokens are alike.
    pub jti: String,
}

/// The key a token is bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of the client's DPoP key.
    pub jkt: String,
}

impl TokenKey {
    /// A key on `secret`.
    pub fn new(secret: &[u8; 32]) -> Self {
        let mac = Hmac::new_from_slice(secret).expect("HMAC takes a key of any length");
        Self { mac }
    }

    /// A key on 32 random bytes: tokens valid in this process only.
    pub fn random() -> Result<Self, String> {
        let mut secret = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|err| format!("no randomness for the token secret: {err}"))?;
        Ok(Self::new(&secret))
    }

    /// A token for `client_id`, bound to the key with thumbprint `jkt`, valid `lifetime`
    /// seconds.
    pub fn issue(&self, client_id: &str, jkt: &str, lifetime: i64) -> Option<String> {
        let mut id = [0u8; 16];
        OsRng.try_fill_bytes(&mut id).ok()?;
        let grant = Grant {
            client_id: client_id.to_owned(),
            cnf: Confirmation {
                jkt: jkt.to_owned(),
            },
            exp: now() + lifetime,
            jti: URL_SAFE_NO_PAD.encode(id),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant).ok()?);
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&payload));
        Some(format!("{payload}.{tag}"))
    }

    /// The grant of `token`, if this key made it and it has not expired. The tag is compared in
    /// constant time, before the payload is decoded.
    pub fn verify(&self, token: &str) -> Option<Grant> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let presented: [u8; 32] = URL_SAFE_NO_PAD.decode(tag).ok()?.try_into().ok()?;
        if !bool::from(self.tag(payload).ct_eq(&presented)) {
            return None;
        }
        let grant: Grant = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (grant.exp > now()).then_some(grant)
    }

    fn tag(&self, payload: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The resource server's question: which key is this token bound to?
impl TokenBinding for TokenKey {
    async fn bound_jkt(&self, token: &str) -> Option<String> {
        self.verify(token).map(|grant| grant.cnf.jkt)
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
