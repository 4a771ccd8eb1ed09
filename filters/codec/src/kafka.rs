//! kafka codec (in progress).
