//! devcontainer.json: deterministic parsing; the image and connector round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::devcontainer(data));
