//! Integration tests of the `hoist` library, in one binary.

#![allow(clippy::unwrap_used)]

mod cli;
mod faults;
mod serve;
mod support;
