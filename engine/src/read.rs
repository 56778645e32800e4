//! Point reads: one key through every tier, and batched reads that answer from memory
//! first and send the rest to storage in parallel.

use std::sync::atomic::Ordering;

use strata_dfs::key::{SeqNo, MAX_SEQ};
use strata_dfs::{Error, ReadTier, Result};

use crate::catalog::Table;
use crate::inner::Inner;

/// Most storage reads one [`crate::Db::multi_get`] issues at once.
pub const MULTI_GET_PARALLELISM: usize = 16;

impl Inner {
    /// Reads `key` as of `seq`; `promote` installs a value found below the hot tier in it.
    pub(crate) fn get(
        &self,
        table: &Table,
        key: &[u8],
        seq: SeqNo,
        promote: bool,
    ) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid("key exceeds max_key_bytes"));
        }
        let merge = self.table_merge(table)?.map(|m| &**m);
        self.middle
            .get(table.id, key, seq, merge, promote, ReadTier::All)
    }

    /// Reads several keys of one table (see [`crate::Db::multi_get`]).
    pub(crate) fn multi_get(&self, table: &Table, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_open()?;
        if let Some(k) = keys.iter().find(|k| k.len() > self.settings.max_key_bytes) {
            return Err(Error::invalid(format!(
                "key of {} bytes exceeds max_key_bytes",
                k.len()
            )));
        }
        let merge = self.table_merge(table)?.map(|m| &**m);
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut misses: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let mem = self
                .middle
                .get(table.id, k, MAX_SEQ, merge, true, ReadTier::Memory);
            match mem {
                Ok(v) => out[i] = v,
                Err(e) if e.is_incomplete() => misses.push(i),
                Err(e) => return Err(e),
            }
        }
        if misses.len() <= 1 {
            for i in misses {
                out[i] = self.get(table, keys[i], MAX_SEQ, true)?;
            }
            return Ok(out);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = misses.len().min(MULTI_GET_PARALLELISM);
        type Found = Result<Vec<(usize, Option<Vec<u8>>)>>;
        let found: Vec<Found> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut got = Vec::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = misses.get(n) else {
                                return Ok(got);
                            };
                            got.push((i, self.get(table, keys[i], MAX_SEQ, true)?));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::invalid("a multi_get reader panicked")))
                })
                .collect()
        });
        for part in found {
            for (i, v) in part? {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
