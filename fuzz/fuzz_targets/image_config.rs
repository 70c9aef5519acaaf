//! Image configs: diff IDs and chain IDs against the OCI definition.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::config(data));
