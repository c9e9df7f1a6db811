#![no_main]
// fuzzing::scep_request: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::scep_request(data));
