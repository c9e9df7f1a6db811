#![no_main]
// fuzzing::command_report: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::command_report(data));
