//! The internal iterator trait over internal keys, and a merging iterator over many of them.

use std::cmp::Ordering;

use crate::error::Result;
use crate::key;

/// An iterator over `(internal key, value)` pairs in [`key::compare`] order.
///
/// After an error the iterator becomes invalid and [`InternalIterator::status`] reports it;
/// callers check `status()` whenever `valid()` turns false.
pub trait InternalIterator: Send {
    /// True if positioned on an entry.
    fn valid(&self) -> bool;
    /// Positions at the first entry.
    fn seek_to_first(&mut self);
    /// Positions at the first entry `>= target` (an internal key).
    fn seek(&mut self, target: &[u8]);
    /// Advances. REQUIRES: `valid()`.
    fn next(&mut self);
    /// Current internal key. REQUIRES: `valid()`.
    fn key(&self) -> &[u8];
    /// Current value. REQUIRES: `valid()`.
    fn value(&self) -> &[u8];
    /// The first error met, if any.
    fn status(&self) -> Result<()>;
}

/// Forwards every call, so iterators can be passed boxed or borrowed.
macro_rules! forward_internal_iterator {
    ($($t:ty),*) => {$(
        impl<T: InternalIterator + ?Sized> InternalIterator for $t {
            fn valid(&self) -> bool {
                (**self).valid()
            }
            fn seek_to_first(&mut self) {
                (**self).seek_to_first()
            }
            fn seek(&mut self, target: &[u8]) {
                (**self).seek(target)
            }
            fn next(&mut self) {
                (**self).next()
            }
            fn key(&self) -> &[u8] {
                (**self).key()
            }
            fn value(&self) -> &[u8] {
                (**self).value()
            }
            fn status(&self) -> Result<()> {
                (**self).status()
            }
        }
    )*};
}
forward_internal_iterator!(&mut T, Box<T>);

/// A sorted run of segments (blocks of a chunk, files of a level), each read by its own
/// iterator, that together hold disjoint, increasing key ranges.
pub trait Segments: Send {
    /// Iterator over one segment.
    type Iter: InternalIterator;
    /// Number of segments.
    fn count(&self) -> usize;
    /// Index of the first segment whose largest key is `>= target` (`count()` if none).
    fn find(&self, target: &[u8]) -> usize;
    /// Opens segment `i`, positioned before its first entry.
    fn open(&self, i: usize) -> Result<Self::Iter>;
}

/// Iterates a [`Segments`] run as one sorted stream, opening one segment at a time.
pub struct ConcatIter<S: Segments> {
    segments: S,
    idx: usize,
    cur: Option<S::Iter>,
    err: Option<crate::Error>,
}

impl<S: Segments> ConcatIter<S> {
    /// An iterator over `segments`; call a seek first.
    pub fn new(segments: S) -> Self {
        let idx = segments.count();
        ConcatIter {
            segments,
            idx,
            cur: None,
            err: None,
        }
    }

    fn open_at(&mut self, idx: usize) -> bool {
        self.idx = idx;
        self.cur = None;
        if idx >= self.segments.count() {
            return false;
        }
        match self.segments.open(idx) {
            Ok(it) => {
                self.cur = Some(it);
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// Moves past exhausted segments (or stops at an error).
    fn skip_exhausted(&mut self) {
        while let Some(c) = &self.cur {
            if c.valid() {
                return;
            }
            if let Err(e) = c.status() {
                self.err = Some(e);
                self.cur = None;
                return;
            }
            if !self.open_at(self.idx + 1) {
                return;
            }
            if let Some(c) = &mut self.cur {
                c.seek_to_first();
            }
        }
    }
}

impl<S: Segments> InternalIterator for ConcatIter<S> {
    fn valid(&self) -> bool {
        self.err.is_none() && self.cur.as_ref().is_some_and(|c| c.valid())
    }
    fn seek_to_first(&mut self) {
        if self.open_at(0) {
            if let Some(c) = &mut self.cur {
                c.seek_to_first();
            }
            self.skip_exhausted();
        }
    }
    fn seek(&mut self, target: &[u8]) {
        let i = self.segments.find(target);
        if self.open_at(i) {
            if let Some(c) = &mut self.cur {
                c.seek(target);
            }
            self.skip_exhausted();
        }
    }
    fn next(&mut self) {
        if let Some(c) = &mut self.cur {
            c.next();
        }
        self.skip_exhausted();
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").key()
    }
    fn value(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").value()
    }
    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// An iterator over a sorted vector of owned entries (used for materialised memory tiers).
#[derive(Debug, Default)]
pub struct VecIter {
    entries: Vec<(Vec<u8>, bytes::Bytes)>,
    pos: usize,
}

impl VecIter {
    /// REQUIRES: `entries` sorted by [`key::compare`].
    pub fn new(entries: Vec<(Vec<u8>, bytes::Bytes)>) -> Self {
        let pos = entries.len();
        VecIter { entries, pos }
    }
}

impl InternalIterator for VecIter {
    fn valid(&self) -> bool {
        self.pos < self.entries.len()
    }
    fn seek_to_first(&mut self) {
        self.pos = 0;
    }
    fn seek(&mut self, target: &[u8]) {
        self.pos = self
            .entries
            .partition_point(|(k, _)| key::compare(k, target) == Ordering::Less);
    }
    fn next(&mut self) {
        self.pos += 1;
    }
    fn key(&self) -> &[u8] {
        &self.entries[self.pos].0
    }
    fn value(&self) -> &[u8] {
        &self.entries[self.pos].1
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

/// Merges child iterators into one sorted stream. Children earlier in the list are newer:
/// on equal internal keys, the earlier child's entry comes first.
pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    /// Min-heap of indices of valid children.
    heap: Vec<usize>,
}

impl MergingIterator {
    /// Merges `children` (newest first).
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIterator {
            children,
            heap: Vec::new(),
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        match key::compare(self.children[a].key(), self.children[b].key()) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.less(self.heap[l], self.heap[m]) {
                m = l;
            }
            if r < n && self.less(self.heap[r], self.heap[m]) {
                m = r;
            }
            if m == i {
                return;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }

    fn rebuild(&mut self) {
        self.heap = (0..self.children.len())
            .filter(|&i| self.children[i].valid())
            .collect();
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }
    fn seek_to_first(&mut self) {
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.rebuild();
    }
    fn seek(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek(target);
        }
        self.rebuild();
    }
    fn next(&mut self) {
        let top = self.heap[0];
        self.children[top].next();
        if !self.children[top].valid() {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
    }
    fn key(&self) -> &[u8] {
        self.children[self.heap[0]].key()
    }
    fn value(&self) -> &[u8] {
        self.children[self.heap[0]].value()
    }
    fn status(&self) -> Result<()> {
        self.children.iter().try_for_each(|c| c.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    #[test]
    fn merges_in_order_newest_source_first_on_ties() {
        let mk = |keys: &[(&str, u64)], tag: &str| -> Box<dyn InternalIterator> {
            let mut v: Vec<_> = keys
                .iter()
                .map(|(k, s)| {
                    (
                        internal_key(k.as_bytes(), *s, ValueKind::Put),
                        bytes::Bytes::from(tag.to_string()),
                    )
                })
                .collect();
            v.sort_by(|a, b| key::compare(&a.0, &b.0));
            Box::new(VecIter::new(v))
        };
        let mut m = MergingIterator::new(vec![
            mk(&[("b", 9), ("d", 3)], "new"),
            mk(&[("a", 1), ("b", 9), ("c", 2)], "old"),
        ]);
        m.seek_to_first();
        let mut got = Vec::new();
        while m.valid() {
            let p = key::parse(m.key()).unwrap();
            got.push(format!(
                "{}{}{}",
                String::from_utf8_lossy(p.user_key),
                p.seq,
                String::from_utf8_lossy(m.value())
            ));
            m.next();
        }
        assert_eq!(got, ["a1old", "b9new", "b9old", "c2old", "d3new"]);
        m.seek(&internal_key(b"c", 100, ValueKind::Put));
        assert_eq!(key::user_key(m.key()), b"c");
    }
}
