#![no_main]
// fuzzing::raw_command: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::raw_command(data));
