//! A run's items: every path of either side or the base that needs a decision, with both
//! sides as listed, its base entry and, once known, both sides' hashes. The two sorted
//! listings and the sorted base are joined in one pass ([`merge`]); names that collide by case
//! or Unicode normalisation are reported and held back.

use std::collections::{HashMap, HashSet};

use super::classify::{Digest, Side};
use super::plan::Closed;
use super::scan::{self, Listing, Meta, Paths, FOLDER_HASH};
use crate::store::sync::{Base, BaseEntry, SideState};

/// A path with both sides, its base and its decision. Held by the run as a [`Slot`] (96
/// bytes, its path in the run's packed names): a first copy of 100k files holds 100k of them
/// for the whole run, beside the base it builds. The steps that apply it get it with its path
/// (`Item`), a chunk at a time.
#[derive(Debug, Clone)]
pub struct Item<P = Box<str>> {
    pub rel: P,
    pub local: Option<Meta>,
    pub remote: Option<Meta>,
    /// Boxed: most items of a large run (a first copy) have none, and an inline entry made
    /// every item 96 bytes larger.
    pub base: Option<Box<BaseEntry>>,
    /// The two sides' hashes, once known (from the base by the quick check, or read). Boxed
    /// for the same reason as `base`: a file new on one side is hashed by its copy, not here.
    pub hashes: Option<Box<[Option<Digest>; 2]>>,
    /// Both sides changed differently (decided by the direction or the strategy).
    pub conflict: bool,
    /// A conflict record this item's outcome closes once applied, and why: the user edited
    /// the path after the conflict was kept. Boxed: most items have none.
    pub closes: Option<Box<(i64, Closed)>>,
    /// A new file on one side only, not hashed before the decision (which its hash cannot
    /// change): its copy hashes it, in the same read.
    pub unhashed: bool,
}

/// An item as the run holds it: its path one of the run's names.
pub type Slot = Item<Name>;

/// The index of one of the run's names (not a number to print: `to_string` on it would give
/// the index, not the path).
#[derive(Debug, Clone, Copy)]
pub struct Name(pub u32);

impl Name {
    /// The path it names.
    pub fn of(self, names: &Paths) -> &str {
        names.get(self.0 as usize)
    }
}

impl Slot {
    /// The item with its path, for the steps that apply it.
    pub fn with_rel(&self, names: &Paths) -> Item {
        Item {
            rel: self.rel.of(names).into(),
            local: self.local,
            remote: self.remote,
            base: self.base.clone(),
            hashes: self.hashes.clone(),
            conflict: self.conflict,
            closes: self.closes.clone(),
            unhashed: self.unhashed,
        }
    }
}

impl<P> Item<P> {
    pub fn lhash(&self) -> Option<Digest> {
        self.hashes.as_ref().and_then(|h| h[0])
    }

    pub fn rhash(&self) -> Option<Digest> {
        self.hashes.as_ref().and_then(|h| h[1])
    }

    /// Sets one side's hash (`local`: the primary's).
    pub fn set_hash(&mut self, local: bool, hash: Option<Digest>) {
        let h = self.hashes.get_or_insert_with(Default::default);
        h[usize::from(!local)] = hash;
        if h[0].is_none() && h[1].is_none() {
            self.hashes = None;
        }
    }
}

/// A side as the base records it: its hash, and the stat it had (its stamp only when it was
/// not racily clean).
pub fn side_state(hash: Digest, m: Meta) -> SideState {
    SideState {
        hash,
        size: m.size,
        mtime_ns: m.mtime_ns,
        stamp: m.trusted_stamp(),
        mode: m.mode,
    }
}

/// The quick check: a side that is the file the base recorded (size, time, and the stamp of
/// its inode and change time, which the base holds only when it could be trusted), and not
/// racily clean now, needs no hashing. Anything else is hashed: a same-size edit in the same
/// clock tick, or a file swapped in by `mv` with the same size and time, cannot pass.
pub fn quick(base: Option<&SideState>, now: Option<&Meta>) -> Option<Digest> {
    match (base, now) {
        (Some(b), Some(m))
            if b.stamp != 0
                && !m.racy
                && b.stamp == m.stamp
                && b.size == m.size
                && b.mtime_ns == m.mtime_ns =>
        {
            Some(b.hash)
        }
        _ => None,
    }
}

/// Every path of either side or the base that needs a decision, minus names that collide by
/// case or normalisation (reported, not merged), and minus paths a side skipped (`unseen`: an
/// unreadable folder and what is in it, a symlink, a placeholder): absent from a listing
/// because it could not be read is not deleted, so such a path is not decided this run and its
/// base stays as it was. A path in the base whose two sides both pass the quick check is
/// unchanged on both: nothing to do or record, so no item. The listings (sorted) are joined in
/// one pass.
pub fn merge(
    local: &Listing,
    remote: &Listing,
    base: &Base,
    skipped: &HashSet<String>,
    collisions: &mut Vec<Vec<String>>,
) -> (Vec<Slot>, Paths) {
    let mut folds = Folds::default();
    // `rel` or one of the folders above it was skipped by a side.
    let unseen = |rel: &str| {
        !skipped.is_empty()
            && rel
                .match_indices('/')
                .map(|(i, _)| &rel[..i])
                .chain([rel])
                .any(|p| skipped.contains(p))
    };
    // A path's item, if it needs one: its hashes the quick check settled.
    let needs = |rel: &str, l: Option<Meta>, r: Option<Meta>, b: Option<BaseEntry>| {
        if unseen(rel) {
            return None;
        }
        let lhash = known(b.as_ref().map(|b| &b.local), l.as_ref());
        let rhash = known(b.as_ref().map(|b| &b.remote), r.as_ref());
        // Modes that differ between the sides (created apart, or recorded so by an older
        // release) are settled by the plan, which needs an item.
        let modes_differ = matches!((l, r), (Some(l), Some(r)) if !l.dir && l.mode != r.mode);
        if b.is_some() && lhash.is_some() && rhash.is_some() && !modes_differ {
            return None; // unchanged on both sides
        }
        Some((lhash, rhash))
    };
    // Counted first, so the items take the room they need and no more: grown by doubling, a
    // first copy's 100k items took a third more than they used.
    let count = sides(local, remote, base)
        .filter(|&(rel, l, r, b)| needs(rel, l, r, b).is_some())
        .count();
    let mut items = Vec::with_capacity(count);
    // The items' paths, packed.
    let mut names = Paths::default();
    for (rel, l, r, b) in sides(local, remote, base) {
        // Only names on disk can collide: a path only the base still has (gone from both
        // sides, e.g. the old name of a case-only rename made on both) is forgotten, never
        // held back as colliding (which kept the new name unsynced for good).
        if l.is_some() || r.is_some() {
            folds.add(rel);
        }
        let Some((lhash, rhash)) = needs(rel, l, r, b) else {
            continue;
        };
        names.push(rel);
        items.push(Item {
            rel: Name(u32::try_from(names.len() - 1).unwrap_or(u32::MAX)),
            hashes: (lhash.is_some() || rhash.is_some()).then(|| Box::new([lhash, rhash])),
            local: l,
            remote: r,
            base: b.map(Box::new),
            conflict: false,
            unhashed: false,
            closes: None,
        });
    }
    let repeated = folds.repeated();
    if !repeated.is_empty() {
        // Two names whose folded forms hash alike: the names are walked again and compared by
        // their folded forms.
        let mut groups: HashMap<String, Vec<&str>> = HashMap::new();
        for (rel, ..) in
            sides(local, remote, base).filter(|(_, l, r, _)| l.is_some() || r.is_some())
        {
            if repeated.contains(&folds.hash(rel)) {
                groups.entry(scan::fold(rel)).or_default().push(rel);
            }
        }
        let mut colliding = HashSet::new();
        for mut group in groups.into_values().filter(|g| g.len() > 1) {
            group.sort_unstable();
            colliding.extend(group.iter().map(|s| s.to_string()));
            collisions.push(group.into_iter().map(str::to_string).collect());
        }
        collisions.sort();
        if !colliding.is_empty() {
            items.retain(|i| !colliding.contains(i.rel.of(&names)));
        }
    }
    names.shrink_to_fit();
    (items, names)
}

/// A side's hash when it is known without reading: an empty folder's stands for it; a file's
/// when the quick check passes.
fn known(base: Option<&SideState>, now: Option<&Meta>) -> Option<Digest> {
    match now {
        Some(m) if m.dir => Some(FOLDER_HASH),
        _ => quick(base, now),
    }
}

/// [`union`], where an empty folder (`NAME/`) that a side holds something in now is no
/// empty folder on either side: its files stand for it (a folder that filled is neither a
/// folder deleted nor one to remove), and its base entry is let go.
fn sides<'a>(
    local: &'a Listing,
    remote: &'a Listing,
    base: &'a Base,
) -> impl Iterator<Item = (&'a str, Option<Meta>, Option<Meta>, Option<BaseEntry>)> + 'a {
    union(local, remote, base).map(move |(rel, l, r, b)| {
        if !rel.ends_with('/') {
            return (rel, l, r, b);
        }
        let holds = |side: &Listing| {
            let i = side.paths.find(rel).map_or_else(|i| i, |i| i + 1);
            i < side.paths.len() && side.paths.get(i).starts_with(rel)
        };
        if holds(local) || holds(remote) {
            return (rel, None, None, b);
        }
        (rel, l, r, b)
    })
}

/// Every path of the two listings and the base (all sorted), in order, each once: the path,
/// its two sides and its base entry.
fn union<'a>(
    local: &'a Listing,
    remote: &'a Listing,
    base: &'a Base,
) -> impl Iterator<Item = (&'a str, Option<Meta>, Option<Meta>, Option<BaseEntry>)> + 'a {
    let mut sides = join(local, remote).peekable();
    let mut next = 0;
    std::iter::from_fn(move || {
        let b = base.at(next);
        let Some(&(rel, l, r)) = sides.peek() else {
            next += 1;
            return b.map(|(k, e)| (k, None, None, Some(e)));
        };
        match b {
            // In the base, on neither side: gone from both.
            Some((k, e)) if k < rel => {
                next += 1;
                Some((k, None, None, Some(e)))
            }
            Some((k, e)) if k == rel => {
                next += 1;
                sides.next();
                Some((rel, l, r, Some(e)))
            }
            _ => {
                sides.next();
                Some((rel, l, r, None))
            }
        }
    })
}

/// The paths listed on one side only, in order, with their side and metadata: found in one
/// pass over both sorted listings (what type conflicts and case-only renames are looked for
/// in; none in a run where both sides agree).
pub fn one_sided<'a>(local: &'a Listing, remote: &'a Listing) -> Vec<(&'a str, Side, Meta)> {
    join(local, remote)
        .filter_map(|(rel, l, r)| match (l, r) {
            (Some(m), None) => Some((rel, Side::Local, m)),
            (None, Some(m)) => Some((rel, Side::Remote, m)),
            _ => None,
        })
        .collect()
}

/// Two listings sorted by path, joined: (path, the local side, the remote side), each path
/// once, in order.
fn join<'a>(
    a: &'a Listing,
    b: &'a Listing,
) -> impl Iterator<Item = (&'a str, Option<Meta>, Option<Meta>)> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.0.cmp(y.0),
        };
        match order {
            std::cmp::Ordering::Less => a.next().map(|(p, m)| (p, Some(m), None)),
            std::cmp::Ordering::Greater => b.next().map(|(p, m)| (p, None, Some(m))),
            std::cmp::Ordering::Equal => {
                let y = b.next().map(|(_, m)| m);
                a.next().map(|(p, m)| (p, Some(m), y))
            }
        }
    })
}

/// Names that collide once case and Unicode normalisation are folded ([`scan::fold`]): a first
/// pass keeps each name's folded form as a 64-bit hash in a flat list (0.8 MB for 100k names,
/// where a hash table of them took 3-5 MB); only hashes seen twice make the caller look at the
/// names again.
#[derive(Default)]
struct Folds {
    hasher: std::hash::RandomState,
    hashes: Vec<u64>,
    buf: String,
}

impl Folds {
    fn hash(&mut self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        if name.is_ascii() {
            self.buf.clear();
            self.buf.push_str(name);
            self.buf.make_ascii_lowercase();
            self.hasher.hash_one(self.buf.as_str())
        } else {
            self.hasher.hash_one(scan::fold(name).as_str())
        }
    }

    /// Adds `name` (each name once).
    fn add(&mut self, name: &str) {
        let h = self.hash(name);
        self.hashes.push(h);
    }

    /// The hashes added more than once (usually none); the list is let go.
    fn repeated(&mut self) -> HashSet<u64> {
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.sort_unstable();
        hashes
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::BaseChange;

    fn meta(size: u64) -> Meta {
        Meta {
            size,
            mtime_ns: 1,
            stamp: 5,
            ..Meta::default()
        }
    }

    /// A base entry with both sides alike, of `size` bytes.
    fn entry(size: u64) -> BaseEntry {
        let side = SideState {
            hash: [7; 32],
            size,
            mtime_ns: 1,
            stamp: 5,
            ..SideState::default()
        };
        BaseEntry {
            local: side,
            remote: side,
        }
    }

    fn listing(names: &[&str]) -> Listing {
        let mut l = Listing::default();
        for n in names {
            l.paths.push(n);
            l.metas.push(meta(1));
        }
        l
    }

    #[test]
    fn two_sorted_listings_join_each_path_once_in_order() {
        let a = listing(&["a", "a.b", "a/x", "c"]);
        let b = listing(&["a/x", "b", "d"]);
        let got: Vec<(&str, bool, bool)> = join(&a, &b)
            .map(|(k, l, r)| (k, l.is_some(), r.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", true, false),
                ("a.b", true, false),
                ("a/x", true, true),
                ("b", false, true),
                ("c", true, false),
                ("d", false, true),
            ]
        );
        assert_eq!(join(&Listing::default(), &a).count(), 4);
        assert_eq!(join(&a, &Listing::default()).count(), 4);
    }

    /// The quick check passes only for the file the base recorded, trusted then and now.
    #[test]
    fn the_quick_check_needs_the_same_stamp_and_a_file_not_racy() {
        let b = entry(1).local;
        let now = meta(1);
        assert_eq!(quick(Some(&b), Some(&now)), Some(b.hash));
        let cases = [
            Meta { stamp: 6, ..now },    // another inode or change time
            Meta { racy: true, ..now },  // racily clean now
            Meta { size: 2, ..now },     // another size
            Meta { mtime_ns: 2, ..now }, // another time
        ];
        for m in cases {
            assert_eq!(quick(Some(&b), Some(&m)), None, "{m:?}");
        }
        // Recorded racily clean (stamp 0): hashed whatever is there now.
        let racy = SideState { stamp: 0, ..b };
        assert_eq!(quick(Some(&racy), Some(&Meta { stamp: 0, ..now })), None);
        assert_eq!(quick(None, Some(&now)), None);
        assert_eq!(quick(Some(&b), None), None);
    }

    #[test]
    fn merge_leaves_out_what_is_unchanged_on_both_sides_and_keeps_what_is_gone() {
        let mut base = Base::new();
        base.apply(vec![
            BaseChange::Put("same".to_string(), entry(1)),
            BaseChange::Put("changed".to_string(), entry(2)),
            BaseChange::Put("gone".to_string(), entry(1)),
        ]);
        let local = listing(&["Case", "case", "changed", "new", "same"]);
        let remote = listing(&["changed", "same"]);
        let mut collisions = Vec::new();
        let (items, paths) = merge(&local, &remote, &base, &HashSet::new(), &mut collisions);
        let names: Vec<&str> = items.iter().map(|i| i.rel.of(&paths)).collect();
        assert_eq!(names, ["changed", "gone", "new"]);
        // Counted before: room for exactly the items needed (the colliding two included).
        assert_eq!(items.capacity(), 5);
        assert_eq!(
            collisions,
            vec![vec!["Case".to_string(), "case".to_string()]]
        );
        // The quick check settled the side it could: the size changed on both.
        assert!(items[0].lhash().is_none() && items[0].rhash().is_none());
        assert!(items[1].local.is_none() && items[1].remote.is_none() && items[1].base.is_some());
    }

    #[test]
    fn the_union_walks_the_base_in_step_with_the_listings() {
        let mut base = Base::new();
        base.apply(
            ["0first", "b", "c/x", "zz"]
                .iter()
                .map(|p| BaseChange::Put(p.to_string(), entry(1)))
                .collect(),
        );
        let local = listing(&["a", "b", "c"]);
        let remote = listing(&["b", "c/x", "d"]);
        let got: Vec<(&str, bool, bool, bool)> = union(&local, &remote, &base)
            .map(|(k, l, r, b)| (k, l.is_some(), r.is_some(), b.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("0first", false, false, true),
                ("a", true, false, false),
                ("b", true, true, true),
                ("c", true, false, false),
                ("c/x", false, true, true),
                ("d", false, true, false),
                ("zz", false, false, true),
            ]
        );
        let none = Listing::default();
        assert_eq!(union(&none, &none, &base).count(), 4);
        assert_eq!(union(&local, &none, &Base::new()).count(), 3);
    }

    #[test]
    fn names_on_disk_collide_and_a_path_only_in_the_base_collides_with_nothing() {
        let mut base = Base::new();
        base.apply(vec![BaseChange::Put("Notes/A.txt".into(), entry(1))]);
        // The same name in NFD on one side, in another case on the other.
        let local = listing(&["notes/a\u{301}.txt", "notes/a.txt"]);
        let remote = listing(&["notes/\u{e1}.txt", "other"]);
        let mut collisions = Vec::new();
        let (items, paths) = merge(&local, &remote, &base, &HashSet::new(), &mut collisions);
        let names: Vec<&str> = items.iter().map(|i| i.rel.of(&paths)).collect();
        // The base-only name is on neither side: it is forgotten, and collides with nothing
        // (a case-only rename made on both sides settles instead of staying held for good).
        assert_eq!(names, ["Notes/A.txt", "notes/a.txt", "other"]);
        assert_eq!(
            collisions,
            vec![vec![
                "notes/a\u{301}.txt".to_string(),
                "notes/\u{e1}.txt".to_string()
            ]]
        );
    }
}
