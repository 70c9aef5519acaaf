//! Integration tests of the `hoist` library, in one binary.

#![allow(clippy::unwrap_used)]

mod authority;
mod chunks;
mod cli;
mod connectors_cli;
mod connectors_reload;
mod corpus;
mod crash;
mod enospc;
mod faults;
mod hostile;
mod kill;
mod limits;
mod props;
mod reliability;
mod repull;
mod secrets;
mod serve;
mod support;
