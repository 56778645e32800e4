//! Flush: making every acknowledged write durable in table files (what a checkpoint needs,
//! and what bounds the WAL), on demand and in the background when the WAL grows.
//!
//! Invariant: a flush holds the apply lock, so the manifest commit records exactly the
//! writes applied before it, together with the number of the WAL that starts after them;
//! older WAL files are deleted only after that commit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_dfs::Result;

use crate::inner::Inner;
use crate::wal::{list_wals, wal_path, WalWriter};

impl Inner {
    /// Makes every write so far durable in table files and starts a new WAL (dropping the
    /// ones it covers). Writers wait while it runs.
    pub(crate) fn flush(&self) -> Result<()> {
        self.check_writable()?;
        let mut st = self.apply.lock();
        let seq = self.last_seq.load(Ordering::SeqCst);
        let new_wal = match (&self.wal_dir, self.settings.wal_enabled) {
            (Some(dir), true) => Some(WalWriter::create(
                dir,
                self.middle.new_file_number(),
                self.settings.wal_sync,
            )?),
            _ => None,
        };
        let log_number = new_wal.as_ref().map(WalWriter::number);
        let r = self.middle.flush_all(|m| {
            m.last_seq = m.last_seq.max(seq);
            // The WAL that holds the writes after this flush, or none (0).
            m.log_number = log_number.unwrap_or(0);
        });
        if let Err(e) = r {
            if let (Some(dir), Some(n)) = (&self.wal_dir, log_number) {
                let _ = std::fs::remove_file(wal_path(dir, n));
            }
            return Err(e);
        }
        if let Some(w) = new_wal {
            st.wal = Some(w);
            self.wal_bytes.store(0, Ordering::Relaxed);
        }
        drop(st);
        if let (Some(dir), Some(n)) = (&self.wal_dir, log_number) {
            for old in list_wals(dir)?.into_iter().filter(|&o| o < n) {
                let _ = std::fs::remove_file(wal_path(dir, old));
            }
        }
        self.middle.purge_obsolete();
        Ok(())
    }

    /// Starts a background flush once the WAL has grown past `wal_max_bytes`.
    pub(crate) fn maybe_flush_wal(self: &Arc<Self>) {
        if !self.settings.wal_enabled
            || self.wal_bytes.load(Ordering::Relaxed) <= self.settings.wal_max_bytes
            || self.flushing.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let me = Arc::downgrade(self);
        let h = std::thread::Builder::new()
            .name("strata-wal-flush".into())
            .spawn(move || {
                if let Some(inner) = me.upgrade() {
                    // A failure poisons the tree; writers see it on their next write.
                    let _ = inner.flush();
                    inner.flushing.store(false, Ordering::SeqCst);
                }
            });
        match h {
            Ok(h) => {
                if let Some(old) = self.bg_flush.lock().replace(h) {
                    let _ = old.join();
                }
            }
            Err(_) => self.flushing.store(false, Ordering::SeqCst),
        }
    }
}
