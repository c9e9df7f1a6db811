#![no_main]
// fuzzing::agent_settings: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::agent_settings(data));
