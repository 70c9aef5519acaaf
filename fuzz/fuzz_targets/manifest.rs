//! Manifest and index JSON: deterministic parsing, descriptor round trips, platform selection.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::manifest(data));
