//! (feature `derived`) — being written.
