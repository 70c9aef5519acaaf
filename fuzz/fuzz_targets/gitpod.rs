//! .gitpod.yml: whatever loads names images that round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::gitpod(data));
