#![no_main]
// fuzzing::enrollment_profile: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::enrollment_profile(data));
