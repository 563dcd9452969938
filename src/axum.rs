//! (feature `axum`) — being written.
