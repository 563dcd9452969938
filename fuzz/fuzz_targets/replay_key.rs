//! `ReplayKey::new` on arbitrary scopes and `jti` values.
//!
//! Input layout: bytes 0-1 (little endian, modulo 1100) give the scope's length; the scope
//! follows, and the rest is the `jti`.
//!
//! Invariants: the limits are enforced in order (empty `jti`, `jti` too long, scope too long);
//! a key is a pure function of its inputs; it is always `ReplayKey::LEN` bytes and shows as
//! that many bytes of lowercase hex; moving a byte across the scope/`jti` boundary changes the
//! key (the encoding is unambiguous).

#![no_main]

use dpop_nonce::replay::{MAX_JTI_LEN, MAX_SCOPE_LEN, ReplayKey, ReplayKeyError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = usize::from(u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ])) % 1100;
    let rest = data.get(2..).unwrap_or_default();
    let split = split.min(rest.len());
    let (scope, jti) = rest.split_at(split);

    match ReplayKey::new(scope, jti) {
        Ok(key) => {
            assert!(!jti.is_empty() && jti.len() <= MAX_JTI_LEN && scope.len() <= MAX_SCOPE_LEN);
            assert_eq!(ReplayKey::new(scope, jti), Ok(key), "deterministic");
            assert_eq!(key.as_bytes().len(), ReplayKey::LEN);
            let hex = key.to_string();
            assert_eq!(hex.len(), 2 * ReplayKey::LEN);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            let expected: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, expected);
            assert_eq!(ReplayKey::from_bytes(*key.as_bytes()), key);
            // Move the jti's first byte into the scope: a different pair, so a different key.
            if jti.len() > 1 && scope.len() < MAX_SCOPE_LEN {
                let (first, tail) = jti.split_at(1);
                let moved_scope = [scope, first].concat();
                if let Ok(other) = ReplayKey::new(&moved_scope, tail) {
                    assert_ne!(other, key, "the scope/jti boundary is part of the key");
                }
            }
        }
        Err(err) => match err {
            ReplayKeyError::EmptyJti => assert!(jti.is_empty()),
            ReplayKeyError::JtiTooLong { len, max } => {
                assert!(!jti.is_empty());
                assert_eq!((len, max), (jti.len(), MAX_JTI_LEN));
                assert!(len > max);
            }
            ReplayKeyError::ScopeTooLong { len, max } => {
                assert!(!jti.is_empty() && jti.len() <= MAX_JTI_LEN);
                assert_eq!((len, max), (scope.len(), MAX_SCOPE_LEN));
                assert!(len > max);
            }
            _ => panic!("unexpected error kind: {err:?}"),
        },
    }
});
