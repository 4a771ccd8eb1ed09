//! dubbo codec (in progress).
