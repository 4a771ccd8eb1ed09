//! Test rig (in progress).
