//! (feature `redis`) — being written.
