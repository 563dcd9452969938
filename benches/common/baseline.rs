//! The baselines every source is measured against, written here and independent of the crate's
//! code.

use std::hint::black_box;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use dpop_nonce::Nonce;
use subtle::BlackBox;

use super::LEN;

/// A 43-byte value padded into whole words.
type Words = [u64; LEN.div_ceil(8)];

/// Packs a 43-byte value into little-endian words, zero padded; `None` for other lengths.
#[inline(always)]
fn words_of(bytes: &[u8]) -> Option<Words> {
    if bytes.len() != LEN {
        return None;
    }
    let mut padded = [0u8; LEN.div_ceil(8) * 8];
    padded[..LEN].copy_from_slice(bytes);
    let mut words = [0u64; LEN.div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
    }
    Some(words)
}

/// The floor: one `SystemTime::now()`, then the claim compared with two stored values by
/// XOR-accumulating whole words, with a single `subtle` barrier over both results at the end.
/// No lock, no window arithmetic: the least any constant-time check on the real clock can cost.
pub struct Floor {
    stored: [Words; 2],
}

impl Floor {
    #[inline(never)]
    pub fn check(&self, claim: &str) -> u8 {
        black_box(SystemTime::now());
        self.compare(claim)
    }

    /// The floor with the time turned into a duration since the UNIX epoch, which any check
    /// that computes a window from `SystemTime` needs.
    #[inline(never)]
    pub fn check_since_epoch(&self, claim: &str) -> u8 {
        black_box(SystemTime::now().duration_since(UNIX_EPOCH).ok());
        self.compare(claim)
    }

    #[inline(always)]
    fn compare(&self, claim: &str) -> u8 {
        let Some(claim) = words_of(claim.as_bytes()) else {
            return 0;
        };
        let mut current = 0u64;
        let mut previous = 0u64;
        for ((c, a), b) in claim.iter().zip(&self.stored[0]).zip(&self.stored[1]) {
            current |= c ^ a;
            previous |= c ^ b;
        }
        // One barrier over both results, as the sources do: one bit per value, set when it
        // differs, computed with no branch.
        let differs = ((current | current.wrapping_neg()) >> 63)
            | (((previous | previous.wrapping_neg()) >> 63) << 1);
        let differs = BlackBox::new(differs).get();
        (!differs & 3) as u8
    }
}

/// The naive baseline: a mutex around the current and previous values, one clock read (a naive
/// source must also notice when to rotate) and `str`'s `==`, which stops at the first difference.
pub struct Naive {
    pair: Mutex<(String, String)>,
}

impl Naive {
    #[inline(never)]
    pub fn check(&self, claim: &str) -> u8 {
        black_box(SystemTime::now());
        let pair = self.pair.lock().unwrap_or_else(PoisonError::into_inner);
        if pair.0 == claim {
            1
        } else if pair.1 == claim {
            2
        } else {
            0
        }
    }
}

/// The two baselines over the same two random values, and the claim they check (the first
/// value: the current one).
pub struct Baselines {
    pub floor: Floor,
    pub naive: Naive,
    pub claim: String,
}

impl Baselines {
    pub fn new() -> Self {
        let stored = [Nonce::generate(), Nonce::generate()];
        Self {
            floor: Floor {
                stored: [
                    words_of(stored[0].as_bytes()).unwrap_or_default(),
                    words_of(stored[1].as_bytes()).unwrap_or_default(),
                ],
            },
            naive: Naive {
                pair: Mutex::new((stored[0].to_string(), stored[1].to_string())),
            },
            claim: stored[0].to_string(),
        }
    }
}
