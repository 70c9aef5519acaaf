//! Tar layers: nothing is ever created outside the temporary layer directory.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::unpack(data));
