//! `Content-Range`: whatever parses is a well-formed range that re-parses to itself.
#![no_main]

use hoist::pull::fetch::parse_content_range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some((start, end, total)) = parse_content_range(text) {
        assert!(start <= end);
        if let Some(total) = total {
            assert!(end < total);
        }
        let shown = match total {
            Some(t) => format!("bytes {start}-{end}/{t}"),
            None => format!("bytes {start}-{end}/*"),
        };
        assert_eq!(parse_content_range(&shown), Some((start, end, total)));
    }
});
