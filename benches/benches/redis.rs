//! redis codec benchmarks (in progress).
fn main() {}
