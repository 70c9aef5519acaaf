//! gzip/zstd/plain decode with blob and diff ID verification and the bomb limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::decode(data));
