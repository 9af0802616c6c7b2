//! The profile parser: text becomes a profile with at least one step, or an
//! input error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = decom::profile::Profile::from_toml(text, "fuzz.toml") {
        let _ = p.method_summary();
        let _ = p.block_size();
    }
});
