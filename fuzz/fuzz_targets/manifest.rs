//! The manifest parser: any text either parses into a manifest whose
//! locations are absolute, or is refused with an input error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = decom::manifest::Manifest::parse(text, "fuzz.toml") {
        assert!(!m.locations.is_empty());
    }
});
