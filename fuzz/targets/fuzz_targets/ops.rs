#![no_main]
//! cargo-fuzz target `ops`: see `strata_fuzz::fuzz_ops`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_ops(data));
