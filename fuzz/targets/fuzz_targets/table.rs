#![no_main]
//! cargo-fuzz target `table`: see `strata_fuzz::fuzz_table`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_table(data));
