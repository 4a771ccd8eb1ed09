//! kafka codec benchmarks (in progress).
fn main() {}
