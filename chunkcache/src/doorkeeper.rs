//! The admission doorkeeper for promotions (TinyLFU-style): a key read from below is
//! installed in the hot tier only if it was also read from below recently.
//!
//! A uniform scan over far more keys than fit in memory then costs no churn, while keys read
//! twice (the head of a skewed distribution) become hot. Two bits per key hash in a 2^20-bit
//! table, cleared after 2^18 admission checks.

use std::sync::atomic::{AtomicU64, Ordering};

const DOOR_BITS: u64 = 1 << 20;

/// The doorkeeper's bit table. Thread-safe; false positives only admit a key early.
pub(crate) struct Doorkeeper {
    bits: Box<[AtomicU64]>,
    checks: AtomicU64,
}

impl Doorkeeper {
    pub(crate) fn new() -> Self {
        Doorkeeper {
            bits: (0..DOOR_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            checks: AtomicU64::new(0),
        }
    }

    /// Records a miss for `h`; true if `h` had missed before (since the last reset).
    pub(crate) fn seen_before(&self, h: u64) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % (DOOR_BITS / 4) == DOOR_BITS / 4 - 1 {
            for w in self.bits.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        let mut all = true;
        for p in [h % DOOR_BITS, h.rotate_left(32) % DOOR_BITS] {
            let (w, b) = ((p / 64) as usize, 1u64 << (p % 64));
            all &= self.bits[w].fetch_or(b, Ordering::Relaxed) & b != 0;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_key_on_its_second_miss() {
        let d = Doorkeeper::new();
        assert!(!d.seen_before(42));
        assert!(d.seen_before(42));
        assert!(!d.seen_before(43));
    }
}
