//! Configuration schema (in progress).
