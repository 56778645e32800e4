//! State TTL (Flink's `StateTtlConfig`): the configuration, the 8-byte big-endian
//! timestamp that TTL values carry in front of them (list elements carry one each, see
//! `layout.rs`), and the compaction filter that drops expired data wherever it is
//! rewritten.

use std::sync::Arc;

use strata_dfs::{CompactionFilter, Error, FilterDecision, Result, ValueKind};

use super::layout::{frame_element, list_elements, TS_LEN};
use crate::clock::Clock;

/// When a TTL entry's timestamp is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// On creation and every write.
    OnCreateAndWrite,
    /// Also on every read.
    OnReadAndWrite,
}

/// Whether expired data that is still stored may be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVisibility {
    /// Expired data is never returned.
    NeverReturnExpired,
    /// Expired data is returned until it is cleaned up.
    ReturnExpiredIfNotCleanedUp,
}

/// Per-state time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlConfig {
    /// Time to live in milliseconds of the backend's clock.
    pub ttl_ms: u64,
    /// When timestamps are refreshed.
    pub update: TtlUpdate,
    /// Whether expired data may be returned.
    pub visibility: TtlVisibility,
}

impl TtlConfig {
    /// A TTL refreshed on writes whose expired data is never returned.
    pub fn new(ttl_ms: u64) -> Self {
        TtlConfig {
            ttl_ms,
            update: TtlUpdate::OnCreateAndWrite,
            visibility: TtlVisibility::NeverReturnExpired,
        }
    }
}

/// `v` with the timestamp `now` in front (TTL states), or as it is.
pub(super) fn wrap(ttl: Option<TtlConfig>, now: u64, v: &[u8]) -> Vec<u8> {
    match ttl {
        None => v.to_vec(),
        Some(_) => {
            let mut out = Vec::with_capacity(TS_LEN + v.len());
            out.extend_from_slice(&now.to_be_bytes());
            out.extend_from_slice(v);
            out
        }
    }
}

/// Unwraps a stored value of state `name`: `None` if it is expired and must not be
/// returned; otherwise the value and whether it is expired.
pub(super) fn unwrap<'v>(
    ttl: Option<TtlConfig>,
    now: u64,
    name: &str,
    stored: &'v [u8],
) -> Result<Option<(&'v [u8], bool)>> {
    let Some(ttl) = ttl else {
        return Ok(Some((stored, false)));
    };
    let Some((ts, v)) = stored.split_first_chunk::<TS_LEN>() else {
        return Err(Error::corruption(name, "TTL value without timestamp"));
    };
    let expired = u64::from_be_bytes(*ts).saturating_add(ttl.ttl_ms) <= now;
    if expired && ttl.visibility == TtlVisibility::NeverReturnExpired {
        return Ok(None);
    }
    Ok(Some((v, expired)))
}

/// Drops expired TTL data wherever it is rewritten.
pub(super) struct TtlFilter {
    pub(super) ttl_ms: u64,
    pub(super) list: bool,
    pub(super) clock: Arc<dyn Clock>,
}

impl CompactionFilter for TtlFilter {
    fn filter(&self, _key: &[u8], _kind: ValueKind, value: &[u8]) -> FilterDecision {
        let now = self.clock.now_millis();
        let live = |ts: u64| ts.saturating_add(self.ttl_ms) > now;
        if !self.list {
            return match value.get(..TS_LEN) {
                Some(t) if !live(u64::from_be_bytes(t.try_into().expect("8 bytes"))) => {
                    FilterDecision::Remove
                }
                _ => FilterDecision::Keep,
            };
        }
        let mut kept = Vec::new();
        let mut dropped = false;
        for el in list_elements(value, true) {
            let Some((ts, e)) = el else {
                return FilterDecision::Keep; // not ours to judge
            };
            if live(ts) {
                if frame_element(Some(ts), e, &mut kept).is_err() {
                    return FilterDecision::Keep;
                }
            } else {
                dropped = true;
            }
        }
        match (dropped, kept.is_empty()) {
            (false, _) => FilterDecision::Keep,
            (true, true) => FilterDecision::Remove,
            (true, false) => FilterDecision::Change(kept),
        }
    }
}
