//! thrift codec benchmarks (in progress).
fn main() {}
