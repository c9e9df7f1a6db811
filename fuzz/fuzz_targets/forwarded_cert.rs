#![no_main]
// fuzzing::forwarded_cert: see crates/fuzzing/src/lib.rs for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::forwarded_cert(data));
