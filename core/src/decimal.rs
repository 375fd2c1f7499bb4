//! Exact decimal prices: the value an exchange sent, kept as an integer mantissa and a scale,
//! plus how it was written, so it formats back to the very same text.
//!
//! Exchanges send prices as decimal text (`"97123.45"`, `"0.4705000000"`) or, for Kraken, as JSON
//! number tokens. Going through `f64` would turn `0.1` into `0.1000000000000000055…` and drop the
//! trailing zeros that some clients display, so nothing here uses floats.
//!
//! Accepted grammar (no sign, no whitespace, ASCII only):
//!
//! ```text
//! digits [ "." digits ] [ ("e" | "E") [ "+" | "-" ] digits ]
//! ```
//!
//! Limits, all checked: at most [`MAX_TEXT_LEN`] bytes of text, at most 20 significant digits
//! (the value must fit a `u64` mantissa), at most [`MAX_SCALE`] fractional digits in the value
//! (trailing zeros do not count: they are kept as notation, not as value).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Longest text accepted, and the size of the buffer [`Decimal::format`] writes into.
pub const MAX_TEXT_LEN: usize = 40;

/// Most fractional digits a value may carry once trailing zeros are set aside.
/// Keeping it at 19 lets any two mantissas be brought to a common scale inside a `u128`.
pub const MAX_SCALE: u8 = 19;

/// Why a text is not a price. `Copy`, so the hot path can count it without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty price")]
    Empty,
    #[error("price text longer than {MAX_TEXT_LEN} bytes")]
    TooLong,
    #[error("negative price")]
    Negative,
    #[error("not a finite number")]
    NotFinite,
    #[error("unexpected byte {byte:#04x} at offset {at}")]
    InvalidByte { byte: u8, at: usize },
    #[error("digits missing")]
    MissingDigits,
    #[error("more significant digits than a 64-bit mantissa holds")]
    Overflow,
    #[error("more than {MAX_SCALE} fractional digits")]
    ScaleTooLarge,
}

/// An exact, non-negative decimal number and the way it was written.
///
/// Equality and ordering compare values: `1.50 == 1.5`. Formatting reproduces the notation:
/// `1.50` formats as `1.50`.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    /// Value = `mantissa` × 10^-`scale`, with no trailing zero in the fraction (canonical).
    mantissa: u64,
    scale: u8,
    notation: Notation,
}

/// Everything about the text that is not the value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Notation {
    /// `0`s written in front of the integer digits beyond the single `0` of `0.5`.
    lead_zeros: u8,
    /// `0`s written after the last significant fraction digit (`0.4705000000` has 6).
    trail_zeros: u8,
    exponent: Option<Exponent>,
}

/// Scientific notation as written: `1.50e-7`, `1E+07`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Exponent {
    magnitude: u8,
    sign: ExpSign,
    upper: bool,
    /// Digits written, leading zeros included (`e-07` has 2).
    width: u8,
    /// Significant fraction digits of the coefficient (`1.50e-7` has 1; its 0 is a trail zero).
    coef_scale: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ExpSign {
    Implicit,
    Plus,
    Minus,
}

impl Exponent {
    fn value(self) -> i32 {
        match self.sign {
            ExpSign::Minus => -i32::from(self.magnitude),
            ExpSign::Implicit | ExpSign::Plus => i32::from(self.magnitude),
        }
    }
}

const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        #[allow(
            clippy::indexing_slicing,
            reason = "const evaluation: an out-of-range index fails the build"
        )]
        {
            table[i] = table[i - 1] * 10;
        }
        i += 1;
    }
    table
};

fn pow10_u64(exp: u32) -> Option<u64> {
    POW10.get(exp as usize).copied()
}

fn pow10_u128(exp: u32) -> Option<u128> {
    10u128.checked_pow(exp)
}

impl Decimal {
    /// Zero, written `0`.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
        notation: Notation::PLAIN,
    };

    /// A value written in plain notation, e.g. `from_parts(12345, 2)` is `123.45`.
    /// Fails if `scale` exceeds [`MAX_SCALE`]. Trailing fraction zeros become notation.
    pub fn from_parts(mantissa: u64, scale: u8) -> Result<Decimal, DecimalError> {
        if scale > MAX_SCALE {
            return Err(DecimalError::ScaleTooLarge);
        }
        let (mantissa, value_scale, trail) = strip_fraction_zeros(mantissa, scale);
        Ok(Decimal {
            mantissa,
            scale: value_scale,
            notation: Notation {
                trail_zeros: trail,
                ..Notation::PLAIN
            },
        })
    }

    /// Parses exchange text. See the module documentation for the grammar and the limits.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse_bytes(text.as_bytes())
    }

    /// Parses exchange text given as bytes (request buffers, JSON number tokens).
    pub fn parse_bytes(text: &[u8]) -> Result<Decimal, DecimalError> {
        parse(text)
    }

    /// The value's integer mantissa: value = `mantissa()` × 10^-`scale()`.
    pub fn mantissa(&self) -> u64 {
        self.mantissa
    }

    /// The value's scale (fractional digits, trailing zeros excluded).
    pub fn scale(&self) -> u8 {
        self.scale
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Same value, written in plain notation without padding zeros (`000123.4500` → `123.45`).
    pub fn canonical(&self) -> Decimal {
        Decimal {
            notation: Notation::PLAIN,
            ..*self
        }
    }

    /// The number written before any exponent, as (significant digits, fractional digits).
    fn coefficient(&self) -> (u64, u8) {
        let Some(exp) = self.notation.exponent else {
            return (self.mantissa, self.scale);
        };
        // Undo the exponent: coefficient = value × 10^(coef_scale - exp). Exact for parsed
        // values; the fallbacks only guard words that did not come from `parse`.
        let shift = i32::from(exp.coef_scale) - exp.value() - i32::from(self.scale);
        let factor = pow10_u64(shift.unsigned_abs());
        let coefficient = if shift >= 0 {
            factor
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(self.mantissa)
        } else {
            factor.map_or(self.mantissa, |p| self.mantissa / p)
        };
        (coefficient, exp.coef_scale)
    }

    /// Writes the text this decimal was parsed from (or its plain form, if computed).
    pub fn format(&self) -> DecimalText {
        let mut out = DecimalText {
            buf: [0; MAX_TEXT_LEN],
            len: 0,
        };
        let (coefficient, coef_scale) = self.coefficient();
        let n = &self.notation;
        write_plain(
            &mut out,
            coefficient,
            coef_scale,
            n.lead_zeros,
            n.trail_zeros,
        );
        if let Some(exp) = n.exponent {
            out.push(if exp.upper { b'E' } else { b'e' });
            match exp.sign {
                ExpSign::Implicit => {}
                ExpSign::Plus => out.push(b'+'),
                ExpSign::Minus => out.push(b'-'),
            }
            let mut digits = [0u8; 3];
            let written = write_u64(&mut digits, u64::from(exp.magnitude));
            for _ in written..usize::from(exp.width) {
                out.push(b'0');
            }
            out.extend(digits.get(..written).unwrap_or_default());
        }
        out
    }

    /// Packs the decimal into two words for lock-free storage (see the engine's price table).
    pub fn to_words(&self) -> [u64; 2] {
        let n = &self.notation;
        let mut meta =
            u64::from(self.scale) | u64::from(n.lead_zeros) << 8 | u64::from(n.trail_zeros) << 16;
        if let Some(exp) = n.exponent {
            let sign = match exp.sign {
                ExpSign::Implicit => 1u64,
                ExpSign::Plus => 2,
                ExpSign::Minus => 3,
            };
            meta |= sign << 24
                | u64::from(exp.upper) << 26
                | u64::from(exp.magnitude) << 32
                | u64::from(exp.width) << 40
                | u64::from(exp.coef_scale) << 48;
        }
        [self.mantissa, meta]
    }

    /// Unpacks [`Decimal::to_words`]. Words that no decimal packs to are refused, so a reader
    /// can never format more than [`MAX_TEXT_LEN`] bytes from corrupt input.
    pub fn from_words(words: [u64; 2]) -> Option<Decimal> {
        let [mantissa, meta] = words;
        #[allow(clippy::cast_possible_truncation, reason = "masked to one byte")]
        let byte = |shift: u32| ((meta >> shift) & 0xff) as u8;
        let scale = byte(0);
        let exponent = match (meta >> 24) & 0b11 {
            0 => None,
            sign => Some(Exponent {
                sign: match sign {
                    1 => ExpSign::Implicit,
                    2 => ExpSign::Plus,
                    _ => ExpSign::Minus,
                },
                upper: (meta >> 26) & 1 == 1,
                magnitude: byte(32),
                width: byte(40),
                coef_scale: byte(48),
            }),
        };
        let decimal = Decimal {
            mantissa,
            scale,
            notation: Notation {
                lead_zeros: byte(8),
                trail_zeros: byte(16),
                exponent,
            },
        };
        let canonical = scale == 0 || !mantissa.is_multiple_of(10);
        (scale <= MAX_SCALE && canonical && decimal.text_len() <= MAX_TEXT_LEN).then_some(decimal)
    }

    /// Length in bytes of [`Decimal::format`]'s output, computed without writing it.
    fn text_len(&self) -> usize {
        let n = &self.notation;
        let (coefficient, coef_scale) = self.coefficient();
        let (digits, scale) = (digit_count(coefficient), usize::from(coef_scale));
        let int_digits = digits.saturating_sub(scale).max(1);
        let has_point = scale > 0 || n.trail_zeros > 0;
        let exp_len = n.exponent.map_or(0, |e| {
            1 + usize::from(e.sign != ExpSign::Implicit)
                + usize::from(e.width).max(digit_count(u64::from(e.magnitude)))
        });
        usize::from(n.lead_zeros)
            + int_digits
            + usize::from(has_point)
            + scale
            + usize::from(n.trail_zeros)
            + exp_len
    }

    /// Both values brought to their larger scale, exactly (fits: scales differ by at most 19).
    fn aligned(a: &Decimal, b: &Decimal) -> (u128, u128, u8) {
        let scale = a.scale.max(b.scale);
        let widen = |d: &Decimal| {
            let factor = pow10_u128(u32::from(scale - d.scale)).unwrap_or(1);
            u128::from(d.mantissa) * factor
        };
        (widen(a), widen(b), scale)
    }

    /// The value `value` × 10^-`scale`, rounded half-to-even to fewer fractional digits when it
    /// does not fit a `u64` mantissa. `None` only if even the integer part does not fit.
    fn from_u128(mut value: u128, mut scale: u8) -> Option<Decimal> {
        while value > u128::from(u64::MAX) || scale > MAX_SCALE {
            if scale == 0 {
                return None;
            }
            let (q, r) = (value / 10, value % 10);
            value = if r > 5 || (r == 5 && q % 2 == 1) {
                q + 1
            } else {
                q
            };
            scale -= 1;
        }
        let mantissa = u64::try_from(value).ok()?;
        let (mantissa, scale, _) = strip_fraction_zeros(mantissa, scale);
        Some(Decimal {
            mantissa,
            scale,
            notation: Notation::PLAIN,
        })
    }

    /// The midpoint of two values, exact when it fits (one more fractional digit at most).
    pub fn midpoint(a: &Decimal, b: &Decimal) -> Option<Decimal> {
        let (x, y, scale) = Decimal::aligned(a, b);
        // Only the operand with the smaller scale is widened, so the sum stays below 2^128.
        let sum = x.checked_add(y)?;
        match sum.checked_mul(5) {
            Some(half_tenths) if sum % 2 == 1 => Decimal::from_u128(half_tenths, scale + 1),
            // Even sums halve exactly; an odd sum this large is rounded by `from_u128` anyway.
            _ => Decimal::from_u128(sum / 2 + (sum % 2) * (sum / 2 % 2), scale),
        }
    }

    /// `self + other`, rounded only if the sum needs more than 20 significant digits.
    pub fn checked_add(&self, other: &Decimal) -> Option<Decimal> {
        let (x, y, scale) = Decimal::aligned(self, other);
        Decimal::from_u128(x.checked_add(y)?, scale)
    }

    /// `self - other` when `self >= other`.
    pub fn checked_sub(&self, other: &Decimal) -> Option<Decimal> {
        let (x, y, scale) = Decimal::aligned(self, other);
        Decimal::from_u128(x.checked_sub(y)?, scale)
    }

    /// `(self - other) / other` in basis points, rounded down; `None` when `other` is zero or
    /// `self < other`.
    pub fn excess_bps(&self, other: &Decimal) -> Option<u64> {
        let (x, y, _) = Decimal::aligned(self, other);
        let diff = x.checked_sub(y)?;
        if y == 0 {
            return None;
        }
        let bps = match diff.checked_mul(10_000) {
            Some(scaled) => scaled / y,
            None => diff / (y / 10_000).max(1),
        };
        Some(u64::try_from(bps).unwrap_or(u64::MAX))
    }

    /// The median of `values`, sorting them in place (no allocation). With an even count it is
    /// the midpoint of the two middle values. `None` for an empty slice.
    pub fn median(values: &mut [Decimal]) -> Option<Decimal> {
        values.sort_unstable();
        let n = values.len();
        let upper = values.get(n / 2)?;
        if n % 2 == 1 {
            return Some(*upper);
        }
        let lower = values.get(n / 2 - 1)?;
        // Equal middles: keep a source's own text rather than a computed one.
        if lower == upper {
            Some(*upper)
        } else {
            Decimal::midpoint(lower, upper)
        }
    }
}

impl Notation {
    const PLAIN: Notation = Notation {
        lead_zeros: 0,
        trail_zeros: 0,
        exponent: None,
    };
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        // Values are canonical (no fraction trailing zeros), so equal values have equal parts.
        self.mantissa == other.mantissa && (self.scale == other.scale || self.mantissa == 0)
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        let (x, y, _) = Decimal::aligned(self, other);
        x.cmp(&y)
    }
}

impl std::hash::Hash for Decimal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mantissa.hash(state);
        if self.mantissa != 0 {
            self.scale.hash(state);
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format().as_str())
    }
}

/// A formatted decimal on the stack: no allocation.
#[derive(Clone, Copy)]
pub struct DecimalText {
    buf: [u8; MAX_TEXT_LEN],
    len: usize,
}

impl DecimalText {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '.', 'e', 'E', '+', '-' are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

impl fmt::Debug for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::ops::Deref for DecimalText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// Writes `value`'s decimal digits right-aligned at the start of `out`; returns their count.
fn write_u64(out: &mut [u8], mut value: u64) -> usize {
    let n = digit_count(value);
    for i in (0..n).rev() {
        if let Some(slot) = out.get_mut(i) {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "a remainder of 10 fits a byte"
            )]
            let digit = (value % 10) as u8;
            *slot = b'0' + digit;
        }
        value /= 10;
    }
    n
}

fn digit_count(value: u64) -> usize {
    POW10.iter().skip(1).take_while(|&&p| value >= p).count() + 1
}

fn write_plain(out: &mut DecimalText, mantissa: u64, scale: u8, lead: u8, trail: u8) {
    let mut digits = [0u8; 20];
    let n = write_u64(&mut digits, mantissa);
    let digits = digits.get(..n).unwrap_or_default();
    let scale = usize::from(scale);
    for _ in 0..lead {
        out.push(b'0');
    }
    if n > scale {
        let (int, frac) = digits.split_at(n - scale);
        out.extend(int);
        if !frac.is_empty() || trail > 0 {
            out.push(b'.');
            out.extend(frac);
        }
    } else {
        out.push(b'0');
        out.push(b'.');
        for _ in n..scale {
            out.push(b'0');
        }
        out.extend(digits);
    }
    for _ in 0..trail {
        out.push(b'0');
    }
}

/// Moves fraction trailing zeros out of the value: `(12300, 3)` → `(123, 1, 2)`.
fn strip_fraction_zeros(mut mantissa: u64, mut scale: u8) -> (u64, u8, u8) {
    if mantissa == 0 {
        return (0, 0, scale);
    }
    let mut stripped = 0u8;
    while scale > 0 && mantissa.is_multiple_of(10) {
        mantissa /= 10;
        scale -= 1;
        stripped += 1;
    }
    (mantissa, scale, stripped)
}

fn push_digit(coef: &mut u64, digit: u8) -> Result<(), DecimalError> {
    *coef = coef
        .checked_mul(10)
        .and_then(|c| c.checked_add(u64::from(digit)))
        .ok_or(DecimalError::Overflow)?;
    Ok(())
}

fn is_not_finite(text: &[u8]) -> bool {
    const WORDS: [&[u8]; 4] = [b"nan", b"inf", b"infinity", b"snan"];
    let word = text
        .strip_prefix(b"+")
        .or_else(|| text.strip_prefix(b"-"))
        .unwrap_or(text);
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn parse(text: &[u8]) -> Result<Decimal, DecimalError> {
    if text.is_empty() {
        return Err(DecimalError::Empty);
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(DecimalError::TooLong);
    }
    if is_not_finite(text) {
        return Err(DecimalError::NotFinite);
    }
    if text.first() == Some(&b'-') {
        return Err(DecimalError::Negative);
    }

    // Coefficient digits, significant ones accumulated into `coef`.
    let mut pos = 0;
    let mut coef: u64 = 0;
    let mut lead_zeros = 0u8;
    let mut int_digits = 0usize;
    let mut seen_nonzero = false;
    // Zeros after the last nonzero fraction digit are only known to be trailing at the end,
    // so they are counted here and folded into the coefficient if a nonzero digit follows.
    let mut pending_zeros = 0u8;
    let mut frac_sig = 0usize;
    let mut in_fraction = false;

    while let Some(&b) = text.get(pos) {
        match b {
            b'0'..=b'9' => {
                let d = b - b'0';
                if !in_fraction {
                    int_digits += 1;
                    if d == 0 && !seen_nonzero {
                        lead_zeros += 1;
                    } else {
                        seen_nonzero = true;
                        push_digit(&mut coef, d)?;
                    }
                } else if d == 0 {
                    pending_zeros += 1;
                } else {
                    for _ in 0..pending_zeros {
                        push_digit(&mut coef, 0)?;
                    }
                    frac_sig += usize::from(pending_zeros) + 1;
                    pending_zeros = 0;
                    push_digit(&mut coef, d)?;
                }
            }
            b'.' if !in_fraction => {
                if int_digits == 0 {
                    return Err(DecimalError::MissingDigits);
                }
                in_fraction = true;
                if !matches!(text.get(pos + 1), Some(b'0'..=b'9')) {
                    return Err(DecimalError::MissingDigits);
                }
            }
            b'e' | b'E' => break,
            _ => return Err(DecimalError::InvalidByte { byte: b, at: pos }),
        }
        pos += 1;
    }
    if int_digits == 0 {
        return Err(DecimalError::MissingDigits);
    }
    if !seen_nonzero {
        // "0", "000.5": one zero stands for the integer part; the rest are padding.
        lead_zeros -= 1;
    }
    let trail_zeros = pending_zeros;
    let coef_scale = u8::try_from(frac_sig).map_err(|_| DecimalError::ScaleTooLarge)?;

    let exponent = match text.get(pos) {
        None => None,
        Some(&marker) => Some(parse_exponent(text, pos + 1, marker == b'E', coef_scale)?),
    };

    let exp_value = exponent.map_or(0, Exponent::value);
    let value_scale = i32::from(coef_scale) - exp_value;
    let (mantissa, scale) = if value_scale < 0 {
        let factor = pow10_u64(value_scale.unsigned_abs()).ok_or(DecimalError::Overflow)?;
        (coef.checked_mul(factor).ok_or(DecimalError::Overflow)?, 0u8)
    } else {
        let scale = u8::try_from(value_scale).map_err(|_| DecimalError::ScaleTooLarge)?;
        let (m, s, _) = strip_fraction_zeros(coef, scale);
        (m, s)
    };
    if scale > MAX_SCALE {
        return Err(DecimalError::ScaleTooLarge);
    }
    Ok(Decimal {
        mantissa,
        scale,
        notation: Notation {
            lead_zeros,
            trail_zeros,
            exponent,
        },
    })
}

fn parse_exponent(
    text: &[u8],
    mut pos: usize,
    upper: bool,
    coef_scale: u8,
) -> Result<Exponent, DecimalError> {
    let sign = match text.get(pos) {
        Some(b'+') => ExpSign::Plus,
        Some(b'-') => ExpSign::Minus,
        _ => ExpSign::Implicit,
    };
    if sign != ExpSign::Implicit {
        pos += 1;
    }
    let mut magnitude: u32 = 0;
    let mut width = 0u8;
    while let Some(&b) = text.get(pos) {
        if !b.is_ascii_digit() {
            return Err(DecimalError::InvalidByte { byte: b, at: pos });
        }
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(u32::from(b - b'0'));
        width = width.saturating_add(1);
        pos += 1;
    }
    if width == 0 {
        return Err(DecimalError::MissingDigits);
    }
    let magnitude = u8::try_from(magnitude).map_err(|_| match sign {
        ExpSign::Minus => DecimalError::ScaleTooLarge,
        ExpSign::Implicit | ExpSign::Plus => DecimalError::Overflow,
    })?;
    Ok(Exponent {
        magnitude,
        sign,
        upper,
        width,
        coef_scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_and_formats_back_exactly() {
        // (text, mantissa, scale)
        let cases: &[(&str, u64, u8)] = &[
            ("97123.45", 9712345, 2),                              // TC0 BTC
            ("0.00001234", 1234, 8),                               // TC1 PEPE-class
            ("0.4705000000", 4705, 4), // TC2 trailing zeros are notation
            ("000123.4500", 12345, 2), // TC3 padded both sides
            ("98000", 98000, 0),       // TC4 Kraken integer token
            ("0", 0, 0),               // TC5
            ("0.000", 0, 0),           // TC6
            ("00", 0, 0),              // TC7
            ("00.5", 5, 1),            // TC8
            ("1e-7", 1, 7),            // TC9 exponent
            ("1.50e-7", 15, 8),        // TC10
            ("1.5E+3", 1500, 0),       // TC11
            ("2.5e-07", 25, 8),        // TC12 exponent width kept
            ("10e-1", 1, 0),           // TC13 exponent strips to a whole number
            ("1e0", 1, 0),             // TC14
            ("5e-0", 5, 0),            // TC15 signed zero exponent
            ("18446744073709551615", u64::MAX, 0), // TC16 widest mantissa
            ("0.0000000000000000001", 1, 19), // TC17 deepest scale
            ("0.12345678901234567800000", 123456789012345678, 18), // TC18 long zero padding
            ("123456789012.5", 1234567890125, 1), // TC19 12-digit integer part
            ("77401.500", 774015, 1),  // TC20 Gemini padding
        ];
        for &(text, mantissa, scale) in cases {
            let value = d(text);
            assert_eq!(
                (value.mantissa(), value.scale()),
                (mantissa, scale),
                "{text}"
            );
            assert_eq!(value.format().as_str(), text, "{text}");
            assert_eq!(value.to_string(), text, "{text}");
            assert_eq!(
                Decimal::from_words(value.to_words()).map(|v| v.to_string()),
                Some(text.to_string())
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_price() {
        let cases: &[(&str, DecimalError)] = &[
            ("", DecimalError::Empty),
            ("-1.5", DecimalError::Negative),
            ("-0", DecimalError::Negative),
            ("NaN", DecimalError::NotFinite),
            ("nan", DecimalError::NotFinite),
            ("Infinity", DecimalError::NotFinite),
            ("-inf", DecimalError::NotFinite),
            ("+1", DecimalError::InvalidByte { byte: b'+', at: 0 }),
            (" 1", DecimalError::InvalidByte { byte: b' ', at: 0 }),
            ("1 ", DecimalError::InvalidByte { byte: b' ', at: 1 }),
            ("1,5", DecimalError::InvalidByte { byte: b',', at: 1 }),
            ("1.2.3", DecimalError::InvalidByte { byte: b'.', at: 3 }),
            ("0x10", DecimalError::InvalidByte { byte: b'x', at: 1 }),
            ("abc", DecimalError::InvalidByte { byte: b'a', at: 0 }),
            ("1.", DecimalError::MissingDigits),
            (".5", DecimalError::MissingDigits),
            ("1e", DecimalError::MissingDigits),
            ("1e+", DecimalError::MissingDigits),
            ("e5", DecimalError::MissingDigits),
            ("1e5.5", DecimalError::InvalidByte { byte: b'.', at: 3 }),
            ("18446744073709551616", DecimalError::Overflow),
            ("123456789012.123456789012345678", DecimalError::Overflow),
            ("1e20", DecimalError::Overflow),
            ("1e300", DecimalError::Overflow),
            ("1e-20", DecimalError::ScaleTooLarge),
            ("1e-300", DecimalError::ScaleTooLarge),
            ("0.00000000000000000001", DecimalError::ScaleTooLarge),
            (
                "00000000000000000000000000000000000000001",
                DecimalError::TooLong,
            ),
            ("１", DecimalError::InvalidByte { byte: 0xef, at: 0 }),
        ];
        for &(text, expected) in cases {
            assert_eq!(
                Decimal::parse(text).map(|v| v.to_string()),
                Err(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn compares_by_value() {
        assert_eq!(d("1.50"), d("1.5"));
        assert_eq!(d("0.000"), d("0"));
        assert_eq!(d("1e-7"), d("0.0000001"));
        assert!(d("97123.45") > d("97123.449999"));
        assert!(d("0.00001234") < d("0.0000124"));
        assert!(d("18446744073709551615") > d("0.0000000000000000001"));
        assert_eq!(d("100").cmp(&d("1e2")), Ordering::Equal);
    }

    #[test]
    fn median_and_spread_without_floats() {
        // (inputs, median)
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["5"], Some("5")),
            (&["97000.10", "97000.30"], Some("97000.2")),
            (&["1", "2"], Some("1.5")),
            (&["3", "1", "2"], Some("2")),
            (&["3512.50"], Some("3512.50")),
            (&["2.0", "2.00", "1"], Some("2.0")),
            (&["7.10", "7.1"], Some("7.1")),
            (&["0.00001234", "0.00001235"], Some("0.000012345")),
            (&["4", "1", "3", "2"], Some("2.5")),
            (
                &["18446744073709551615", "18446744073709551615"],
                Some("18446744073709551615"),
            ),
            // exact midpoint needs a 21st digit: rounded half-to-even at 20 digits
            (
                &["1844674407370955161.5", "1844674407370955161.4"],
                Some("1844674407370955161.4"),
            ),
        ];
        for (inputs, expected) in cases {
            let mut values: Vec<Decimal> = inputs.iter().map(|t| d(t)).collect();
            let median = Decimal::median(&mut values).map(|m| m.to_string());
            assert_eq!(median.as_deref(), *expected, "{inputs:?}");
        }
        assert_eq!(
            d("97010").checked_sub(&d("97000.5")).map(|v| v.to_string()),
            Some("9.5".into())
        );
        assert_eq!(d("1").checked_sub(&d("2")), None);
        assert_eq!(
            d("97000.5").checked_add(&d("0.25")).map(|v| v.to_string()),
            Some("97000.75".into())
        );
        assert_eq!(d("101").excess_bps(&d("100")), Some(100));
        assert_eq!(d("100").excess_bps(&d("0")), None);
        assert_eq!(d("100.0001").excess_bps(&d("100")), Some(0));
    }

    #[test]
    fn canonical_drops_only_padding() {
        assert_eq!(d("000123.4500").canonical().to_string(), "123.45");
        assert_eq!(d("1.50e-7").canonical().to_string(), "0.00000015");
        assert_eq!(
            Decimal::from_parts(12300, 3).map(|v| v.to_string()),
            Ok("12.300".into())
        );
        assert_eq!(Decimal::from_parts(1, 20), Err(DecimalError::ScaleTooLarge));
    }

    #[test]
    fn refuses_words_no_decimal_packs_to() {
        assert!(
            Decimal::from_words([10, 1]).is_none(),
            "fraction trailing zero in the value"
        );
        assert!(
            Decimal::from_words([1, 20]).is_none(),
            "scale above the limit"
        );
        assert!(
            Decimal::from_words([1, 0xff << 8]).is_none(),
            "text longer than the limit"
        );
        assert_eq!(Decimal::from_words([0, 0]), Some(Decimal::ZERO));
    }

    proptest! {
        #[test]
        fn plain_text_round_trips(int in "[1-9][0-9]{0,9}|0", frac in proptest::option::of("[0-9]{1,9}")) {
            let text = match frac { Some(f) => format!("{int}.{f}"), None => int };
            let value = Decimal::parse(&text).unwrap();
            prop_assert_eq!(value.to_string(), text.clone());
            prop_assert_eq!(Decimal::from_words(value.to_words()).unwrap().to_string(), text);
        }

        #[test]
        fn ordering_matches_exact_rational_order(a in 0u64..1_000_000_000, sa in 0u8..10, b in 0u64..1_000_000_000, sb in 0u8..10) {
            let (x, y) = (Decimal::from_parts(a, sa).unwrap(), Decimal::from_parts(b, sb).unwrap());
            let lhs = u128::from(a) * 10u128.pow(u32::from(sb));
            let rhs = u128::from(b) * 10u128.pow(u32::from(sa));
            prop_assert_eq!(x.cmp(&y), lhs.cmp(&rhs));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(value) = Decimal::parse_bytes(&bytes) {
                let text = value.format();
                prop_assert_eq!(text.as_bytes(), &bytes[..]);
            }
        }
    }
}
