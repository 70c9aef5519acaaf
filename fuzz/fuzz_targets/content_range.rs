//! `Content-Range`: whatever parses is a well-formed range that re-parses to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::content_range(data));
