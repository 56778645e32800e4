#![no_main]
//! cargo-fuzz target `chunk`: see `strata_fuzz::fuzz_chunk`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_chunk(data));
