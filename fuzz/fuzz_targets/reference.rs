//! Image references: parse, display, parse again gives the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::reference(data));
