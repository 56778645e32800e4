#![no_main]
//! cargo-fuzz target `block`: see `strata_fuzz::fuzz_block`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_block(data));
