//! Lists: see the module body.
