//! zookeeper codec benchmarks (in progress).
fn main() {}
