//! (feature `replay`) — being written.
