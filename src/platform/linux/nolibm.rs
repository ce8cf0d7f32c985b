//! The one libm function portctl calls, so that libm.so is never loaded.
//!
//! tokio's multi-thread scheduler calls `pow` for its statistics, and that
//! one reference made every run — `whatis` and `list` too — load libm.so:
//! its ifunc resolvers and relocations cost 8% of `whatis` and 330 KiB of
//! resident memory (BENCHMARKS.md). A definition in the executable wins
//! over the shared library's, and the linker then drops libm.so.

/// C's `pow`, from the pure-Rust port of musl's libm.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pow_is_c_pow() {
        assert_eq!(super::pow(2.0, 10.0), 1024.0);
        assert_eq!(super::pow(9.0, 0.5), 3.0);
        assert!(super::pow(-1.0, 0.5).is_nan());
    }
}
