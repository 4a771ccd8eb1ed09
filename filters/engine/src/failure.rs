//! How decoding fails: one error type for every protocol, so routing, the per-protocol modules
//! and the session share it. A leaf: it imports nothing of the engine.

use std::fmt;

/// A frame that broke its protocol's rules: the codec's own message (allocated only on this
/// error path, once per connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure(pub String);

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DecodeFailure {
    pub(crate) fn from<E: fmt::Display>(e: E) -> Self {
        DecodeFailure(e.to_string())
    }
}
