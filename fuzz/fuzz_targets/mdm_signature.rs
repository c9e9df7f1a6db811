#![no_main]
// fuzzing::mdm_signature: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::mdm_signature(data));
