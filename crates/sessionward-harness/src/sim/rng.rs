//! The simulation's one random stream: ChaCha8 seeded from the scenario seed, drawn in a fixed
//! order so that a seed replays the same day.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sessionward_core::IpNet;

pub(crate) struct SimRng(ChaCha8Rng);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for our sizes).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// An exponential draw with this mean.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }

    /// A count with this mean: the integer part always, plus one with the fractional chance.
    pub(crate) fn count(&mut self, mean: f64) -> u64 {
        let whole = mean.floor();
        whole as u64 + u64::from(self.chance(mean - whole))
    }

    /// An index drawn with these weights (some weight must be positive).
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (index, &w) in weights.iter().enumerate() {
            if target < w {
                return index;
            }
            target -= w;
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }

    /// A host address inside one of `ranges`, avoiding the network and broadcast addresses of
    /// IPv4 ranges wider than /31.
    pub(crate) fn address_in(&mut self, ranges: &[IpNet]) -> IpAddr {
        let net = ranges[self.below(ranges.len() as u64) as usize];
        match net {
            IpNet::V4(v4) => {
                let host_bits = 32 - u32::from(v4.prefix_len());
                let size = 1_u64 << host_bits;
                let offset = if size > 2 {
                    1 + self.below(size - 2)
                } else {
                    self.below(size)
                };
                let base = u32::from(v4.network());
                IpAddr::V4(Ipv4Addr::from(base.wrapping_add(offset as u32)))
            }
            IpNet::V6(v6) => {
                let host_bits = 128 - u32::from(v6.prefix_len());
                let random = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
                let mask = if host_bits >= 128 {
                    u128::MAX
                } else {
                    (1_u128 << host_bits) - 1
                };
                let offset = (random & mask).max(1);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()) | offset))
            }
        }
    }
}
