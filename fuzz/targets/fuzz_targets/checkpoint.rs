#![no_main]
//! cargo-fuzz target `checkpoint`: see `strata_fuzz::fuzz_checkpoint`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_checkpoint(data));
