//! The hand-written allowed_signers parser (ssh-keygen's format).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decom::sign::allowed_signers::AllowedSigners::parse(text, "fuzz");
});
