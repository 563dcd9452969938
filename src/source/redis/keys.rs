//! Redis key names: a prefix, a label, and what the key holds.

use crate::error::ConfigError;

/// The default key prefix.
pub(crate) const DEFAULT_PREFIX: &str = "dpop-nonce";

const MAX_PREFIX_LEN: usize = 128;
const MAX_LABEL_LEN: usize = 64;

/// Checks a key prefix: 1 to 128 visible ASCII characters (`:` allowed).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(ConfigError::InvalidPrefix {
            max: MAX_PREFIX_LEN,
        });
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::InvalidPrefix {
            max: MAX_PREFIX_LEN,
        });
    }
    Ok(())
}

/// Checks a label: 1 to 64 visible ASCII characters, no `:`. Without `:`, a key splits back
/// into prefix and label in exactly one way, so two servers never share a key.
pub(crate) fn check_label(label: &str) -> Result<(), ConfigError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(ConfigError::InvalidLabel {
            max: MAX_LABEL_LEN,
            allowed: "visible ASCII without ':'",
        });
    }
    if !label.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(ConfigError::InvalidLabel {
            max: MAX_LABEL_LEN,
            allowed: "visible ASCII without ':'",
        });
    }
    Ok(())
}

/// `{prefix}:{label}:nonce:{window}`.
pub(crate) fn nonce_key(prefix: &str, label: &str, window: i64) -> String {
    format!("{prefix}:{label}:nonce:{window}")
}

/// `{prefix}:replay:{hex}`; the hex part never holds `:`, so it cannot meet a nonce key.
pub(crate) fn replay_key(prefix: &str, hex: &str) -> String {
    format!("{prefix}:replay:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_labels_are_checked() {
        assert!(check_prefix("app:dpop").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a b").is_err());
        assert!(check_prefix(&"p".repeat(129)).is_err());
        assert!(check_label("as").is_ok());
        assert!(check_label("https://rs.example").is_err());
        assert!(check_label("").is_err());
        assert!(check_label("tab\t").is_err());
    }

    #[test]
    fn keys_have_the_documented_shape() {
        assert_eq!(nonce_key("p", "as", -3), "p:as:nonce:-3");
        assert_eq!(replay_key("p", "00ff"), "p:replay:00ff");
    }
}
