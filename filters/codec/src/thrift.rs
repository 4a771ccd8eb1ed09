//! thrift codec (in progress).
