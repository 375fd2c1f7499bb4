//! The asset registry: symbol → dense asset id, looked up from request bytes without a lock or
//! an allocation, case-insensitively.
//!
//! Fixed capacity, chosen at start-up. Assets are only ever added (by the price table's single
//! writer), never removed, so the open-addressing index needs no tombstones and a probe ends at
//! the first empty slot. Each entry's symbol is stored before the index slot that points at it
//! is published with release ordering; a reader that acquires the slot sees the whole symbol.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use beast_core::Symbol;

/// Dense index of an asset: 0, 1, 2… in the order assets were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(u32);

impl AssetId {
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id as stored in a usage event.
    pub fn raw(self) -> u32 {
        self.0
    }

    pub(crate) fn from_raw(raw: u32) -> AssetId {
        AssetId(raw)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("asset registry is full ({capacity} assets)")]
    Full { capacity: usize },
}

pub struct AssetRegistry {
    symbols: Box<[[AtomicU64; 2]]>,
    /// Open-addressing index, at least twice the capacity: 0 = empty, otherwise id + 1.
    index: Box<[AtomicU32]>,
    len: AtomicU32,
    /// Inserts refused because the registry was full (each a price that was not kept).
    refused: AtomicU64,
}

impl AssetRegistry {
    /// Largest capacity accepted; ids and index slots are `u32`.
    pub(crate) const MAX_CAPACITY: usize = 1 << 20;

    pub fn new(capacity: usize) -> AssetRegistry {
        let capacity = capacity.clamp(1, Self::MAX_CAPACITY);
        let index_len = (capacity * 2).next_power_of_two();
        AssetRegistry {
            symbols: (0..capacity)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            index: (0..index_len).map(|_| AtomicU32::new(0)).collect(),
            len: AtomicU32::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Inserts refused because the registry was full.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.symbols.len()
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the asset named by `text` (request bytes, any case). No lock, no allocation.
    #[inline]
    pub fn lookup(&self, text: &[u8]) -> Option<AssetId> {
        let symbol = Symbol::parse(text).ok()?;
        self.find(&symbol)
    }

    /// Finds an already parsed symbol.
    #[inline]
    pub fn find(&self, symbol: &Symbol) -> Option<AssetId> {
        let words = symbol.to_words();
        let mask = self.index.len() - 1;
        let mut slot = home_slot(words, mask);
        for _ in 0..self.index.len() {
            let stored = self.index.get(slot)?.load(Ordering::Acquire);
            let id = stored.checked_sub(1)?;
            if self.words_of(id) == Some(words) {
                return Some(AssetId(id));
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// The symbol of an asset id handed out by this registry.
    pub fn symbol(&self, id: AssetId) -> Option<Symbol> {
        if id.index() >= self.len() {
            return None;
        }
        self.words_of(id.0).and_then(Symbol::from_words)
    }

    /// Every asset added so far, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (AssetId, Symbol)> + '_ {
        let len = u32::try_from(self.len()).unwrap_or(u32::MAX);
        (0..len).filter_map(|id| Some((AssetId(id), self.symbol(AssetId(id))?)))
    }

    /// Adds `symbol`, or returns its id if present. Only the price table's single writer calls
    /// this (through `&mut TableWriter`), so inserts never race each other.
    pub(crate) fn insert(&self, symbol: &Symbol) -> Result<AssetId, RegistryError> {
        if let Some(id) = self.find(symbol) {
            return Ok(id);
        }
        let len = self.len.load(Ordering::Relaxed);
        let words = symbol.to_words();
        let Some(entry) = self.symbols.get(len as usize) else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RegistryError::Full {
                capacity: self.capacity(),
            });
        };
        entry[0].store(words[0], Ordering::Relaxed);
        entry[1].store(words[1], Ordering::Relaxed);
        let mask = self.index.len() - 1;
        let mut slot = home_slot(words, mask);
        // The index is at least twice the capacity, so an empty slot exists.
        while let Some(cell) = self.index.get(slot) {
            if cell.load(Ordering::Relaxed) == 0 {
                cell.store(len + 1, Ordering::Release);
                break;
            }
            slot = (slot + 1) & mask;
        }
        self.len.store(len + 1, Ordering::Release);
        Ok(AssetId(len))
    }

    fn words_of(&self, id: u32) -> Option<[u64; 2]> {
        let entry = self.symbols.get(id as usize)?;
        Some([
            entry[0].load(Ordering::Relaxed),
            entry[1].load(Ordering::Relaxed),
        ])
    }
}

/// Multiplicative (Fibonacci) hash of the two symbol words, taking the high bits.
#[inline]
fn home_slot(words: [u64; 2], mask: usize) -> usize {
    let mixed = (words[0] ^ words[1].rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bits = mask.count_ones();
    if bits == 0 {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "keeps at most `bits` < usize::BITS bits"
    )]
    let slot = (mixed >> (64 - bits)) as usize;
    slot & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(text: &str) -> Symbol {
        Symbol::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn looks_up_case_insensitively() {
        let registry = AssetRegistry::new(8);
        let btc = registry.insert(&sym("BTC")).unwrap();
        let eth = registry.insert(&sym("eth")).unwrap();
        let cases: &[(&[u8], Option<AssetId>)] = &[
            (b"BTC", Some(btc)),
            (b"btc", Some(btc)),
            (b"bTc", Some(btc)),
            (b"ETH", Some(eth)),
            (b"SOL", None),
            (b"", None),
            (b"BTC ", None),
            (b"WAYTOOLONGSYMBOLNAME", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                registry.lookup(text),
                *expected,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(registry.symbol(eth), Some(sym("ETH")));
    }

    #[test]
    fn insert_is_idempotent_and_bounded() {
        let registry = AssetRegistry::new(3);
        let a = registry.insert(&sym("A")).unwrap();
        assert_eq!(registry.insert(&sym("a")), Ok(a));
        registry.insert(&sym("B")).unwrap();
        registry.insert(&sym("C")).unwrap();
        assert_eq!(
            registry.insert(&sym("D")),
            Err(RegistryError::Full { capacity: 3 })
        );
        assert_eq!(
            registry.insert(&sym("C")).map(AssetId::index),
            Ok(2),
            "existing assets still resolve when full"
        );
        let names: Vec<String> = registry.iter().map(|(_, s)| s.to_string()).collect();
        assert_eq!(names, ["A", "B", "C"]);
    }

    #[test]
    fn a_full_registry_finds_every_asset_despite_collisions() {
        let registry = AssetRegistry::new(4096);
        let symbols: Vec<Symbol> = (0..4096).map(|i| sym(&format!("A{i}"))).collect();
        for s in &symbols {
            registry.insert(s).unwrap();
        }
        for (i, s) in symbols.iter().enumerate() {
            assert_eq!(registry.find(s).map(AssetId::index), Some(i));
        }
        assert_eq!(registry.lookup(b"A4096"), None);
    }
}
