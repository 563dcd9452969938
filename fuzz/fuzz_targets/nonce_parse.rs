//! `Nonce::parse` on arbitrary input: it accepts exactly the RFC 9449 grammar
//! (1 to `Nonce::MAX_LEN` NQCHARs), keeps the value unchanged, and always yields a valid
//! `http` header value.

#![no_main]

use dpop_nonce::{Nonce, NonceError};
use libfuzzer_sys::fuzz_target;

/// The grammar written out independently: `%x21 / %x23-5B / %x5D-7E`.
fn nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let bytes = text.as_bytes();
    let valid =
        !bytes.is_empty() && bytes.len() <= Nonce::MAX_LEN && bytes.iter().all(|&b| nqchar(b));
    for &b in bytes.iter().filter(|b| b.is_ascii()) {
        let one = char::from(b).to_string();
        assert_eq!(Nonce::parse(&one).is_ok(), nqchar(b), "byte {b:#04x}");
    }

    match Nonce::parse(text) {
        Ok(nonce) => {
            assert!(valid, "accepted a value outside the grammar: {text:?}");
            assert_eq!(nonce.as_str(), text);
            assert_eq!(nonce.as_bytes(), bytes);
            assert_eq!(nonce.len(), bytes.len());
            assert_eq!(nonce.to_string(), text);
            assert!(nonce == *text, "a nonce equals its own text");
            assert_eq!(nonce.clone(), nonce);
            assert_eq!(text.parse::<Nonce>().as_ref(), Ok(&nonce));
            let longer = format!("{text}x");
            assert!(
                nonce != *longer.as_str(),
                "a nonce differs from a longer value"
            );
            let header = http::HeaderValue::from_str(nonce.as_str())
                .expect("a nonce is always a valid header value");
            assert_eq!(header.to_str().ok(), Some(text));
            assert_eq!(String::from(nonce), text);
        }
        Err(err) => {
            assert!(!valid, "refused a valid value: {text:?} ({err})");
            match err {
                NonceError::Empty => assert!(bytes.is_empty()),
                NonceError::TooLong { len, max } => {
                    assert_eq!(len, bytes.len());
                    assert_eq!(max, Nonce::MAX_LEN);
                    assert!(len > max);
                }
                NonceError::InvalidChar { index } => {
                    assert!(!bytes.is_empty() && bytes.len() <= Nonce::MAX_LEN);
                    assert!(index < bytes.len());
                    assert!(!nqchar(bytes[index]), "byte {index} is an NQCHAR");
                    assert!(
                        bytes[..index].iter().all(|&b| nqchar(b)),
                        "not the first bad byte"
                    );
                }
                _ => panic!("unexpected error kind: {err:?}"),
            }
            // Whatever was refused never reaches a header: the validator refuses it too.
        }
    }
});
