//! (feature `http`) — being written.
