//! What the Flink state backend (`io.strata.flink`) needs natively: a compaction filter
//! that drops values whose Flink state-TTL timestamp has expired (Flink's RocksDB backend
//! does the same with its `FlinkCompactionFilter`).
//!
//! Flink's TTL wrapper serializes a value as `(last-access timestamp: i64 big-endian, user
//! value)`. The layouts the backend writes:
//! - value and reducing/aggregating state: the TTL value is the whole stored value;
//! - map state: a one-byte null flag, then the TTL value;
//! - list state: elements appended as `(length: u32 big-endian, TTL value)`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jni::objects::JClass;
use jni::sys::{jint, jlong};
use jni::JNIEnv;
use strata::{CompactionFilter, FilterDecision, ValueKind};

use crate::{db, guard, invalid, table};

/// Where a table's values keep their TTL timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlLayout {
    /// The timestamp starts at this byte of the value.
    At(usize),
    /// Length-prefixed list elements, each starting with its timestamp.
    ListElements,
}

/// Drops expired Flink TTL values: expired when `timestamp + ttl <= now` (Flink's rule,
/// saturating), `now` from the wall clock in milliseconds, as Flink's processing-time TTL.
pub struct FlinkTtlFilter {
    /// The layout of the table's values.
    pub layout: TtlLayout,
    /// Time to live, in milliseconds.
    pub ttl_ms: i64,
    /// Current time in milliseconds since the epoch.
    pub now: fn() -> i64,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn timestamp(b: &[u8], at: usize) -> Option<i64> {
    let raw: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(raw))
}

impl FlinkTtlFilter {
    fn expired(&self, ts: i64, now: i64) -> bool {
        ts.saturating_add(self.ttl_ms) <= now
    }

    /// The list elements that are still alive, or `None` if the value does not parse
    /// (then it is kept as it is: the filter never destroys what it cannot read).
    fn live_elements(&self, v: &[u8], now: i64) -> Option<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut changed = false;
        let mut rest = v;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let element = rest.get(..4 + len)?;
            if self.expired(timestamp(&element[4..], 0)?, now) {
                changed = true;
            } else {
                out.extend_from_slice(element);
            }
            rest = &rest[4 + len..];
        }
        Some((out, changed))
    }
}

impl CompactionFilter for FlinkTtlFilter {
    fn filter(&self, _key: &[u8], _kind: ValueKind, value: &[u8]) -> FilterDecision {
        let now = (self.now)();
        match self.layout {
            TtlLayout::At(at) => match timestamp(value, at) {
                Some(ts) if self.expired(ts, now) => FilterDecision::Remove,
                _ => FilterDecision::Keep,
            },
            TtlLayout::ListElements => match self.live_elements(value, now) {
                Some((_, false)) | None => FilterDecision::Keep,
                Some((live, true)) if live.is_empty() => FilterDecision::Remove,
                Some((live, true)) => FilterDecision::Change(live),
            },
        }
    }
}

/// Sets (or with `ttl_ms <= 0` removes) the TTL compaction filter of a table: `layout` 0
/// value state, 1 map state, 2 list state.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_setFlinkTtlFilter(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    th: jlong,
    layout: jint,
    ttl_ms: jlong,
) {
    guard(&mut env, (), |_| {
        let layout = match layout {
            0 => TtlLayout::At(0),
            1 => TtlLayout::At(1),
            2 => TtlLayout::ListElements,
            l => return Err(invalid(format!("TTL layout {l}"))),
        };
        let filter: Option<Arc<dyn CompactionFilter>> = (ttl_ms > 0).then(|| {
            Arc::new(FlinkTtlFilter {
                layout,
                ttl_ms,
                now: wall_clock_ms,
            }) as Arc<dyn CompactionFilter>
        });
        Ok(db(dbh)?.set_compaction_filter(table(th)?, filter)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl_value(ts: i64, user: &[u8]) -> Vec<u8> {
        let mut v = ts.to_be_bytes().to_vec();
        v.extend_from_slice(user);
        v
    }

    fn element(ts: i64, user: &[u8]) -> Vec<u8> {
        let e = ttl_value(ts, user);
        let mut v = (e.len() as u32).to_be_bytes().to_vec();
        v.extend(e);
        v
    }

    fn at_1000() -> i64 {
        1000
    }

    fn filter(layout: TtlLayout) -> FlinkTtlFilter {
        FlinkTtlFilter {
            layout,
            ttl_ms: 100,
            now: at_1000,
        }
    }

    #[test]
    fn values_expire_at_timestamp_plus_ttl() {
        let f = filter(TtlLayout::At(0));
        let k = ValueKind::Put;
        assert_eq!(
            f.filter(b"k", k, &ttl_value(900, b"x")),
            FilterDecision::Remove
        );
        assert_eq!(
            f.filter(b"k", k, &ttl_value(901, b"x")),
            FilterDecision::Keep
        );
        // Too short to hold a timestamp: kept, never destroyed.
        assert_eq!(f.filter(b"k", k, b"short"), FilterDecision::Keep);
        let m = filter(TtlLayout::At(1));
        let mut v = vec![0u8];
        v.extend(ttl_value(10, b"y"));
        assert_eq!(m.filter(b"k", k, &v), FilterDecision::Remove);
        v[1..9].copy_from_slice(&950i64.to_be_bytes());
        assert_eq!(m.filter(b"k", k, &v), FilterDecision::Keep);
    }

    #[test]
    fn list_elements_expire_one_by_one() {
        let f = filter(TtlLayout::ListElements);
        let k = ValueKind::Merge;
        let alive = element(990, b"alive");
        let list = [element(1, b"old"), alive.clone(), element(899, b"old2")].concat();
        assert_eq!(
            f.filter(b"k", k, &list),
            FilterDecision::Change(alive.clone())
        );
        assert_eq!(f.filter(b"k", k, &alive), FilterDecision::Keep);
        assert_eq!(
            f.filter(b"k", k, &element(5, b"gone")),
            FilterDecision::Remove
        );
        // A torn list is kept whole.
        let torn = [alive.clone(), vec![0, 0, 0, 50, 1]].concat();
        assert_eq!(f.filter(b"k", k, &torn), FilterDecision::Keep);
    }
}
