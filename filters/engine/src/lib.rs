//! The sans-IO engine (in progress).
#![forbid(unsafe_code)]
