#![no_main]
// fuzzing::checkin: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::checkin(data));
