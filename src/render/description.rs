//! [`ErrorDescription`]: a human-readable `error_description`, safe in JSON and in a quoted
//! header parameter.

use std::borrow::Cow;
use std::fmt;

use crate::error::RenderError;
use crate::nonce::is_nqchar;

/// A human-readable `error_description`: 1 to [`ErrorDescription::MAX_LEN`] bytes, each in
/// `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2, RFC 6750 §3).
///
/// Those bytes need no escaping in a JSON string nor in a quoted header parameter: no `"`, no
/// `\`, no control character, nothing outside ASCII. The length cap keeps a challenge header
/// small.
///
/// [`new`](ErrorDescription::new) refuses any other text; [`lossy`](ErrorDescription::lossy)
/// repairs it, for text passed through from elsewhere.
///
/// ```
/// use dpop_nonce::render::ErrorDescription;
///
/// assert!(ErrorDescription::new("Resource server requires nonce in DPoP proof").is_ok());
/// assert!(ErrorDescription::new("say \"hi\"").is_err());
/// assert_eq!(ErrorDescription::lossy("say \"hi\"").unwrap().as_str(), "say ?hi?");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDescription(Cow<'static, str>);

/// Stands in for each character [`ErrorDescription::lossy`] cannot keep.
const REPLACEMENT: char = '?';

/// `%x20-21 / %x23-5B / %x5D-7E`: NQCHAR and the space.
const fn is_description_byte(byte: u8) -> bool {
    byte == b' ' || is_nqchar(byte)
}

impl ErrorDescription {
    /// The longest description accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Checks and wraps a description.
    ///
    /// # Errors
    ///
    /// [`RenderError::EmptyDescription`] for an empty text, [`RenderError::DescriptionTooLong`]
    /// past [`MAX_LEN`](ErrorDescription::MAX_LEN) bytes, and
    /// [`RenderError::InvalidDescription`] naming the first byte outside the allowed set.
    ///
    /// ```
    /// use dpop_nonce::RenderError;
    /// use dpop_nonce::render::ErrorDescription;
    ///
    /// assert_eq!(ErrorDescription::new("a\nb"), Err(RenderError::InvalidDescription { index: 1 }));
    /// assert_eq!(ErrorDescription::new(""), Err(RenderError::EmptyDescription));
    /// ```
    pub fn new(text: impl Into<Cow<'static, str>>) -> Result<Self, RenderError> {
        let text = text.into();
        if text.is_empty() {
            return Err(RenderError::EmptyDescription);
        }
        if text.len() > Self::MAX_LEN {
            return Err(RenderError::DescriptionTooLong {
                len: text.len(),
                max: Self::MAX_LEN,
            });
        }
        match text.bytes().position(|b| !is_description_byte(b)) {
            Some(index) => Err(RenderError::InvalidDescription { index }),
            None => Ok(Self(text)),
        }
    }

    /// A description made from any text: each character outside the allowed set becomes `?`,
    /// and the result is cut to [`MAX_LEN`](ErrorDescription::MAX_LEN) bytes. `None` only for an
    /// empty text.
    ///
    /// Use it for text that comes from elsewhere (a library's error message), where refusing
    /// would lose the whole description.
    ///
    /// ```
    /// use dpop_nonce::render::ErrorDescription;
    ///
    /// let repaired = ErrorDescription::lossy("clé \\ invalide\r\n").unwrap();
    /// assert_eq!(repaired.as_str(), "cl? ? invalide??");
    ///
    /// let long = "x".repeat(1000);
    /// assert_eq!(ErrorDescription::lossy(&long).unwrap().as_str().len(), ErrorDescription::MAX_LEN);
    /// assert!(ErrorDescription::lossy("").is_none());
    /// ```
    pub fn lossy(text: &str) -> Option<Self> {
        if text.is_empty() {
            return None;
        }
        let mut kept = String::with_capacity(text.len().min(Self::MAX_LEN));
        // Every pushed character is one ASCII byte, so the length counts characters too and the
        // cut never splits one.
        for c in text.chars().take(Self::MAX_LEN) {
            let allowed = u8::try_from(c).is_ok_and(is_description_byte);
            kept.push(if allowed { c } else { REPLACEMENT });
        }
        Some(Self(Cow::Owned(kept)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&'static str> for ErrorDescription {
    type Error = RenderError;

    fn try_from(text: &'static str) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl TryFrom<String> for ErrorDescription {
    type Error = RenderError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}
