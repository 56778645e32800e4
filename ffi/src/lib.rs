//! C ABI over Strata. The full binding (generated header, Java binding) is a later issue;
//! this crate pins the ABI version so hosts can check it today.
#![deny(missing_docs)]

/// Version of the C ABI, bumped on every incompatible change.
pub const STRATA_ABI_VERSION: u32 = 0;

/// Returns [`STRATA_ABI_VERSION`]. Never panics.
#[no_mangle]
pub extern "C" fn strata_abi_version() -> u32 {
    STRATA_ABI_VERSION
}

#[cfg(test)]
mod tests {
    #[test]
    fn abi_version_is_exported() {
        assert_eq!(super::strata_abi_version(), super::STRATA_ABI_VERSION);
    }
}
