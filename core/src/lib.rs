//! Types shared by `beast-feeds` and `beast-engine`: exact decimal prices ([`Decimal`]), asset
//! symbols ([`Symbol`]) and price sources ([`Source`]). Both crates need them, and `feeds` must
//! not depend on `engine`, so they live below both.

pub mod clock;
mod decimal;
mod source;
mod symbol;
mod throttle;

pub use decimal::{Decimal, DecimalError, DecimalText, MAX_SCALE, MAX_TEXT_LEN};
pub use source::{Channel, Source, Venue};
pub use symbol::{MAX_SYMBOL_LEN, Symbol, SymbolError};
pub use throttle::Throttle;
