//! Fixed-capacity storage for connections, addressed by (index, generation) so a completion
//! that arrives after its connection was closed and the slot reused is recognised as stale.

/// A slot's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub index: u32,
    pub generation: u32,
}

struct Slot<T> {
    generation: u32,
    live: bool,
    value: T,
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
}

impl<T> Slab<T> {
    /// Room for `capacity` entries, reserved now so the slot table never reallocates.
    pub fn with_capacity(capacity: usize) -> Slab<T> {
        Slab {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            capacity,
            live: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.live >= self.capacity
    }

    /// Takes a free slot, reusing a retired value (and its buffers) when there is one; `make`
    /// builds a value only for a slot never used before.
    pub(crate) fn insert_with(&mut self, make: impl FnOnce() -> T) -> Option<(Key, &mut T)> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot {
                    generation: 0,
                    live: false,
                    value: make(),
                });
                u32::try_from(self.slots.len() - 1).ok()?
            }
            None => return None,
        };
        let slot = self.slots.get_mut(index as usize)?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.live = true;
        self.live += 1;
        Some((
            Key {
                index,
                generation: slot.generation,
            },
            &mut slot.value,
        ))
    }

    /// The live value at `key`; `None` if the key is stale.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots
            .get(key.index as usize)
            .filter(|slot| slot.live && slot.generation == key.generation)
            .map(|slot| &slot.value)
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.live && s.generation == key.generation)
            .map(|s| &mut s.value)
    }

    /// Retires the slot; its value stays for reuse.
    pub fn remove(&mut self, key: Key) -> bool {
        match self.slots.get_mut(key.index as usize) {
            Some(slot) if slot.live && slot.generation == key.generation => {
                slot.live = false;
                self.free.push(key.index);
                self.live -= 1;
                true
            }
            _ => false,
        }
    }

    /// Slots ever used: live keys are found among `0..slot_count()` with [`Slab::key_at`].
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The key of slot `index` if it is live. Lets a caller walk the slab while mutating it,
    /// without collecting keys (which would allocate).
    pub(crate) fn key_at(&self, index: usize) -> Option<Key> {
        let slot = self.slots.get(index).filter(|s| s.live)?;
        Some(Key {
            index: u32::try_from(index).ok()?,
            generation: slot.generation,
        })
    }
}
