//! Integration tests of the `hoist` library, in one binary.

#![allow(clippy::unwrap_used)]

mod cli;
mod connectors_cli;
mod corpus;
mod faults;
mod limits;
mod reliability;
mod serve;
mod support;
