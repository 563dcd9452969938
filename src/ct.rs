//! Constant-time equality of byte strings.
//!
//! The comparison of a claim against the nonces a source holds lives next to the window cell
//! that stores them (`source::engine`); this leaf module serves every other comparison of
//! secrets (whole nonces, hashes, thumbprints).

use subtle::ConstantTimeEq as _;

/// Constant-time equality of two byte strings of any length. The lengths are compared first and
/// may end the comparison early; the contents never do.
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let mut left = a.chunks_exact(8);
    let mut right = b.chunks_exact(8);
    for (x, y) in left.by_ref().zip(right.by_ref()) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_le_bytes(wx) ^ u64::from_le_bytes(wy);
    }
    for (x, y) in left.remainder().iter().zip(right.remainder()) {
        diff |= u64::from(x ^ y);
    }
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_compares_contents_and_lengths() {
        assert!(bytes_eq(b"", b""));
        assert!(bytes_eq(b"0123456789abcdefXYZ", b"0123456789abcdefXYZ"));
        assert!(!bytes_eq(b"0123456789abcdefXYZ", b"0123456789abcdefXYz"));
        assert!(!bytes_eq(b"0123456789abcdefXYZ", b"1123456789abcdefXYZ"));
        assert!(!bytes_eq(b"abc", b"abcd"));
    }
}
