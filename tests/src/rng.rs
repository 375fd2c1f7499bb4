//! Reproducible random inputs for the hostile-input tests, without a dependency.
#![allow(
    clippy::cast_possible_truncation,
    reason = "random numbers are cut to bytes and lengths on purpose"
)]

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    #[allow(
        clippy::should_implement_trait,
        reason = "not an iterator: it never ends"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Up to `max` bytes in one of four styles: anything, near-valid text, near-valid HTTP,
    /// printable.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        let style = self.next() % 4;
        (0..len)
            .map(|_| {
                let r = self.next();
                match style {
                    0 => r as u8,
                    1 => pick(b"BTCETHPEPE ,key=\0\r\n\t", r),
                    2 => pick(b"GET /price?asset=BTC HTTP/1.1\r\n:%", r),
                    _ => (r % 95) as u8 + 32,
                }
            })
            .collect()
    }

    /// `valid` with a few random edits: flipped, inserted, deleted or repeated bytes, a cut,
    /// or boundary values; one time in eight, noise instead.
    pub fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        if self.below(8) == 0 {
            let len = self.below(1500);
            return (0..len).map(|_| self.next() as u8).collect();
        }
        let mut bytes = valid.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(bytes.len() + 1);
            match self.below(6) {
                0 if at < bytes.len() => {
                    let bit = self.below(8);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << bit;
                    }
                }
                1 => {
                    let b = self.next() as u8;
                    bytes.insert(at, b);
                }
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                3 => {
                    let end = (at + self.below(16)).min(bytes.len());
                    let copy = bytes.get(at..end).unwrap_or_default().to_vec();
                    bytes.splice(at..at, copy);
                }
                4 => bytes.truncate(at),
                _ if at < bytes.len() => {
                    let value = [0x00, 0xff, 0x7f, b' ', b'%'][self.below(5)];
                    if let Some(b) = bytes.get_mut(at) {
                        *b = value;
                    }
                }
                _ => {}
            }
        }
        bytes
    }
}

fn pick(alphabet: &[u8], r: u64) -> u8 {
    alphabet
        .get((r % alphabet.len() as u64) as usize)
        .copied()
        .unwrap_or(b' ')
}
