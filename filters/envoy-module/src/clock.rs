//! The module's clock: monotonic nanoseconds, the `now` every engine call and route-discovery
//! poll takes as an argument. A leaf: it imports nothing of the crate.

use std::sync::OnceLock;
use std::time::Instant;

/// Monotonic nanoseconds since the module's first use.
pub(crate) fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
