//! Fuzz target: see `gwgen_runtime::fuzzing::request_head` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gwgen_runtime::fuzzing::request_head(data));
