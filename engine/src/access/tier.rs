//! Tiers and their rate limits. The service being replaced fixes two figures (the public demo
//! key: 3 requests/s, 1 000 in performance mode; the stress-test key: 100 000/s); the others are
//! our defaults, a decade apart.

use std::fmt;
use std::str::FromStr;

/// A tier: how many requests per second a key of it may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Public demo (website, demo client): 3/s, 1 000/s in performance mode.
    Demo,
    /// Public free tier: 10/s.
    Free,
    /// Public paid tiers: 100/s and 1 000/s.
    Basic,
    Pro,
    /// Load testing: 100 000/s.
    Stress,
    /// Partners: 10 000/s.
    Partner,
}

/// A sustained rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    /// Requests that may arrive at once after an idle second.
    pub burst: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown tier `{0}` (demo, free, basic, pro, stress, partner)")]
pub struct TierError(String);

impl Tier {
    pub const ALL: [Tier; 6] = [
        Tier::Demo,
        Tier::Free,
        Tier::Basic,
        Tier::Pro,
        Tier::Stress,
        Tier::Partner,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Demo => "demo",
            Tier::Free => "free",
            Tier::Basic => "basic",
            Tier::Pro => "pro",
            Tier::Stress => "stress",
            Tier::Partner => "partner",
        }
    }

    /// Whether a key of this tier may get UDP replies larger than its request (up to
    /// `MAX_REPLY`). Not the public demo key (published, so no key at all) nor free keys (anyone
    /// can have one): those follow the keyless rule, so no key makes the server an amplifier.
    pub(crate) fn lifts_reply_limit(self) -> bool {
        !matches!(self, Tier::Demo | Tier::Free)
    }

    /// The limit in force; the burst is one second's worth.
    pub fn rate(self, performance_mode: bool) -> Rate {
        let per_second = match self {
            Tier::Demo if performance_mode => 1_000,
            Tier::Demo => 3,
            Tier::Free => 10,
            Tier::Basic => 100,
            Tier::Pro => 1_000,
            Tier::Stress => 100_000,
            Tier::Partner => 10_000,
        };
        Rate {
            per_second,
            burst: per_second,
        }
    }
}

impl FromStr for Tier {
    type Err = TierError;

    fn from_str(text: &str) -> Result<Tier, TierError> {
        Tier::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| TierError(text.to_string()))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_rates() {
        for tier in Tier::ALL {
            assert_eq!(tier.name().parse::<Tier>().unwrap(), tier);
        }
        assert!("gold".parse::<Tier>().is_err());
        assert_eq!(Tier::Demo.rate(false).per_second, 3);
        assert_eq!(Tier::Demo.rate(true).per_second, 1_000);
        assert_eq!(Tier::Stress.rate(false).per_second, 100_000);
    }
}
