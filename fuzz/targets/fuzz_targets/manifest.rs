#![no_main]
//! cargo-fuzz target `manifest`: see `strata_fuzz::fuzz_manifest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::fuzz_manifest(data));
