//! [`Nonce`]: a value that can only hold a valid DPoP nonce.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use rand::rngs::OsRng;

use crate::error::NonceError;

/// Bytes of randomness in a generated nonce (256 bits).
const RANDOM_BYTES: usize = 32;

/// Longest value kept inline, without a heap allocation.
pub(crate) const INLINE_CAP: usize = 48;

/// A DPoP nonce: 1 to [`Nonce::MAX_LEN`] characters, each an NQCHAR
/// (`%x21 / %x23-5B / %x5D-7E`, RFC 9449 §8.1).
///
/// A `Nonce` can only be made by [`Nonce::parse`] (which checks the grammar) or by
/// [`Nonce::generate`] (which draws 256 bits from the operating system's CSPRNG), so holding one
/// proves the value is safe to put in a `DPoP-Nonce` header or a quoted string.
///
/// Cloning is cheap: values up to 48 bytes, which includes every nonce this crate generates, live
/// inline with no allocation and no shared reference count; longer ones share one allocation.
///
/// Equality (`==`) runs in time that depends only on the lengths of the two values, never on where
/// they differ.
///
/// ```
/// use dpop_nonce::Nonce;
///
/// let nonce = Nonce::parse("eyJ7S_zG.eyJH0-Z.HX4w-7v")?;
/// assert_eq!(nonce.as_str(), "eyJ7S_zG.eyJH0-Z.HX4w-7v");
/// assert_eq!(nonce.to_string(), "eyJ7S_zG.eyJH0-Z.HX4w-7v");
///
/// let fresh = Nonce::generate();
/// assert_eq!(fresh.as_str().len(), Nonce::GENERATED_LEN);
/// assert_ne!(fresh, Nonce::generate());
/// # Ok::<(), dpop_nonce::NonceError>(())
/// ```
#[derive(Clone)]
pub struct Nonce(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_CAP] },
    Shared(Arc<str>),
}

impl Nonce {
    /// The longest nonce accepted, in bytes. Longer claims are refused before any comparison.
    pub const MAX_LEN: usize = 512;

    /// Length of a nonce made by [`Nonce::generate`]: 32 random bytes in unpadded base64url.
    pub const GENERATED_LEN: usize = 43;

    /// Checks `value` against the nonce grammar and wraps it.
    ///
    /// # Errors
    ///
    /// [`NonceError::Empty`], [`NonceError::TooLong`] or [`NonceError::InvalidChar`] (which names
    /// the first offending byte).
    ///
    /// ```
    /// use dpop_nonce::{Nonce, NonceError};
    ///
    /// assert!(Nonce::parse("[~!]").is_ok());
    /// assert_eq!(Nonce::parse("nönce"), Err(NonceError::InvalidChar { index: 1 }));
    /// ```
    pub fn parse(value: &str) -> Result<Self, NonceError> {
        if value.is_empty() {
            return Err(NonceError::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(NonceError::TooLong {
                len: value.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(index) = value.bytes().position(|b| !is_nqchar(b)) {
            return Err(NonceError::InvalidChar { index });
        }
        Ok(Self::from_checked(value.as_bytes()))
    }

    /// Makes a new, unpredictable nonce: 256 bits from the operating system's CSPRNG, encoded as
    /// 43 characters of unpadded base64url.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes, as `rand::rng()` does. Use
    /// [`Nonce::try_generate`] to get that failure as a value instead.
    pub fn generate() -> Self {
        match Self::try_generate() {
            Ok(nonce) => nonce,
            Err(err) => panic!("the operating system's random number generator failed: {err}"),
        }
    }

    /// Like [`Nonce::generate`], but returns the operating system's error instead of panicking.
    ///
    /// # Errors
    ///
    /// The error of the OS random number generator, which on supported platforms does not
    /// happen once the system is booted.
    pub fn try_generate() -> Result<Self, rand::rand_core::OsError> {
        let mut random = [0u8; RANDOM_BYTES];
        OsRng.try_fill_bytes(&mut random)?;
        Ok(Self::from_random_bytes(&random))
    }

    /// Encodes 32 bytes as an unpadded base64url nonce. Only for values that are already
    /// unpredictable (CSPRNG or keyed MAC output).
    pub(crate) fn from_random_bytes(random: &[u8; RANDOM_BYTES]) -> Self {
        let mut encoded = [0u8; Self::GENERATED_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(random, &mut encoded)
            .unwrap_or_default();
        debug_assert_eq!(written, Self::GENERATED_LEN);
        Self::from_checked(&encoded[..written])
    }

    /// A generated-length nonce from the first [`Nonce::GENERATED_LEN`] bytes of `inline`,
    /// already known to be NQCHARs, kept as they are with no copy. The bytes after them are
    /// never read.
    #[inline]
    pub(crate) fn from_inline(inline: [u8; INLINE_CAP]) -> Self {
        debug_assert!(inline[..Self::GENERATED_LEN].iter().all(|&b| is_nqchar(b)));
        Self(Repr::Inline {
            len: Self::GENERATED_LEN as u8,
            bytes: inline,
        })
    }

    /// Wraps bytes already known to be 1..=MAX_LEN NQCHARs.
    pub(crate) fn from_checked(bytes: &[u8]) -> Self {
        debug_assert!(!bytes.is_empty() && bytes.len() <= Self::MAX_LEN);
        debug_assert!(bytes.iter().all(|&b| is_nqchar(b)));
        if bytes.len() <= INLINE_CAP {
            let mut inline = [0u8; INLINE_CAP];
            inline[..bytes.len()].copy_from_slice(bytes);
            // The length fits in a u8 since it is at most INLINE_CAP.
            Self(Repr::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            })
        } else {
            Self(Repr::Shared(Arc::from(
                std::str::from_utf8(bytes).unwrap_or_default(),
            )))
        }
    }

    /// The nonce as a string slice, ready for a `DPoP-Nonce` header.
    pub fn as_str(&self) -> &str {
        // Every byte is ASCII (checked on construction), so the conversion cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The nonce as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(shared) => shared.as_bytes(),
        }
    }

    /// Length in bytes (equal to the number of characters, since every character is ASCII).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Always `false`: a nonce has at least one character. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `true` when `byte` is an NQCHAR: `%x21 / %x23-5B / %x5D-7E` (RFC 9449 §8.1).
pub(crate) const fn is_nqchar(byte: u8) -> bool {
    // %x21-7E less `"` and `\`, as three tests joined by `&` rather than `||`: the compiled
    // check has no branch on the byte, so checking a value takes the same time whatever it holds.
    // A branch here would leak through the branch predictor: checking the claim and then the
    // current nonce would run faster the more the two share.
    (byte.wrapping_sub(0x21) < 0x7f - 0x21) & (byte != b'"') & (byte != b'\\')
}

/// `true` when every byte of `value` is an NQCHAR and it is 1..=[`Nonce::MAX_LEN`] long; the
/// same test as [`Nonce::parse`], without building a value.
pub(crate) fn is_valid_nonce(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= Nonce::MAX_LEN
        && value.iter().fold(true, |ok, &b| ok & is_nqchar(b))
}

impl PartialEq for Nonce {
    fn eq(&self, other: &Self) -> bool {
        crate::ct::bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for Nonce {}

impl PartialEq<str> for Nonce {
    fn eq(&self, other: &str) -> bool {
        crate::ct::bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

impl PartialEq<&str> for Nonce {
    fn eq(&self, other: &&str) -> bool {
        crate::ct::bytes_eq(self.as_bytes(), other.as_bytes())
    }
}

impl AsRef<str> for Nonce {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Nonce").field(&self.as_str()).finish()
    }
}

impl FromStr for Nonce {
    type Err = NonceError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

impl TryFrom<&str> for Nonce {
    type Error = NonceError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Nonce> for String {
    fn from(nonce: Nonce) -> Self {
        nonce.as_str().to_owned()
    }
}
