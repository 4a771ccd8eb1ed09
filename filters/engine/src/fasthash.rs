//! Cheap hashing for the per-request lookups: the in-flight id table and the method label index.
//!
//! `std`'s SipHash showed up at 1.5-2% of Envoy's CPU in the profiles (docs/benchmarks.md).
//! SipHash is there to resist collision attacks on keys an attacker chooses; here:
//! - [`IdTable`] keys are request ids the client chooses, so the table bounds every probe
//!   sequence ([`MAX_PROBE`]) and sends an id that does not fit to a small `std` (SipHash)
//!   overflow map: a client that crafts colliding ids only gets the old cost for its own
//!   connection, never a longer scan;
//! - [`FxBuild`] hashes the method index, whose keys come from the configuration (the table is
//!   fixed, so a client's key only walks one existing probe sequence).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci multiplier (2^64 / golden ratio), odd.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// A multiply-rotate hasher (the FxHash shape): one multiply per word. Not collision resistant;
/// only for keys from the configuration.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `BuildHasher` for [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// Longest probe sequence of [`IdTable`]; an id that finds no free slot within it goes to the
/// overflow map.
pub(crate) const MAX_PROBE: usize = 8;

/// Slots the table starts with once the first id arrives.
const MIN_SLOTS: usize = 16;

/// A map from request id to `V`, open addressing with linear probing and backward-shift
/// deletion (no tombstones), kept at most half full. Holds at most `cap` entries in all (the
/// caller's bound); the slot array never exceeds `2 * cap` rounded up to a power of two.
#[derive(Debug, Clone)]
pub(crate) struct IdTable<V> {
    slots: Vec<Option<(i64, V)>>,
    /// log2 of `slots.len()` (0 while empty).
    bits: u32,
    /// Entries in `slots`.
    len: usize,
    /// Ids whose probe sequence was full (crafted collisions): `std`'s keyed SipHash.
    overflow: HashMap<i64, V>,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        IdTable {
            slots: Vec::new(),
            bits: 0,
            len: 0,
            overflow: HashMap::new(),
        }
    }
}

impl<V: Copy> IdTable<V> {
    /// Entries held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len + self.overflow.len()
    }

    #[inline]
    fn home(&self, id: i64) -> usize {
        // Fibonacci hashing: the high bits of the product; sequential ids spread evenly.
        ((id as u64).wrapping_mul(K) >> (64 - self.bits)) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `id`, if it is in the slot array.
    #[inline]
    fn find(&self, id: i64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(id);
        for _ in 0..MAX_PROBE {
            match &self.slots[i] {
                None => return None,
                Some((k, _)) if *k == id => return Some(i),
                Some(_) => i = (i + 1) & self.mask(),
            }
        }
        None
    }

    /// The value stored for `id`.
    #[inline]
    pub(crate) fn get(&self, id: i64) -> Option<&V> {
        match self.find(id) {
            Some(i) => self.slots[i].as_ref().map(|(_, v)| v),
            None if self.overflow.is_empty() => None,
            None => self.overflow.get(&id),
        }
    }

    /// Stores `v` for `id`; true when `id` was new (a known id's value is replaced). A new id is
    /// refused (false, nothing stored) when `cap` entries are held already.
    pub(crate) fn insert(&mut self, id: i64, v: V, cap: usize) -> bool {
        if let Some(i) = self.find(id) {
            self.slots[i] = Some((id, v));
            return false;
        }
        if let Some(old) = self.overflow.get_mut(&id) {
            *old = v;
            return false;
        }
        if self.len() >= cap {
            return false;
        }
        if (self.len + 1) * 2 > self.slots.len() && self.slots.len() < 2 * cap {
            self.grow();
        }
        if !self.place(id, v) {
            self.overflow.insert(id, v);
        }
        true
    }

    /// Puts a new id in the first free slot of its probe sequence; false when there is none.
    fn place(&mut self, id: i64, v: V) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mut i = self.home(id);
        for _ in 0..MAX_PROBE {
            if self.slots[i].is_none() {
                self.slots[i] = Some((id, v));
                self.len += 1;
                return true;
            }
            i = (i + 1) & self.mask();
        }
        false
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![None; n]);
        self.bits = n.trailing_zeros();
        self.len = 0;
        for (id, v) in old.into_iter().flatten() {
            if !self.place(id, v) {
                self.overflow.insert(id, v);
            }
        }
    }

    /// Removes `id`, returning its value.
    pub(crate) fn remove(&mut self, id: i64) -> Option<V> {
        let Some(mut hole) = self.find(id) else {
            return if self.overflow.is_empty() {
                None
            } else {
                self.overflow.remove(&id)
            };
        };
        let v = self.slots[hole].take().map(|(_, v)| v);
        self.len -= 1;
        // Backward shift: pull later entries of the run into the hole when that moves them
        // closer to their home, so lookups can stop at the first empty slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some((k, _)) = self.slots[j] else { break };
            let home = self.home(k);
            // `k` may move to `hole` if `hole` lies cyclically in [home, j).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        v
    }

    /// Every value held, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots
            .iter()
            .flatten()
            .map(|(_, v)| v)
            .chain(self.overflow.values())
    }

    /// Removes every entry (keeps the allocation).
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.len = 0;
        self.overflow.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against `std`'s map under a deterministic mix of inserts and removes, with
    /// sequential, strided and colliding ids.
    #[test]
    fn agrees_with_std_map() {
        for (stride, cap) in [(1i64, 4096usize), (1 << 40, 64), (1 << 58, 300), (7, 17)] {
            let mut t = IdTable::<u32>::default();
            let mut m = HashMap::new();
            let mut x = 0x1234_5678_u64;
            for step in 0..20_000u32 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = (((x >> 33) % 600) as i64).wrapping_mul(stride);
                if x & 3 == 0 {
                    assert_eq!(t.remove(id), m.remove(&id), "remove {id}");
                } else {
                    let new = !m.contains_key(&id) && m.len() < cap;
                    if new || m.contains_key(&id) {
                        m.insert(id, step);
                    }
                    assert_eq!(t.insert(id, step, cap), new, "insert {id}");
                }
                assert_eq!(t.len(), m.len());
                if step % 97 == 0 {
                    for (k, v) in &m {
                        assert_eq!(t.get(*k), Some(v));
                    }
                }
            }
            let mut vals: Vec<u32> = t.values().copied().collect();
            let mut want: Vec<u32> = m.values().copied().collect();
            vals.sort_unstable();
            want.sort_unstable();
            assert_eq!(vals, want);
            t.clear();
            assert!(t.len() == 0 && t.get(0).is_none());
        }
    }

    /// Ids crafted to share one home slot: probes stay bounded, the rest overflow, and every id
    /// is still found and removed.
    #[test]
    fn colliding_ids_overflow_and_stay_exact() {
        // ids whose product with K is 0..1000: all share the top bits, so one home slot.
        let mut inv = K;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(K.wrapping_mul(inv)));
        }
        assert_eq!(K.wrapping_mul(inv), 1);
        let mut t = IdTable::<i64>::default();
        let ids: Vec<i64> = (0..1000u64).map(|i| i.wrapping_mul(inv) as i64).collect();
        for &id in &ids {
            assert!(t.insert(id, id, 4096));
        }
        assert_eq!(t.len(), 1000);
        assert!(t.len <= MAX_PROBE, "only a probe sequence's worth in slots");
        assert_eq!(t.values().count(), 1000);
        for &id in &ids {
            assert_eq!(t.get(id), Some(&id));
        }
        for &id in ids.iter().rev() {
            assert_eq!(t.remove(id), Some(id));
        }
        assert_eq!(t.len(), 0);
        assert!(t.slots.len() <= 2048);
    }

    #[test]
    fn cap_bounds_entries() {
        let mut t = IdTable::<u8>::default();
        for id in 0..10 {
            assert_eq!(t.insert(id, 0, 4), id < 4);
        }
        assert!(!t.insert(2, 9, 4), "replacing a known id is not new");
        assert_eq!((t.len(), t.get(2)), (4, Some(&9)));
    }
}
