//! The synthetic event stream: page views from devices, with skew and out-of-order arrival.
//!
//! Events are spread evenly over `days` days of event time starting at `start_ms` (a UTC
//! midnight). Each arrives up to `out_of_order_ms` earlier than its slot (so arrival order
//! is not timestamp order), and a `late_fraction` of them arrive later than that bound:
//! those fall behind the watermark and the job drops them as late, as Flink would.
//! Pages, devices and channels are drawn from Zipf distributions with exponent `skew`
//! (0 is uniform). The same seed always yields the same stream.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Milliseconds in a minute.
pub const MINUTE_MS: u64 = 60_000;
/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;
/// Minutes in a day.
pub const MINUTES_PER_DAY: u64 = DAY_MS / MINUTE_MS;

/// One page view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event time (ms since the Unix epoch).
    pub ts: u64,
    /// Page id.
    pub page: u32,
    /// Device id.
    pub device: u64,
    /// Channel (the DAU dimension, e.g. app or region).
    pub channel: u32,
}

/// What stream to generate.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Number of events.
    pub events: u64,
    /// Days of event time the events span (the first day is history for "returning").
    pub days: u32,
    /// Distinct pages.
    pub pages: u32,
    /// Distinct devices.
    pub devices: u64,
    /// Distinct channels.
    pub channels: u32,
    /// Zipf exponent for pages, devices and channels (0 = uniform).
    pub skew: f64,
    /// Events arrive up to this much out of timestamp order (the watermark's bound).
    pub out_of_order_ms: u64,
    /// Share of events delayed beyond the bound (late, dropped by the job).
    pub late_fraction: f64,
    /// Event time of the stream's start; must be a UTC midnight.
    pub start_ms: u64,
    /// Random seed.
    pub seed: u64,
}

/// 2026-11-20T00:00:00Z.
pub const DEFAULT_START_MS: u64 = 1_795_132_800_000;

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            events: 500_000,
            days: 2,
            pages: 100,
            devices: 100_000,
            channels: 8,
            skew: 1.0,
            out_of_order_ms: 2 * MINUTE_MS,
            late_fraction: 0.001,
            start_ms: DEFAULT_START_MS,
            seed: 42,
        }
    }
}

impl StreamConfig {
    /// Rejects configurations that cannot produce a stream.
    pub fn validate(&self) -> Result<(), String> {
        if self.days == 0 || self.pages == 0 || self.devices == 0 || self.channels == 0 {
            return Err("days, pages, devices and channels must be at least 1".into());
        }
        if !(self.skew >= 0.0 && self.skew.is_finite()) {
            return Err(format!(
                "skew must be a finite number >= 0, not {}",
                self.skew
            ));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return Err(format!(
                "late fraction must be within 0..=1, not {}",
                self.late_fraction
            ));
        }
        if !self.start_ms.is_multiple_of(DAY_MS) {
            return Err("the start must be a UTC midnight".into());
        }
        if self.devices > 50_000_000 {
            return Err("at most 50M devices".into());
        }
        Ok(())
    }

    /// The stream, in arrival order.
    pub fn generate(&self) -> Result<Stream, String> {
        self.validate()?;
        Ok(Stream {
            cfg: self.clone(),
            rng: StdRng::seed_from_u64(self.seed),
            pages: Zipf::new(self.pages as u64, self.skew),
            devices: Zipf::new(self.devices, self.skew),
            channels: Zipf::new(self.channels as u64, self.skew),
            next: 0,
        })
    }

    /// Event time just past the stream's last day.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.days as u64 * DAY_MS
    }
}

/// The generated events, in arrival order.
pub struct Stream {
    cfg: StreamConfig,
    rng: StdRng,
    pages: Zipf,
    devices: Zipf,
    channels: Zipf,
    next: u64,
}

impl Iterator for Stream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let c = &self.cfg;
        if self.next >= c.events {
            return None;
        }
        let span = c.days as u64 * DAY_MS;
        let slot = c.start_ms + (self.next as u128 * span as u128 / c.events as u128) as u64;
        self.next += 1;
        let mut delay = self.rng.random_range(0..=c.out_of_order_ms);
        if self.rng.random_bool(c.late_fraction) {
            // Beyond the bound: up to five minutes behind the watermark.
            delay = c.out_of_order_ms + self.rng.random_range(1..=5 * MINUTE_MS);
        }
        let ts = slot.saturating_sub(delay).max(c.start_ms);
        // Ids are scrambled so hot ids are not also the smallest.
        let page = self.pages.sample(&mut self.rng) as u32;
        let device = scramble(self.devices.sample(&mut self.rng), c.devices);
        let channel = self.channels.sample(&mut self.rng) as u32;
        Some(Event {
            ts,
            page,
            device,
            channel,
        })
    }
}

/// A bijection on `0..n` (multiplication by an odd constant modulo a power of two, with
/// cycle walking), so popularity rank and id differ.
fn scramble(rank: u64, n: u64) -> u64 {
    let bits = 64 - (n.max(2) - 1).leading_zeros();
    let mask = (1u64 << bits) - 1;
    let mut x = rank;
    loop {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask;
        x ^= x >> (bits / 2).max(1);
        if x < n {
            return x;
        }
    }
}

/// Zipf-distributed ranks in `0..n`, sampled by binary search over the cumulative weights.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> u64 {
        let u: f64 = rng.random();
        (self.cdf.partition_point(|&c| c < u) as u64).min(self.cdf.len() as u64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scramble_is_a_bijection() {
        for n in [1u64, 2, 3, 10, 1000, 4096, 4097] {
            let mut seen: Vec<u64> = (0..n).map(|r| scramble(r, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn stream_is_deterministic_bounded_and_skewed() {
        let cfg = StreamConfig {
            events: 20_000,
            late_fraction: 0.0,
            ..StreamConfig::default()
        };
        let a: Vec<Event> = cfg.generate().unwrap().collect();
        let b: Vec<Event> = cfg.generate().unwrap().collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_000);
        let mut max = 0;
        let mut out_of_order = 0;
        for e in &a {
            assert!(e.ts >= cfg.start_ms && e.ts < cfg.end_ms());
            assert!(e.ts + cfg.out_of_order_ms >= max, "beyond the bound");
            out_of_order += usize::from(e.ts < max);
            max = max.max(e.ts);
            assert!(e.page < cfg.pages && e.device < cfg.devices && e.channel < cfg.channels);
        }
        assert!(out_of_order > 1000, "{out_of_order} events out of order");
        let hot = a.iter().filter(|e| e.page == 0).count();
        let cold = a.iter().filter(|e| e.page == cfg.pages - 1).count();
        assert!(hot > 10 * cold.max(1), "page 0: {hot}, last page: {cold}");
    }

    #[test]
    fn bad_configs_are_rejected() {
        for bad in [
            StreamConfig {
                days: 0,
                ..StreamConfig::default()
            },
            StreamConfig {
                skew: -1.0,
                ..StreamConfig::default()
            },
            StreamConfig {
                late_fraction: 2.0,
                ..StreamConfig::default()
            },
            StreamConfig {
                start_ms: 5,
                ..StreamConfig::default()
            },
        ] {
            assert!(bad.generate().is_err(), "{bad:?}");
        }
    }
}
