//! The open-addressing table behind each shard of the enforcement view.
//!
//! Written here rather than taken from hashbrown because this lookup is the product's hot
//! path (every verdict, every gateway call) and its memory shape decides its cost. With 100 k
//! entities hashbrown's buckets (a 40-byte key beside 16 bytes of facts, packed) often
//! straddle two cache lines and its control bytes sit apart from them, so a cold lookup paid
//! two or three trips to memory. Here each position of the probe holds a byte of tag (an
//! occupied bit and seven bits of the hash) and the number of its bucket, in two arrays that
//! stay in L2 (100 k keys at load ≤ ½: 256 KB of tags, 1 MB of numbers); the buckets are
//! dense, one 64-byte-aligned line each, holding the key inline beside the facts a lookup
//! answers from. An absent key costs tag reads only, a present one a single line outside L2.
//!
//! Linear probing over the tags. A removal shifts the positions after it back into the hole,
//! so there are no tombstones and a probe always ends at the first empty tag; the last bucket
//! moves into the removed one's place. At least half of the positions stay empty, so every
//! probe ends.

use super::VerdictKind;
use antibody_core::TimestampMs;
use std::hash::{BuildHasher, Hash};

/// A key kept inline in its bucket, looked up by a borrowed form.
pub(super) trait Key: Clone {
    type Probe: Hash + ?Sized;
    fn probe(&self) -> &Self::Probe;
    fn is(&self, probe: &Self::Probe) -> bool;
}

/// What a lookup answers from without reading the key's slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Facts {
    /// Until then the slot's shared verdict holds as built.
    pub fresh_until: TimestampMs,
    pub slot: u32,
    pub kind: VerdictKind,
}

/// A key and its facts: one cache line.
#[derive(Clone)]
#[repr(C, align(64))]
struct Bucket<K> {
    facts: Facts,
    key: K,
}

/// No key is at this position: the tag of an empty one.
const EMPTY: u8 = 0;
/// The fewest positions a table with keys has.
const MIN_POSITIONS: usize = 8;

/// The tag of a hash: the occupied bit and its top seven bits.
fn tag_of(h: u64) -> u8 {
    0x80 | (h >> 57) as u8
}

/// Where a hash's probe starts. The low bits pick the shard (see `Shards`), so they are
/// skipped; the top seven are the tag's.
fn home_of(h: u64, mask: usize) -> usize {
    (h >> 6) as usize & mask
}

/// Keys to facts: one probe sequence over a power-of-two number of positions, and the
/// buckets they point to.
#[derive(Clone)]
pub(super) struct Table<K> {
    tags: Box<[u8]>,
    /// The bucket of each taken position.
    places: Box<[u32]>,
    buckets: Vec<Bucket<K>>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Self {
            tags: Box::new([]),
            places: Box::new([]),
            buckets: Vec::new(),
        }
    }
}

impl<K: Key> Table<K> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Positions (a power of two, or 0 while empty).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// The position whose bucket satisfies `is`, on the probe of hash `h`.
    fn find(&self, h: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        let mask = self.tags.len().checked_sub(1)?;
        let tag = tag_of(h);
        let mut i = home_of(h, mask);
        // At most every position once; the load bound ends it far sooner, at an empty tag.
        for _ in 0..self.tags.len() {
            match self.tags[i] {
                EMPTY => return None,
                t if t == tag && is(self.places[i] as usize) => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }

    /// The position holding `probe` (whose hash is `h`).
    fn position(&self, h: u64, probe: &K::Probe) -> Option<usize> {
        self.find(h, |b| self.buckets[b].key.is(probe))
    }

    pub fn get(&self, h: u64, probe: &K::Probe) -> Option<&Facts> {
        let i = self.position(h, probe)?;
        Some(&self.buckets[self.places[i] as usize].facts)
    }

    /// Puts `key` (whose hash is `h`) with `facts`; returns the facts it replaced.
    pub fn insert(
        &mut self,
        h: u64,
        key: K,
        facts: Facts,
        hasher: &impl BuildHasher,
    ) -> Option<Facts> {
        if let Some(i) = self.position(h, key.probe()) {
            let b = self.places[i] as usize;
            return Some(std::mem::replace(&mut self.buckets[b].facts, facts));
        }
        if (self.buckets.len() + 1) * 2 > self.tags.len() {
            let grown = (self.tags.len() * 2).max(MIN_POSITIONS);
            self.resize(grown, hasher);
        }
        self.place(h, self.buckets.len());
        self.buckets.push(Bucket { facts, key });
        None
    }

    /// Points the first empty position of hash `h`'s probe at bucket `b`.
    fn place(&mut self, h: u64, b: usize) {
        let mask = self.tags.len() - 1;
        let mut i = home_of(h, mask);
        while self.tags[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.tags[i] = tag_of(h);
        // A shard holds a tenant's keys over SHARDS: far below u32::MAX.
        self.places[i] = u32::try_from(b).unwrap_or(u32::MAX);
    }

    /// Takes `probe` (whose hash is `h`) out; returns its facts.
    pub fn remove(&mut self, h: u64, probe: &K::Probe, hasher: &impl BuildHasher) -> Option<Facts> {
        let mut hole = self.position(h, probe)?;
        let removed = self.places[hole] as usize;
        let mask = self.tags.len() - 1;
        let mut j = (hole + 1) & mask;
        // Every position up to the next empty tag that may sit in the hole moves there: one
        // whose probe starts at or before the hole (cyclically).
        while self.tags[j] != EMPTY {
            let key = &self.buckets[self.places[j] as usize].key;
            let home = home_of(hasher.hash_one(key.probe()), mask);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.tags[hole] = self.tags[j];
                self.places[hole] = self.places[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.tags[hole] = EMPTY;
        let last = self.buckets.len() - 1;
        let facts = self.buckets.swap_remove(removed).facts;
        if removed != last {
            // The last bucket took the removed one's place: its position follows it.
            let moved = hasher.hash_one(self.buckets[removed].key.probe());
            if let Some(i) = self.find(moved, |b| b == last) {
                self.places[i] = u32::try_from(removed).unwrap_or(u32::MAX);
            }
        }
        if self.buckets.is_empty() {
            *self = Self::default();
        } else if self.buckets.len() * 8 <= self.tags.len() && self.tags.len() > MIN_POSITIONS {
            self.resize(self.tags.len() / 2, hasher);
        }
        Some(facts)
    }

    /// Points a fresh array of `positions` (a power of two, more than twice the keys) at
    /// the buckets.
    fn resize(&mut self, positions: usize, hasher: &impl BuildHasher) {
        self.tags = vec![EMPTY; positions].into();
        self.places = vec![0; positions].into();
        for b in 0..self.buckets.len() {
            self.place(hasher.hash_one(self.buckets[b].key.probe()), b);
        }
        if self.buckets.capacity() > 2 * positions {
            self.buckets.shrink_to(positions / 2);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Facts)> {
        self.buckets.iter().map(|b| (&b.key, &b.facts))
    }
}

/// A bucket's size in bytes (one cache line for the view's keys).
#[cfg(test)]
pub(super) fn bucket_bytes<K>() -> usize {
    std::mem::size_of::<Bucket<K>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hash::Hasher;

    /// A key whose hash is chosen by the test: `h` is the hash, `id` tells keys apart.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct K {
        h: u64,
        id: u32,
    }

    impl Hash for K {
        fn hash<H: Hasher>(&self, state: &mut H) {
            state.write_u64(self.h);
        }
    }

    impl Key for K {
        type Probe = K;
        fn probe(&self) -> &K {
            self
        }
        fn is(&self, probe: &K) -> bool {
            self == probe
        }
    }

    /// Hashes a `K` to its `h`.
    #[derive(Default)]
    struct Chosen(u64);

    impl Hasher for Chosen {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("K writes one u64")
        }
        fn write_u64(&mut self, h: u64) {
            self.0 = h;
        }
    }

    #[derive(Default)]
    struct ByChoice;

    impl BuildHasher for ByChoice {
        type Hasher = Chosen;
        fn build_hasher(&self) -> Chosen {
            Chosen::default()
        }
    }

    fn facts(slot: u32) -> Facts {
        Facts {
            fresh_until: i64::from(slot),
            slot,
            kind: VerdictKind::Throttle,
        }
    }

    /// `h` for position `pos` of the shard's probe, with tag bits `tag`.
    fn hash(pos: u64, tag: u64) -> u64 {
        (tag << 57) | (pos << 6)
    }

    fn put(t: &mut Table<K>, k: K) -> Option<Facts> {
        t.insert(k.h, k, facts(k.id), &ByChoice)
    }

    fn get(t: &Table<K>, k: K) -> Option<u32> {
        t.get(k.h, &k).map(|f| f.slot)
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(bucket_bytes::<K>(), 64);
        assert_eq!(std::mem::align_of::<Bucket<K>>(), 64);
    }

    #[test]
    fn equal_hashes_and_tags_are_told_apart_by_the_key() {
        let mut t = Table::default();
        // Every key the same hash: one probe chain, every tag equal.
        let keys: Vec<K> = (0..40).map(|id| K { h: hash(3, 5), id }).collect();
        for k in &keys {
            assert_eq!(put(&mut t, *k), None);
        }
        assert_eq!(t.len(), 40);
        assert!(t.capacity() >= 80, "load stays at most one half");
        for k in &keys {
            assert_eq!(get(&t, *k), Some(k.id));
        }
        assert_eq!(
            get(
                &t,
                K {
                    h: hash(3, 5),
                    id: 99
                }
            ),
            None
        );
        // Replacing keeps one entry and gives the old facts back.
        let old = t.insert(keys[7].h, keys[7], facts(700), &ByChoice);
        assert_eq!(old.map(|f| f.slot), Some(7));
        assert_eq!((get(&t, keys[7]), t.len()), (Some(700), 40));
    }

    #[test]
    fn a_chain_wraps_around_the_end_and_removal_closes_holes() {
        let mut t = Table::default();
        // Grow to 64 positions, then crowd the last ones so chains wrap to the front.
        let fill: Vec<K> = (0..20)
            .map(|id| K {
                h: hash(u64::from(id) * 3, 1),
                id,
            })
            .collect();
        fill.iter().for_each(|k| {
            put(&mut t, *k);
        });
        assert_eq!(t.capacity(), 64);
        let tail: Vec<K> = (100..110).map(|id| K { h: hash(62, 2), id }).collect();
        tail.iter().for_each(|k| {
            put(&mut t, *k);
        });
        let all: Vec<K> = fill.iter().chain(&tail).copied().collect();
        for k in &all {
            assert_eq!(get(&t, *k), Some(k.id), "{k:?}");
        }
        // Remove from the middle of chains, one at a time: the rest stay reachable.
        for (n, k) in all.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
            assert_eq!(t.remove(k.h, k, &ByChoice).map(|f| f.slot), Some(k.id));
            assert_eq!(t.remove(k.h, k, &ByChoice), None, "removed once");
            for (m, other) in all.iter().enumerate() {
                let want = (m > n || m % 3 != 0).then_some(other.id);
                assert_eq!(get(&t, *other), want, "{other:?} after removing {k:?}");
            }
        }
    }

    #[test]
    fn removal_frees_positions_for_reuse_and_shrinks_the_table() {
        let mut t = Table::default();
        let keys: Vec<K> = (0..1_000)
            .map(|id| K {
                h: u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                id,
            })
            .collect();
        keys.iter().for_each(|k| {
            put(&mut t, *k);
        });
        let big = t.capacity();
        assert_eq!((t.len(), big), (1_000, 2_048));
        for k in &keys[..990] {
            t.remove(k.h, k, &ByChoice);
        }
        assert!(
            t.capacity() < big / 8,
            "{} positions for 10 keys",
            t.capacity()
        );
        for k in &keys[990..] {
            assert_eq!(get(&t, *k), Some(k.id));
        }
        // Reuse: the same keys back, found again.
        keys[..990].iter().for_each(|k| {
            put(&mut t, *k);
        });
        assert!(keys.iter().all(|k| get(&t, *k) == Some(k.id)));
        for k in &keys {
            t.remove(k.h, k, &ByChoice);
        }
        assert_eq!((t.len(), t.capacity(), t.iter().count()), (0, 0, 0));
        assert_eq!(get(&t, keys[0]), None, "an empty table answers");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u32, u32),
        Remove(u32),
    }

    /// Few distinct hashes and tags, so chains collide, wrap and cross each other.
    fn key(id: u32) -> K {
        let pos = u64::from(id % 13);
        K {
            h: hash(pos, u64::from(id % 3)) | (u64::from(id % 2) << 40),
            id,
        }
    }

    proptest! {
        #[test]
        fn behaves_as_a_hash_map(ops in prop::collection::vec(
            prop_oneof![
                (0u32..60, 0u32..1_000).prop_map(|(k, v)| Op::Put(k, v)),
                (0u32..60).prop_map(Op::Remove),
            ],
            0..300,
        )) {
            let mut t = Table::default();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put(id, v) => {
                        let k = key(id);
                        let old = t.insert(k.h, k, facts(v), &ByChoice).map(|f| f.slot);
                        prop_assert_eq!(old, model.insert(id, v));
                    }
                    Op::Remove(id) => {
                        let k = key(id);
                        let old = t.remove(k.h, &k, &ByChoice).map(|f| f.slot);
                        prop_assert_eq!(old, model.remove(&id));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert!(t.len() * 2 <= t.capacity());
                for id in 0..60 {
                    let k = key(id);
                    prop_assert_eq!(get(&t, k), model.get(&id).copied());
                }
            }
            let mut listed: Vec<(u32, u32)> = t.iter().map(|(k, f)| (k.id, f.slot)).collect();
            listed.sort_unstable();
            let mut want: Vec<(u32, u32)> = model.into_iter().collect();
            want.sort_unstable();
            prop_assert_eq!(listed, want);
        }
    }
}
