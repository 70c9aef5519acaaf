//! The HTTP/2 `:authority` filter of `hoist serve`'s sockets: same output however the bytes
//! arrive, idempotent, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::http2::http2_authority(data));
