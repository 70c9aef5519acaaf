//! Image references: whatever parses displays as a string that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(reference) = text.parse::<hoist::Reference>() {
        let shown = reference.to_string();
        let again: hoist::Reference = shown.parse().expect("a displayed reference parses");
        assert_eq!(again, reference);
        assert_eq!(again.to_string(), shown);
    }
});
