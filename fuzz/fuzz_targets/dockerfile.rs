//! Dockerfile `FROM` lines: distinct single-word base images, deterministically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::dockerfile(data));
