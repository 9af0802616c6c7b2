//! SSHSIG armor from anywhere: never a panic, never accepted without a
//! signer (the allowed_signers list here is empty).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signers = decom::sign::allowed_signers::AllowedSigners::parse("", "empty")
        .expect("an empty list parses");
    for role in [decom::sign::Role::Custodian, decom::sign::Role::Operator] {
        let r = decom::sign::verify_bytes(b"plan bytes", data, &signers, role, None, 0);
        assert!(r.is_err(), "accepted with no allowed signer");
    }
});
