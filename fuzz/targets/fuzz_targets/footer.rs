#![no_main]
//! cargo-fuzz target `footer`: see `strata_fuzz::fuzz_footer`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_footer(data));
