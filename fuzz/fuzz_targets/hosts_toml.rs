//! containerd's hosts.toml: the mirrors are the pull-capable hosts in file order, with absolute
//! bases, and they write back to the same mirrors.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::hosts_toml::hosts_toml(data));
