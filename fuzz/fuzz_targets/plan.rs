//! The plan loader and its safety validation: bytes become a validated plan
//! or an input error. A plan that validates must validate again after a
//! serialization round trip (the check does not depend on formatting).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decom::plan::Plan::parse(data, "fuzz.json") {
        let again = serde_json::to_vec(&p).expect("a parsed plan serializes");
        decom::plan::Plan::parse(&again, "round trip").expect("a valid plan stays valid");
    }
});
