//! Integration tests of the `hoist` library, in one binary.

mod faults;
mod support;
