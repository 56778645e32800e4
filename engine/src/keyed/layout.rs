//! The byte layout of keyed-state keys and list values (DESIGN.md §9).
//!
//! ```text
//! key group   1 byte if max parallelism <= 128, else 2 bytes, big-endian
//! key         u16 BE length, then the key's bytes
//! namespace   u16 BE length, then the namespace's bytes
//! user key    map state only: the map key's bytes, to the end
//! ```
//!
//! The length fields make every (key group, key, namespace) prefix unambiguous, so a map's
//! entries or a key's namespaces are one prefix scan. A list value is a run of framed
//! elements: u32 LE length, the 8-byte TTL timestamp (TTL states only), the bytes.

use strata_dfs::{Error, Result};

/// Bytes of a TTL timestamp (big-endian milliseconds) in front of a TTL value or list
/// element.
pub(super) const TS_LEN: usize = 8;

/// The key layout for one maximum parallelism.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyLayout {
    pub(super) max_parallelism: u16,
}

impl KeyLayout {
    /// Bytes of the key-group prefix: 1 if max parallelism <= 128, else 2.
    pub(super) fn group_len(&self) -> usize {
        if self.max_parallelism <= 128 {
            1
        } else {
            2
        }
    }

    /// Appends the key-group prefix of `kg`.
    pub(super) fn push_group(&self, kg: u16, out: &mut Vec<u8>) {
        if self.group_len() == 1 {
            out.push(kg as u8);
        } else {
            out.extend_from_slice(&kg.to_be_bytes());
        }
    }

    /// The (key group, key, namespace) prefix.
    pub(super) fn encode(&self, kg: u16, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
        if key.len() > u16::MAX as usize || ns.len() > u16::MAX as usize {
            return Err(Error::invalid(
                "keys and namespaces are at most 65535 bytes",
            ));
        }
        let mut out = Vec::with_capacity(2 + 4 + key.len() + ns.len());
        self.push_group(kg, &mut out);
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(ns.len() as u16).to_be_bytes());
        out.extend_from_slice(ns);
        Ok(out)
    }

    /// Splits a stored key into (key group, key, namespace, user key).
    #[allow(clippy::type_complexity)]
    pub(super) fn decode(&self, k: &[u8]) -> Option<(u16, Vec<u8>, Vec<u8>, Vec<u8>)> {
        let kg = self.group_of(k)?;
        let mut p = self.group_len();
        let kl = u16::from_be_bytes(k.get(p..p + 2)?.try_into().ok()?) as usize;
        p += 2;
        let key = k.get(p..p + kl)?.to_vec();
        p += kl;
        let nl = u16::from_be_bytes(k.get(p..p + 2)?.try_into().ok()?) as usize;
        p += 2;
        let ns = k.get(p..p + nl)?.to_vec();
        p += nl;
        Some((kg, key, ns, k[p..].to_vec()))
    }

    /// The key group a composite key starts with.
    pub(super) fn group_of(&self, composite: &[u8]) -> Option<u16> {
        match composite.get(..self.group_len())? {
            [b] => Some(u16::from(*b)),
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// Appends one framed list element (with its TTL timestamp, for TTL states).
pub(super) fn frame_element(ts: Option<u64>, e: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(e.len()).map_err(|_| Error::invalid("list element too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    if let Some(ts) = ts {
        out.extend_from_slice(&ts.to_be_bytes());
    }
    out.extend_from_slice(e);
    Ok(())
}

/// Parses framed list elements: (timestamp or 0, bytes), `None` on a malformed frame.
pub(super) fn list_elements(raw: &[u8], ttl: bool) -> impl Iterator<Item = Option<(u64, &[u8])>> {
    let mut p = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || p >= raw.len() {
            return None;
        }
        let parsed = (|| {
            let len = u32::from_le_bytes(raw.get(p..p + 4)?.try_into().ok()?) as usize;
            let mut q = p + 4;
            let ts = if ttl {
                let t = u64::from_be_bytes(raw.get(q..q + TS_LEN)?.try_into().ok()?);
                q += TS_LEN;
                t
            } else {
                0
            };
            let e = raw.get(q..q + len)?;
            Some((q + len, ts, e))
        })();
        match parsed {
            Some((next, ts, e)) => {
                p = next;
                Some(Some((ts, e)))
            }
            None => {
                failed = true;
                Some(None)
            }
        }
    })
}
