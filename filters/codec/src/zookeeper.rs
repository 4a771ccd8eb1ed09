//! zookeeper codec (in progress).
