#![no_main]
//! cargo-fuzz target `c_abi`: see `strata_fuzz::fuzz_c_abi`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_c_abi(data));
