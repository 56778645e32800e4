#![no_main]
//! cargo-fuzz target `wal_roundtrip`: see `strata_fuzz::fuzz_wal_roundtrip`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_wal_roundtrip(data));
