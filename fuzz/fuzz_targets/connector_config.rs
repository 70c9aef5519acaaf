//! The connector config: checks hold for whatever parses; scopes and references round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::connector_config(data));
