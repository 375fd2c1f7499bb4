//! Where a price came from: one of the six venues, over its stream or its REST fallback.

use std::fmt;

/// The exchanges the engine follows. The discriminant is the venue's index in per-source arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Venue {
    Coinbase = 0,
    Gemini = 1,
    Kraken = 2,
    Gateio = 3,
    Cryptocom = 4,
    Okx = 5,
}

impl Venue {
    pub const COUNT: usize = 6;
    pub const ALL: [Venue; Venue::COUNT] = [
        Venue::Coinbase,
        Venue::Gemini,
        Venue::Kraken,
        Venue::Gateio,
        Venue::Cryptocom,
        Venue::Okx,
    ];

    /// Lower-case name used in source tags, settings and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Venue::Coinbase => "coinbase",
            Venue::Gemini => "gemini",
            Venue::Kraken => "kraken",
            Venue::Gateio => "gateio",
            Venue::Cryptocom => "cryptocom",
            Venue::Okx => "okx",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(index: usize) -> Option<Venue> {
        Venue::ALL.get(index).copied()
    }

    /// Accepts the name in any case, and the dotted spellings `gate.io` and `crypto.com`.
    pub fn from_name(name: &str) -> Option<Venue> {
        let name = name.trim();
        Venue::ALL.into_iter().find(|v| {
            v.name().eq_ignore_ascii_case(name)
                || (*v == Venue::Gateio && name.eq_ignore_ascii_case("gate.io"))
                || (*v == Venue::Cryptocom && name.eq_ignore_ascii_case("crypto.com"))
        })
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the price reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Channel {
    /// The venue's WebSocket stream.
    Stream = 0,
    /// The venue's REST ticker, polled while the stream is stale.
    Rest = 1,
}

/// A venue and channel, shown to clients as a tag such as `coinbase-ws`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub venue: Venue,
    pub channel: Channel,
}

impl Source {
    pub const fn stream(venue: Venue) -> Source {
        Source {
            venue,
            channel: Channel::Stream,
        }
    }

    pub const fn rest(venue: Venue) -> Source {
        Source {
            venue,
            channel: Channel::Rest,
        }
    }

    pub fn tag(self) -> &'static str {
        const TAGS: [[&str; 2]; Venue::COUNT] = [
            ["coinbase-ws", "coinbase-rest"],
            ["gemini-ws", "gemini-rest"],
            ["kraken-ws", "kraken-rest"],
            ["gateio-ws", "gateio-rest"],
            ["cryptocom-ws", "cryptocom-rest"],
            ["okx-ws", "okx-rest"],
        ];
        TAGS.get(self.venue.index())
            .and_then(|pair| pair.get(self.channel as usize))
            .copied()
            .unwrap_or("unknown")
    }

    /// The tag of a price the exchange simulator made (`sim-coinbase-ws`): never a real
    /// venue's name, and not read back by [`Source::from_tag`], so a simulated price cannot
    /// come back as a real one (from a shared cache, say).
    pub fn tag_for(self, simulated: bool) -> &'static str {
        const SIM_TAGS: [[&str; 2]; Venue::COUNT] = [
            ["sim-coinbase-ws", "sim-coinbase-rest"],
            ["sim-gemini-ws", "sim-gemini-rest"],
            ["sim-kraken-ws", "sim-kraken-rest"],
            ["sim-gateio-ws", "sim-gateio-rest"],
            ["sim-cryptocom-ws", "sim-cryptocom-rest"],
            ["sim-okx-ws", "sim-okx-rest"],
        ];
        if !simulated {
            return self.tag();
        }
        SIM_TAGS
            .get(self.venue.index())
            .and_then(|pair| pair.get(self.channel as usize))
            .copied()
            .unwrap_or("sim-unknown")
    }

    /// Parses a tag (`okx-ws`, `kraken-rest`); a bare venue name means its stream.
    pub fn from_tag(tag: &str) -> Option<Source> {
        let (venue, channel) = match tag.rsplit_once('-') {
            Some((venue, "ws")) => (venue, Channel::Stream),
            Some((venue, "rest")) => (venue, Channel::Rest),
            _ => (tag, Channel::Stream),
        };
        Venue::from_name(venue).map(|venue| Source { venue, channel })
    }

    /// Packs into a byte: venue index in the low bits, REST in bit 7.
    pub fn to_byte(self) -> u8 {
        self.venue as u8 | (self.channel as u8) << 7
    }

    pub fn from_byte(byte: u8) -> Option<Source> {
        let venue = Venue::from_index(usize::from(byte & 0x7f))?;
        let channel = if byte & 0x80 == 0 {
            Channel::Stream
        } else {
            Channel::Rest
        };
        Some(Source { venue, channel })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for venue in Venue::ALL {
            for source in [Source::stream(venue), Source::rest(venue)] {
                assert_eq!(Source::from_tag(source.tag()), Some(source));
                assert_eq!(Source::from_byte(source.to_byte()), Some(source));
                // A simulated price's tag names the venue after `sim-` and never reads back.
                let simulated = source.tag_for(true);
                assert_eq!(simulated.strip_prefix("sim-"), Some(source.tag()));
                assert_eq!(Source::from_tag(simulated), None);
                assert_eq!(source.tag_for(false), source.tag());
            }
        }
        let cases: &[(&str, Option<Source>)] = &[
            ("coinbase-ws", Some(Source::stream(Venue::Coinbase))),
            ("Gate.io", Some(Source::stream(Venue::Gateio))),
            ("crypto.com-rest", Some(Source::rest(Venue::Cryptocom))),
            ("binance-ws", None),
            ("", None),
        ];
        for (tag, expected) in cases {
            assert_eq!(Source::from_tag(tag), *expected, "{tag}");
        }
        assert_eq!(Source::from_byte(6), None);
    }
}
