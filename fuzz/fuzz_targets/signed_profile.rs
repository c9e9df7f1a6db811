#![no_main]
// fuzzing::signed_profile: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::signed_profile(data));
