//! The checked-in C header (`include/strata.h`) must be what cbindgen generates from the
//! sources now; `STRATA_BLESS=1` rewrites it instead of failing.

use std::path::PathBuf;

#[test]
fn header_matches_a_fresh_generation() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = crate_dir.join("include/strata.h");
    if std::env::var("STRATA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write header");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "ffi/include/strata.h is stale: regenerate it with \
         `STRATA_BLESS=1 cargo test -p strata-ffi --test header` and commit it"
    );
}
