//! Many relative paths packed in one buffer. A sync of 100k files holds 100k paths per side
//! and in its base: as a `String` each (24 bytes and a heap block of 32 or more) they were
//! most of its memory; packed, a path costs its bytes and the 8-byte end of it.

use std::cmp::Ordering;

/// Paths in one buffer, each addressed by its index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Paths {
    bytes: String,
    /// Where each path ends in `bytes` (the next one starts there).
    ends: Vec<usize>,
}

/// Where [`Paths::merge`] took a path from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The path held at this index before the merge.
    Held(usize),
    /// The merged-in path at this index.
    New(usize),
}

impl Paths {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, path: &str) {
        self.bytes.push_str(path);
        self.ends.push(self.bytes.len());
    }

    /// The `i`-th path (`i` < [`Paths::len`]).
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Binary search, for paths held in order.
    pub fn find(&self, path: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(path) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Whether the paths are in order, each once.
    pub fn is_sorted(&self) -> bool {
        (1..self.len()).all(|i| self.get(i - 1) < self.get(i))
    }

    /// Puts the paths in order, a path held twice once (either), and `values` (one per path,
    /// index for index) with them. For paths that came out of order: it builds a second copy.
    pub fn sort_along<T: Clone>(&mut self, values: &mut Vec<T>) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
        order.dedup_by(|a, b| self.get(*a) == self.get(*b));
        let mut paths = Paths {
            bytes: String::with_capacity(self.bytes.len()),
            ends: Vec::with_capacity(order.len()),
        };
        for &i in &order {
            paths.push(self.get(i));
        }
        *values = order.iter().map(|&i| values[i].clone()).collect();
        *self = paths;
    }

    /// The bytes of all the paths held.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Room for `more` paths of `bytes` bytes in all.
    pub fn reserve(&mut self, more: usize, bytes: usize) {
        self.ends.reserve_exact(more);
        self.bytes.reserve_exact(bytes);
    }

    /// Hands back the room grown beyond what is held.
    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// Keeps the paths `keep` says yes to (asked once each, in order), in place.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut buf = std::mem::take(&mut self.bytes).into_bytes();
        let (mut start, mut w, mut kept) = (0, 0, 0);
        for i in 0..self.len() {
            let end = self.ends[i];
            if keep(i) {
                buf.copy_within(start..end, w);
                w += end - start;
                self.ends[kept] = w;
                kept += 1;
            }
            start = end;
        }
        self.ends.truncate(kept);
        buf.truncate(w);
        self.bytes = text(buf);
    }

    /// Merges `new` (sorted, none of them held) into the held paths (sorted), in place: the
    /// storage grows by what is added, with no second copy of what is held. `moved` hears
    /// where each path of the result comes from, last first, down to the first new one (the
    /// held paths before it stay where they are).
    pub fn merge(&mut self, new: &[&str], mut moved: impl FnMut(From, usize)) {
        let added: usize = new.iter().map(|p| p.len()).sum();
        let (held, held_bytes) = (self.len(), self.bytes.len());
        let mut buf = std::mem::take(&mut self.bytes).into_bytes();
        buf.reserve_exact(added);
        buf.resize(held_bytes + added, 0);
        self.ends.reserve_exact(new.len());
        self.ends.resize(held + new.len(), 0);
        // From the end: `i` held and `j` new paths are left to place, below byte `w`. What is
        // written never overlaps a held path not yet moved (`w` stays at or past its end).
        let (mut i, mut j, mut w) = (held, new.len(), held_bytes + added);
        while j > 0 {
            let held_start = |i: usize| if i == 1 { 0 } else { self.ends[i - 2] };
            let take_new = i == 0 || new[j - 1].as_bytes() > &buf[held_start(i)..self.ends[i - 1]];
            let at = i + j - 1;
            if take_new {
                let p = new[j - 1].as_bytes();
                buf[w - p.len()..w].copy_from_slice(p);
                self.ends[at] = w;
                w -= p.len();
                j -= 1;
                moved(From::New(j), at);
            } else {
                let (start, end) = (held_start(i), self.ends[i - 1]);
                buf.copy_within(start..end, w - (end - start));
                self.ends[at] = w;
                w -= end - start;
                i -= 1;
                moved(From::Held(i), at);
            }
        }
        self.bytes = text(buf);
    }
}

/// Bytes made of whole paths, back as text (checked: never lossy unless a move was wrong).
fn text(buf: Vec<u8>) -> String {
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Paths {
        let mut p = Paths::default();
        for n in names {
            p.push(n);
        }
        p
    }

    #[test]
    fn packed_paths_answer_each_path_and_find_them_in_order() {
        let mut p = Paths::default();
        assert!(p.is_empty());
        assert_eq!(p.find("a"), Err(0));
        // Byte order: 'é' (0xc3 0xa9) after 'z'.
        p = paths(&["", "a", "a/b", "z", "\u{e9}t\u{e9}"]);
        assert_eq!(p.len(), 5);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            ["", "a", "a/b", "z", "\u{e9}t\u{e9}"]
        );
        assert_eq!(p.get(4), "\u{e9}t\u{e9}");
        assert_eq!(p.find(""), Ok(0));
        assert_eq!(p.find("a/b"), Ok(2));
        assert_eq!(p.find("z"), Ok(3));
        assert_eq!(p.find("b"), Err(3));
        assert_eq!(p.find("zz"), Err(4));
        assert_eq!(p.find("\u{e9}t\u{e9}!"), Err(5));
        assert!(p.is_sorted());
    }

    #[test]
    fn unsorted_paths_are_put_in_order_once_each() {
        let mut p = paths(&["b", "a", "c", "a"]);
        assert!(!p.is_sorted());
        let mut values = vec![2, 1, 3, 1];
        p.sort_along(&mut values);
        assert_eq!(p.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(values, [1, 2, 3]);
        assert!(p.is_sorted());
    }

    #[test]
    fn retain_keeps_the_chosen_paths_in_place() {
        let mut p = paths(&["a", "bb", "\u{e9}\u{e9}", "d", "eee"]);
        p.retain(|i| i % 2 == 1);
        assert_eq!(p.iter().collect::<Vec<_>>(), ["bb", "d"]);
        p.retain(|_| false);
        assert!(p.is_empty());
        assert_eq!(p.find("bb"), Err(0));
    }

    #[test]
    fn merge_interleaves_in_place_and_says_where_each_path_came_from() {
        let mut p = paths(&["b", "d\u{e9}", "f"]);
        let mut log = Vec::new();
        p.merge(&["a", "c", "e", "g\u{e9}g"], |from, at| {
            log.push((from, at))
        });
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            ["a", "b", "c", "d\u{e9}", "e", "f", "g\u{e9}g"]
        );
        assert_eq!(
            log,
            [
                (From::New(3), 6),
                (From::Held(2), 5),
                (From::New(2), 4),
                (From::Held(1), 3),
                (From::New(1), 2),
                (From::Held(0), 1),
                (From::New(0), 0),
            ]
        );
        // Appended after all: nothing held moves.
        let mut log = Vec::new();
        p.merge(&["x", "y"], |from, at| log.push((from, at)));
        assert_eq!(log, [(From::New(1), 8), (From::New(0), 7)]);
        assert_eq!(p.get(p.len() - 1), "y");
        // Into nothing, and nothing into something.
        let mut e = Paths::default();
        e.merge(&["a"], |_, _| {});
        assert_eq!(e.iter().collect::<Vec<_>>(), ["a"]);
        e.merge(&[], |_, _| panic!("nothing moves"));
        assert_eq!(e.len(), 1);
        assert!(p.is_sorted());
    }

    #[test]
    fn merging_many_paths_matches_a_sort() {
        // A deterministic shuffle of 2,000 names, merged in batches against a sorted copy.
        let names: Vec<String> = (0..2000u32)
            .map(|i| format!("d{}/f{}", (i * 7919) % 97, (i * 104_729) % 1000))
            .collect();
        let mut p = Paths::default();
        let mut want: Vec<String> = Vec::new();
        for batch in names.chunks(300) {
            let mut b: Vec<&str> = batch
                .iter()
                .map(String::as_str)
                .filter(|n| p.find(n).is_err())
                .collect();
            b.sort_unstable();
            b.dedup();
            p.merge(&b, |_, _| {});
            want.extend(b.iter().map(|s| s.to_string()));
            want.sort_unstable();
            assert_eq!(p.iter().collect::<Vec<_>>(), want);
        }
    }
}
