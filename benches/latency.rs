//! Placeholder, replaced by the real harness.
fn main() {}
