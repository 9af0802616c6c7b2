//! The certificate loader and its consistency check (what `decom verify`
//! runs on files from anywhere).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = decom::cert::Certificate::parse(data, "fuzz.json") {
        let _ = c.check();
    }
});
