//! [`ResponseParts`]: an HTTP answer as plain data.

/// An HTTP answer as plain data: status, headers in order, body. Copy it into the response type
/// of any HTTP stack.
///
/// ```
/// use dpop_nonce::render::{Answer, Role};
///
/// let parts = Answer::invalid_dpop_proof().to_parts(&Role::AuthorizationServer);
/// assert_eq!(parts.status, 400);
/// assert_eq!(parts.header("content-type"), Some("application/json"));
/// for (name, value) in &parts.headers {
///     // response.insert_header(name, value) in your framework
///     assert!(!name.is_empty() && !value.is_empty());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseParts {
    /// The status code.
    pub status: u16,
    /// Header names and values, in the order they should be sent. Each name appears once.
    pub headers: Vec<(&'static str, String)>,
    /// The body; empty when there is none.
    pub body: String,
}

impl ResponseParts {
    /// The value of header `name` (compared case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
