#![no_main]
//! cargo-fuzz target `table_roundtrip`: see `strata_fuzz::fuzz_table_roundtrip`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_table_roundtrip(data));
