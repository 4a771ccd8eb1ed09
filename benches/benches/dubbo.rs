//! dubbo codec benchmarks (in progress).
fn main() {}
