//! (feature `client`) — being written.
