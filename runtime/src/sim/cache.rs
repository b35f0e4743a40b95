//! Caches of ADC code tables, bounded in bytes: the tile's shared cache of complete tables and
//! each worker's cache of lazily built large ones.
//!
//! A table is a pure function of its key (converter, sum range), so evicting one never changes
//! a result, only the time to build it again. Adaptive ADC ranges make gains continuous, so a
//! long run meets new keys at every step: without a bound the cache would grow with the
//! number of steps.

use super::adc::CodeTable;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a cache can measure.
pub(crate) trait Measured {
    /// Heap bytes held.
    fn bytes(&self) -> usize;
}

impl Measured for CodeTable {
    fn bytes(&self) -> usize {
        CodeTable::bytes(self)
    }
}

impl Measured for Arc<CodeTable> {
    fn bytes(&self) -> usize {
        CodeTable::bytes(self)
    }
}

/// What identifies a code table.
pub(crate) type TableKey = [u64; 4];

/// Bytes of tables one worker may keep. A dense layer's table of 1,153 sums is about 40 KiB
/// once built, so this holds a few hundred: every table of a step of the paper's networks.
pub(crate) const TABLE_BUDGET_BYTES: usize = 16 << 20;

#[derive(Debug)]
struct Entry<T> {
    table: T,
    /// The cache clock when the entry was last used (its key in `order`).
    used: u64,
    /// Its bytes (a table's size is fixed when it is made).
    bytes: usize,
}

/// Code tables by key, least recently used evicted first when over the byte budget.
#[derive(Debug)]
pub(crate) struct TableCache<T> {
    /// Keyed by exact bit patterns: a fast non-cryptographic hash is enough.
    map: FxHashMap<TableKey, Entry<T>>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, TableKey>,
    /// Bytes of all entries.
    total: usize,
    clock: u64,
    budget: usize,
}

impl<T: Measured> Default for TableCache<T> {
    fn default() -> Self {
        TableCache::with_budget(TABLE_BUDGET_BYTES)
    }
}

impl<T: Measured> TableCache<T> {
    pub fn with_budget(budget: usize) -> TableCache<T> {
        TableCache { map: FxHashMap::default(), order: BTreeMap::new(), total: 0, clock: 0, budget }
    }

    /// The table of `key`, built by `make` when absent. Before a new table is added, tables
    /// are evicted (least recently used first) until the cache fits its budget; the table in
    /// use is never evicted, so one table larger than the budget still works.
    pub fn get(&mut self, key: TableKey, make: impl FnOnce() -> T) -> &mut T {
        self.clock += 1;
        let clock = self.clock;
        if let Some(e) = self.map.get(&key) {
            self.order.remove(&e.used);
        } else {
            while self.total > self.budget {
                let Some((_, old)) = self.order.pop_first() else { break };
                self.total -= self.map.remove(&old).map_or(0, |e| e.bytes);
            }
            let table = make();
            let bytes = table.bytes();
            self.total += bytes;
            self.map.insert(key, Entry { table, used: clock, bytes });
        }
        self.order.insert(clock, key);
        let e = self.map.get_mut(&key).expect("present or just inserted");
        e.used = clock;
        &mut e.table
    }

    /// Bytes the cached tables hold now.
    pub fn bytes(&self) -> usize {
        self.total
    }
}
