//! The pauses between tries of anything that waits for a dependency to come back (the broker,
//! the store): exponential, with jitter so that processes that failed together do not all try
//! again together, and never longer than their cap, jitter included.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Pauses from about `first` (between `first` and twice it), doubling, each between half the
/// pause reached and that pause, never above `cap`. Endless.
pub fn pauses(first: Duration, cap: Duration) -> impl Iterator<Item = Duration> {
    // The jitter adds up to as much again as the pause reached: grow to half the cap, and the
    // jittered pause stays within it.
    let half = cap / 2;
    ExponentialBuilder::default()
        .with_min_delay(first.min(half))
        .with_max_delay(half)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |p| p.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No pause exceeds its cap, whatever the first pause and the cap, however many.
        #[test]
        fn no_pause_exceeds_its_cap(first_ms in 0u64..20_000, cap_ms in 0u64..60_000) {
            let (first, cap) = (Duration::from_millis(first_ms), Duration::from_millis(cap_ms));
            for (n, p) in pauses(first, cap).take(64).enumerate() {
                prop_assert!(p <= cap, "pause {n}: {p:?} over {cap:?}");
            }
        }
    }

    #[test]
    fn pauses_grow_and_spread_up_to_the_cap() {
        let cap = Duration::from_secs(2);
        let taken: Vec<Duration> = pauses(Duration::from_millis(250), cap).take(40).collect();
        assert!(taken[0] >= Duration::from_millis(250) && taken[0] < Duration::from_millis(500));
        // Later pauses sit between half the cap and the cap, not all the same.
        let late = &taken[10..];
        assert!(late.iter().all(|p| *p >= cap / 2 && *p <= cap), "{late:?}");
        assert!(late.iter().any(|p| *p != late[0]), "{late:?}");
    }
}
