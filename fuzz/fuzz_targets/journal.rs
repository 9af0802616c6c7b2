//! The journal reader: torn and junk lines are cut or refused; replay of
//! whatever parses never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((records, _)) = decom::journal::parse(data, std::path::Path::new("fuzz.jsonl")) {
        let _ = decom::journal::replay(&records);
    }
});
