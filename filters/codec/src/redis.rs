//! redis codec (in progress).
