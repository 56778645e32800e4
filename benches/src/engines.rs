//! The engines under test behind one trait: Strata, and RocksDB configured the way Flink's
//! RocksDB state backend configures it.

use std::path::{Path, PathBuf};

/// The state tables every workload uses (one column family each in RocksDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTable {
    /// Value state.
    Value,
    /// List state (merge = append with a `,` delimiter, as Flink's string-append operator).
    List,
    /// Map state (one entry per user key).
    Map,
}

/// An engine under test. Errors abort the benchmark (they are bugs, not results).
pub trait Engine: Send + Sync {
    /// Display name.
    fn name(&self) -> &'static str;
    /// Sets a value.
    fn put(&self, t: StateTable, k: &[u8], v: &[u8]);
    /// Reads a value.
    fn get(&self, t: StateTable, k: &[u8]) -> Option<Vec<u8>>;
    /// Appends to a list.
    fn merge(&self, t: StateTable, k: &[u8], v: &[u8]);
    /// Deletes a key.
    fn delete(&self, t: StateTable, k: &[u8]);
    /// Visits every entry whose key starts with `prefix`; returns how many.
    fn scan_prefix(&self, t: StateTable, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8])) -> usize;
    /// Makes everything written durable in table files and waits for it, as a stream
    /// processor's checkpoint does (Strata's `flush`; RocksDB's memtable flush of every
    /// column family).
    fn flush(&self);
    /// The directory the engine keeps its files in.
    fn dir(&self) -> &Path;
    /// The engine's own statistics, for a human (printed after each phase when
    /// `STRATA_BENCH_STATS` is set); `None` where the engine has none worth printing.
    fn describe(&self) -> Option<String> {
        None
    }
}

/// Opens the engine called `name` in `dir` with `budget` bytes of memory.
pub fn open(name: &str, dir: &Path, budget: u64) -> Result<Box<dyn Engine>, String> {
    match name {
        "strata" => Ok(Box::new(StrataEngine::open(dir, budget)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(rocks::RocksEngine::open(dir, budget, false)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb-partitioned" => Ok(Box::new(rocks::RocksEngine::open(dir, budget, true)?)),
        #[cfg(not(feature = "rocksdb"))]
        "rocksdb" | "rocksdb-partitioned" => {
            Err("built without the `rocksdb` feature: run benches/rocksdb-setup.sh".into())
        }
        other => Err(format!("unknown engine {other:?}")),
    }
}

/// Strata with the whole budget as its one memory budget, WAL off (as Flink runs RocksDB).
pub struct StrataEngine {
    db: strata::Db,
    tables: [strata::Table; 3],
    dir: PathBuf,
}

impl StrataEngine {
    fn open(dir: &Path, budget: u64) -> Result<Self, String> {
        let settings = strata::Settings {
            memory_budget_bytes: budget,
            flush_on_close: false,
            // `STRATA_BENCH_NO_TUNE=1` turns the allocator trims off, for A/B runs.
            tune_allocator: std::env::var_os("STRATA_BENCH_NO_TUNE").is_none(),
            ..strata::Settings::default()
        };
        let db = strata::Db::open(dir, settings).map_err(|e| e.to_string())?;
        let mk = |name: &str, merge, prefix_len| {
            let options = strata::TableOptions {
                prefix_len,
                ..strata::TableOptions::with_merge(merge)
            };
            db.create_table(name, options).map_err(|e| e.to_string())
        };
        // Map state: entries of one (key group, key, namespace) share a 10-byte prefix, as a
        // Flink state backend knows from its fixed-length key and namespace serializers.
        let tables = [
            mk("value", strata::MergeKind::None, 0)?,
            mk("list", strata::MergeKind::AppendDelimited(b','), 0)?,
            mk("map", strata::MergeKind::None, 10)?,
        ];
        Ok(StrataEngine {
            db,
            tables,
            dir: dir.to_path_buf(),
        })
    }

    fn t(&self, t: StateTable) -> &strata::Table {
        &self.tables[t as usize]
    }

    /// The engine's statistics.
    pub fn stats(&self) -> strata::Stats {
        self.db.stats()
    }
}

impl Engine for StrataEngine {
    fn name(&self) -> &'static str {
        "strata"
    }
    fn put(&self, t: StateTable, k: &[u8], v: &[u8]) {
        self.db.put(self.t(t), k, v).expect("strata put");
    }
    fn get(&self, t: StateTable, k: &[u8]) -> Option<Vec<u8>> {
        self.db.get(self.t(t), k).expect("strata get")
    }
    fn merge(&self, t: StateTable, k: &[u8], v: &[u8]) {
        self.db.merge(self.t(t), k, v).expect("strata merge");
    }
    fn delete(&self, t: StateTable, k: &[u8]) {
        self.db.delete(self.t(t), k).expect("strata delete");
    }
    fn flush(&self) {
        self.db.flush().expect("strata flush");
    }
    fn scan_prefix(&self, t: StateTable, prefix: &[u8], f: &mut dyn FnMut(&[u8], &[u8])) -> usize {
        // The borrowed interface, as the RocksDB side reads its raw iterator.
        let mut it = self.db.prefix(self.t(t), prefix).expect("strata prefix");
        let mut n = 0;
        while it.advance().expect("strata scan") {
            f(it.key(), it.value());
            n += 1;
        }
        n
    }
    fn describe(&self) -> Option<String> {
        Some(format!("{}{}", self.db.stats(), crate::alloc::describe()))
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(feature = "rocksdb")]
pub use rocks::RocksEngine;

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::*;
    use rocksdb::{
        BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, MergeOperands,
        Options, WriteBufferManager, WriteOptions, DB,
    };

    /// RocksDB as Flink's RocksDB state backend sets it up with managed memory: one LRU
    /// block cache and a write buffer manager charged to it share the budget
    /// (`RocksDBMemoryControllerUtils`: cache = (3 - r)/3 × budget, write buffers = 2r/3 ×
    /// budget with write-buffer ratio r = 0.5), index and filter blocks cached and the
    /// level-0 ones pinned, full bloom filters at 10 bits/key, the string-append merge
    /// operator with `,` for list state, one column family per state, WAL off.
    ///
    /// `partitioned` is Flink's `state.backend.rocksdb.memory.partitioned-index-filters`:
    /// two-level index and partitioned filters with 4 KiB partitions, the top level pinned,
    /// so that a cache smaller than all index and filter blocks caches the partitions that
    /// are used instead of thrashing whole multi-megabyte filter blocks.
    pub struct RocksEngine {
        db: DB,
        wo: WriteOptions,
        dir: PathBuf,
        partitioned: bool,
        // Keep the shared memory objects alive as long as the DB.
        _cache: Cache,
        _wbm: WriteBufferManager,
    }

    fn string_append(_key: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
        let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
        for op in ops {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(op);
        }
        Some(out)
    }

    const CFS: [&str; 3] = ["value", "list", "map"];

    impl RocksEngine {
        /// Opens (or creates) the database in `dir` with Flink's managed-memory setup.
        pub fn open(dir: &Path, budget: u64, partitioned: bool) -> Result<Self, String> {
            let ratio = 0.5;
            let cache_bytes = ((3.0 - ratio) * budget as f64 / 3.0) as usize;
            let wbm_bytes = (2.0 * budget as f64 * ratio / 3.0) as usize;
            let cache = Cache::new_lru_cache(cache_bytes);
            let wbm = WriteBufferManager::new_write_buffer_manager_with_cache(
                wbm_bytes,
                false,
                cache.clone(),
            );
            let cf_opts = || {
                let mut t = BlockBasedOptions::default();
                t.set_block_cache(&cache);
                t.set_bloom_filter(10.0, false);
                t.set_cache_index_and_filter_blocks(true);
                t.set_pin_l0_filter_and_index_blocks_in_cache(true);
                t.set_format_version(5);
                if partitioned {
                    t.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
                    t.set_partition_filters(true);
                    t.set_metadata_block_size(4096);
                    t.set_pin_top_level_index_and_filter(true);
                }
                let mut o = Options::default();
                o.set_block_based_table_factory(&t);
                o.set_compression_type(DBCompressionType::Lz4);
                o.set_merge_operator_associative("stringappendtest", string_append);
                o
            };
            let mut db_opts = cf_opts();
            db_opts.create_if_missing(true);
            db_opts.create_missing_column_families(true);
            db_opts.set_write_buffer_manager(&wbm);
            db_opts.set_max_background_jobs(2);
            let cfs: Vec<ColumnFamilyDescriptor> = CFS
                .iter()
                .map(|n| ColumnFamilyDescriptor::new(*n, cf_opts()))
                .collect();
            let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|e| e.to_string())?;
            let mut wo = WriteOptions::default();
            wo.disable_wal(true);
            Ok(RocksEngine {
                db,
                wo,
                dir: dir.to_path_buf(),
                partitioned,
                _cache: cache,
                _wbm: wbm,
            })
        }

        /// The RocksDB handle (checkpoints, range deletes).
        pub fn raw(&self) -> &DB {
            &self.db
        }

        fn cf(&self, t: StateTable) -> &rocksdb::ColumnFamily {
            self.db.cf_handle(CFS[t as usize]).expect("column family")
        }
    }

    impl Engine for RocksEngine {
        fn name(&self) -> &'static str {
            if self.partitioned {
                "rocksdb-partitioned"
            } else {
                "rocksdb"
            }
        }
        fn put(&self, t: StateTable, k: &[u8], v: &[u8]) {
            self.db
                .put_cf_opt(self.cf(t), k, v, &self.wo)
                .expect("rocksdb put");
        }
        fn get(&self, t: StateTable, k: &[u8]) -> Option<Vec<u8>> {
            self.db.get_cf(self.cf(t), k).expect("rocksdb get")
        }
        fn merge(&self, t: StateTable, k: &[u8], v: &[u8]) {
            self.db
                .merge_cf_opt(self.cf(t), k, v, &self.wo)
                .expect("rocksdb merge");
        }
        fn delete(&self, t: StateTable, k: &[u8]) {
            self.db
                .delete_cf_opt(self.cf(t), k, &self.wo)
                .expect("rocksdb delete");
        }
        fn flush(&self) {
            for n in CFS {
                let cf = self.db.cf_handle(n).expect("column family");
                self.db.flush_cf(cf).expect("rocksdb flush");
            }
        }
        fn scan_prefix(
            &self,
            t: StateTable,
            prefix: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]),
        ) -> usize {
            let mut it = self.db.raw_iterator_cf(self.cf(t));
            it.seek(prefix);
            let mut n = 0;
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                if !k.starts_with(prefix) {
                    break;
                }
                f(k, v);
                n += 1;
                it.next();
            }
            n
        }
        fn describe(&self) -> Option<String> {
            // Per column family with data: the files per level and the cumulative
            // compaction line of RocksDB's own statistics, for comparing write work.
            let mut out = String::new();
            for n in CFS {
                let cf = self.db.cf_handle(n).expect("column family");
                let prop = |p: &str| self.db.property_value_cf(cf, p).ok().flatten();
                let Some(l0) = prop("rocksdb.num-files-at-level0") else {
                    continue;
                };
                let levels = std::iter::once(l0.clone())
                    .chain((1..7).map(|i| {
                        prop(&format!("rocksdb.num-files-at-level{i}")).unwrap_or_default()
                    }))
                    .collect::<Vec<_>>()
                    .join(", ");
                let live = prop("rocksdb.estimate-live-data-size").unwrap_or_default();
                if l0 == "0" && live == "0" {
                    continue;
                }
                let cumulative = prop("rocksdb.cfstats")
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("Cumulative compaction"))
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "rocksdb {n}: files/level [{levels}], live data {live} B; {cumulative}\n"
                ));
            }
            Some(out).filter(|s| !s.is_empty())
        }
        fn dir(&self) -> &Path {
            &self.dir
        }
    }
}
