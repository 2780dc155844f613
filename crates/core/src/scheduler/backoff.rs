//! Retry timing: exponential backoff with "equal jitter" (half fixed, half random), capped.

/// Delay before retry number `retry` (1 for the first retry); `random` in [0, 1).
pub fn backoff_delay_ms(base_ms: u64, cap_ms: u64, retry: u32, random: f64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << retry.saturating_sub(1).min(40));
    let ceiling = exp.min(cap_ms);
    let half = ceiling / 2;
    half + ((ceiling - half) as f64 * random.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The cap includes the jitter: no delay exceeds it, whatever the draw.
        #[test]
        fn no_delay_exceeds_its_cap(base in 0u64..100_000, cap in 0u64..1_000_000, retry in 0u32..200, random in 0.0f64..1.0) {
            prop_assert!(backoff_delay_ms(base, cap, retry, random) <= cap);
        }
    }

    #[test]
    fn doubles_within_jitter_and_caps() {
        assert_eq!(backoff_delay_ms(100, 10_000, 1, 0.0), 50);
        assert_eq!(backoff_delay_ms(100, 10_000, 1, 0.999), 99);
        assert_eq!(backoff_delay_ms(100, 10_000, 3, 0.0), 200);
        assert_eq!(backoff_delay_ms(100, 1_000, 10, 0.0), 500);
        assert!(backoff_delay_ms(100, 1_000, 100, 0.99) <= 1_000);
        assert_eq!(backoff_delay_ms(0, 0, 5, 0.5), 0);
    }
}
