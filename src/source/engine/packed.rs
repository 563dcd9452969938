//! Nonces packed into whole `u64` words, the form the window cell stores and compares.
//!
//! A claim is packed once, so that comparing it with a stored nonce is a handful of XORs (see
//! `WindowCell::compare`). Only values of exactly [`Nonce::GENERATED_LEN`] bytes pack: every
//! nonce a source makes has that length, and a claim of any other length is refused before any
//! comparison (the length of the nonces a source hands out is public).

use crate::nonce::{INLINE_CAP, Nonce};

/// Words in a packed nonce: [`Nonce::GENERATED_LEN`] bytes rounded up to whole `u64`s.
pub(crate) const WORDS: usize = Nonce::GENERATED_LEN.div_ceil(8);

/// A generated nonce packed into little-endian words, zero padded. All zeros means "no nonce":
/// a packed nonce always has a non-zero first word, because NQCHARs are non-zero.
pub(crate) type Packed = [u64; WORDS];

// A packed nonce is exactly as long as the inline storage of a `Nonce`, so `unpack` builds one
// from its words without copying bytes around.
const _: () = assert!(WORDS * 8 == INLINE_CAP && Nonce::GENERATED_LEN <= INLINE_CAP);

/// The packed value that stands for an empty slot.
pub(crate) const EMPTY: Packed = [0; WORDS];

/// Packs a value of exactly [`Nonce::GENERATED_LEN`] bytes; `None` for any other length, and
/// for a value that packs to [`EMPTY`] (all NUL bytes), which would otherwise match every empty
/// slot. Claims reach this before any grammar check, so the second test is what keeps "empty
/// slots never match" true. It looks at the claim only, never at a stored value.
#[inline]
pub(crate) fn pack(bytes: &[u8]) -> Option<Packed> {
    if bytes.len() != Nonce::GENERATED_LEN {
        return None;
    }
    let mut padded = [0u8; WORDS * 8];
    padded[..bytes.len()].copy_from_slice(bytes);
    let mut words = EMPTY;
    for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
    }
    (!is_empty(&words)).then_some(words)
}

/// `true` for the empty slot ([`EMPTY`]). An OR over the words rather than `==` on the array,
/// which compiles to a call to `bcmp`.
#[inline]
pub(crate) fn is_empty(words: &Packed) -> bool {
    words.iter().fold(0u64, |acc, word| acc | word) == 0
}

/// Packs a nonce for storing in a slot: `None` unless it has [`Nonce::GENERATED_LEN`] bytes.
///
/// Slots are filled only through this function, so every non-empty slot holds the bytes of a
/// [`Nonce`]: NQCHARs, checked when the `Nonce` was made.
#[inline]
pub(crate) fn pack_nonce(nonce: &Nonce) -> Option<Packed> {
    pack(nonce.as_bytes())
}

/// A fresh random nonce ([`Nonce::generate`]), packed. Generated nonces always have
/// [`Nonce::GENERATED_LEN`] bytes, so packing cannot fail; the fallback only keeps the path free
/// of panics, and an empty slot matches nothing.
pub(crate) fn fresh_packed() -> Packed {
    pack_nonce(&Nonce::generate()).unwrap_or(EMPTY)
}

/// Turns a non-empty slot back into a [`Nonce`]; `None` for an empty slot, and for a value that
/// is not a nonce.
///
/// Slots are filled only by [`pack_nonce`], from a `Nonce`, so the grammar check cannot fail;
/// it stays so that a `Nonce` never holds anything else, whatever a slot was filled with. It
/// runs on a stored nonce in every refusal, right after the same check ran on the claim, so it
/// must not branch on the bytes, or the branch predictor would carry what it learnt from the
/// claim over to the stored nonce. The NQCHAR test it uses has no branch.
#[inline]
pub(crate) fn unpack(words: &Packed) -> Option<Nonce> {
    if is_empty(words) {
        return None;
    }
    let mut padded = [0u8; INLINE_CAP];
    for (chunk, word) in padded.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    crate::nonce::is_valid_nonce(&padded[..Nonce::GENERATED_LEN])
        .then(|| Nonce::from_inline(padded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_generated_nonces() {
        let nonce = Nonce::generate();
        let packed = pack(nonce.as_bytes()).expect("generated nonces pack");
        assert_ne!(packed, EMPTY);
        assert_eq!(unpack(&packed), Some(nonce));
        assert_eq!(unpack(&EMPTY), None);
    }

    #[test]
    fn pack_refuses_other_lengths() {
        assert_eq!(pack(b"short"), None);
        assert_eq!(pack(&[b'a'; 44]), None);
    }

    #[test]
    fn an_all_nul_claim_does_not_pack() {
        let nul = [0u8; Nonce::GENERATED_LEN];
        assert_eq!(pack(&nul), None);
        let mut one = nul;
        one[Nonce::GENERATED_LEN - 1] = 1;
        assert!(pack(&one).is_some_and(|packed| !is_empty(&packed)));
    }
}
