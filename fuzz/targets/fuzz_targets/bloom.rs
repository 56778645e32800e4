#![no_main]
//! cargo-fuzz target `bloom`: see `strata_fuzz::fuzz_bloom`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_bloom(data));
