#![no_main]
//! cargo-fuzz target `wal`: see `strata_fuzz::fuzz_wal`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_wal(data));
