//! Sorted sets: see the module body.
