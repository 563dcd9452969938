//! The secrets of a derived source, and the derivation of a window's nonce from one of them.

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::nonce::Nonce;
use crate::source::engine::{EMPTY, Packed, pack_nonce};

/// Text mixed into every MAC input, so the values of this crate cannot be confused with MACs the
/// same secret makes for any other purpose, and a future change of encoding gets a new label.
const DOMAIN: &[u8] = b"dpop-nonce/derived-nonce/v1";

/// One secret, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The nonce for `window` under this secret and `label`: the 32 bytes of
    /// HMAC-SHA256(secret, len(DOMAIN) || DOMAIN || len(label) || label || window), lengths as
    /// 8-byte big-endian integers and the window as an 8-byte big-endian two's-complement
    /// integer, packed for comparison.
    ///
    /// HMAC takes keys of any length, so keying cannot fail; if it ever did, the slot would be
    /// left empty, which matches no claim.
    pub(crate) fn derive(&self, label: &[u8], window: i64) -> Packed {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return EMPTY;
        };
        for part in [DOMAIN, label] {
            // Both lengths are bounded by the builder, so they fit in a u64.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&window.to_be_bytes());
        // The nonce is public once issued, so the tag needs no wiping.
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        pack_nonce(&Nonce::from_random_bytes(&tag)).unwrap_or(EMPTY)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}
