//! Where responses are written: a fixed buffer on the request path (never allocates; reports
//! overflow instead of growing), or a `Vec` for the few large, rare responses.

/// Receives response bytes.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// As much of `bytes` as there is room for (a bounded sink keeps the head of a long text
    /// and marks the rest as overflow; a growing one takes it all).
    fn put_head(&mut self, bytes: &[u8]) {
        self.put(bytes);
    }

    fn put_u64(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(slot) = digits.get_mut(at) {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "a remainder of 10 fits a byte"
                )]
                let digit = (value % 10) as u8;
                *slot = b'0' + digit;
            }
            value /= 10;
            if value == 0 || at == 0 {
                break;
            }
        }
        self.put(digits.get(at..).unwrap_or_default());
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A fixed buffer. Writes past its end are dropped and remembered: the caller checks
/// [`Fixed::overflowed`] and answers differently (an error, or a larger buffer).
pub struct Fixed<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> Fixed<'a> {
    pub fn new(buf: &'a mut [u8]) -> Fixed<'a> {
        Fixed {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Keeps the first `len` bytes written.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        self.overflowed = false;
    }

    /// Forgets everything written so far.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }
}

impl Sink for Fixed<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dest) if !self.overflowed => {
                dest.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflowed = true,
        }
    }

    fn put_head(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        let room = self.buf.len().saturating_sub(self.len);
        let (head, rest) = bytes.split_at(room.min(bytes.len()));
        self.put(head);
        self.overflowed = !rest.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_reports_overflow_instead_of_growing() {
        let mut buf = [0u8; 8];
        let mut out = Fixed::new(&mut buf);
        out.put(b"1234");
        out.put_u64(5678);
        assert_eq!(out.written(), b"12345678");
        assert!(!out.overflowed());
        out.put(b"9");
        assert!(out.overflowed());
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn a_bounded_sink_keeps_the_head_of_a_long_text() {
        let mut buf = [0u8; 4];
        let mut head = Fixed::new(&mut buf);
        head.put_head(b"123");
        assert!(!head.overflowed());
        head.put_head(b"4567");
        assert_eq!((head.written(), head.overflowed()), (&b"1234"[..], true));
    }

    #[test]
    fn writes_integers() {
        for (value, text) in [
            (0u64, "0"),
            (7, "7"),
            (1_732_400_000_123, "1732400000123"),
            (u64::MAX, "18446744073709551615"),
        ] {
            let mut out = Vec::new();
            out.put_u64(value);
            assert_eq!(out, text.as_bytes());
        }
    }
}
