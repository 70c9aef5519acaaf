//! `WWW-Authenticate` challenges: a realm for Bearer, render-and-parse round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::checks::www_authenticate(data));
