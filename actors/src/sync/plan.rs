//! A run's plan: each item classified against its base on both sides and decided
//! ([`classify::decide`](super::classify::decide)), with the conflicts kept earlier taken into
//! account, and the guard on mass deletion. Pure: no filesystem, no store, no clock; the hashes
//! it needs are in the items already.

use std::collections::{HashMap, HashSet};

use super::classify::{
    decide, Action, Class, Digest, Direction, Seen, Side, Strategy, SKEW_LIMIT_NS,
};
use super::items::{side_state, Slot};
use super::report::{planned, Planned, Refusal, Stop};
use super::scan::{Meta, Paths};
use crate::store::sync::{Base, BaseChange, BaseEntry, ConflictRow, SideState};

/// How a conflict record closed by a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Closed {
    /// The user edited one side after it was kept.
    Edited,
    /// Both sides were edited again after it was kept: a newer conflict replaces it.
    Superseded,
    /// The path is on neither side any more.
    Gone,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Edited => "edited",
            Closed::Superseded => "superseded",
            Closed::Gone => "gone",
        }
    }
}

/// What a run is to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// The steps, in path order: an item (by its index) and its action; at most one an item,
    /// never `Nothing` or `Pending`. The items stay where they are (a first copy's 100k items
    /// held twice, as items and as the plan, was most of its memory).
    pub steps: Vec<(usize, Action)>,
    /// Base entries that learn a new time (touched: the time changed, the contents did not).
    pub touched: Vec<BaseChange>,
    /// Conflict records settled without a step (sent once the base that settles them is
    /// committed); a step's item carries its own in `closes`.
    pub closing: Vec<(i64, Closed)>,
    /// Paths of conflicts kept earlier and left alone (both versions are the ones it saw).
    pub unresolved: Vec<String>,
    /// Changes the direction does not take.
    pub pending: Vec<Planned>,
}

/// Decides every item. `held`: paths a side skipped or that collide this run (a conflict
/// record of theirs is neither settled nor decided); `now_ns`: this host's clock (a time too
/// far ahead of it is not trusted). Sets each item's `conflict` and `closes`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    items: &mut [Slot],
    names: &Paths,
    base: &Base,
    open: &[ConflictRow],
    held: &HashSet<&str>,
    direction: Direction,
    strategy: Strategy,
    now_ns: i64,
) -> Plan {
    // At most one step an item: room for that at once (grown by doubling it took 2.1 MB, not
    // 1.6).
    let mut out = Plan {
        steps: Vec::with_capacity(items.len()),
        ..Plan::default()
    };
    let open_by_path: HashMap<&str, &ConflictRow> =
        open.iter().map(|c| (c.path.as_str(), c)).collect();
    if !open.is_empty() {
        // A record whose path needs no decision, and not merely because it is unreadable or
        // colliding this time, is settled: in the base and unchanged on both sides (both as
        // the base has them), or on neither side nor in the base (both versions deleted, or
        // no longer selected).
        let listed: HashSet<&str> = items.iter().map(|i| i.rel.of(names)).collect();
        out.closing.extend(
            open.iter()
                .filter(|c| !listed.contains(c.path.as_str()) && !held.contains(c.path.as_str()))
                .map(|c| {
                    let why = if base.contains_key(&c.path) {
                        Closed::Edited
                    } else {
                        Closed::Gone
                    };
                    (c.id, why)
                }),
        );
    }
    for (index, item) in items.iter_mut().enumerate() {
        let rel = item.rel.of(names);
        let lb = item.base.as_ref().map(|b| b.local.hash);
        let rb = item.base.as_ref().map(|b| b.remote.hash);
        let seen = |hash: Option<Digest>, m: Option<Meta>| {
            // Unhashed: created on this side alone, which decides whatever its hash.
            let hash = if item.unhashed {
                hash.or(Some([0; 32]))
            } else {
                hash
            };
            hash.zip(m).map(|(hash, m)| Seen {
                hash,
                mtime_ns: m.mtime_ns,
                future: m.mtime_ns > now_ns.saturating_add(SKEW_LIMIT_NS),
            })
        };
        let lseen = seen(item.lhash(), item.local);
        let rseen = seen(item.rhash(), item.remote);
        let (lc, rc) = (Class::of(lb, lseen), Class::of(rb, rseen));
        let mut d = decide(lc, rc, direction, strategy);
        if let Some(c) = open_by_path.get(rel) {
            // A conflict kept earlier: left alone while the two versions are the ones it saw.
            if d.conflict
                && Some(c.local_hash) == item.lhash()
                && Some(c.remote_hash) == item.rhash()
            {
                out.unresolved.push(rel.to_string());
                continue;
            }
            item.closes = Some(Box::new((c.id, Closed::Edited)));
            if d.conflict {
                // The user changed the path since: the versions the conflict recorded act as
                // the base, so the side they edited wins. Both edited again: a new conflict,
                // which supersedes this one.
                let again = decide(
                    Class::of(Some(c.local_hash), lseen),
                    Class::of(Some(c.remote_hash), rseen),
                    direction,
                    strategy,
                );
                if again.conflict {
                    item.closes = Some(Box::new((c.id, Closed::Superseded)));
                } else {
                    d = again;
                }
            }
        }
        // Touched only (time changed, contents not): the base learns the new time; a chmod
        // is synced.
        if let (Some(b), Class::Unchanged, Class::Unchanged) =
            (item.base.as_deref().copied(), lc, rc)
        {
            if let (Some(l), Some(r)) = (item.local, item.remote) {
                if let Some(a) = chmod(&b, &l, &r, direction) {
                    match a {
                        Action::Pending(_) => out.pending.push(planned(rel, a, lc, rc)),
                        _ => out.steps.push((index, a)),
                    }
                    continue;
                }
                let e = BaseEntry {
                    local: side_state(b.local.hash, l),
                    remote: side_state(b.remote.hash, r),
                };
                if e != b {
                    out.touched.push(BaseChange::Put(rel.to_string(), e));
                }
            }
        }
        item.conflict = d.conflict;
        // The same contents on both sides with other modes (created apart): recorded with the
        // narrower mode on both, not each as it is (they would differ for good).
        if d.action == Action::Agree {
            if let (Some(l), Some(r)) = (item.local, item.remote) {
                let none = SideState::default();
                let as_is = BaseEntry {
                    local: SideState {
                        mode: l.mode,
                        ..none
                    },
                    remote: SideState {
                        mode: r.mode,
                        ..none
                    },
                };
                if let Some(a) = chmod(&as_is, &l, &r, direction) {
                    d.action = a;
                }
            }
        }
        match d.action {
            // Both sides as the base has them: a record still open is settled already.
            Action::Nothing => out.closing.extend(item.closes.as_deref().copied()),
            Action::Pending(_) => out.pending.push(planned(rel, d.action, lc, rc)),
            a => out.steps.push((index, a)),
        }
    }
    out
}

/// A chmod to sync, for a path whose contents are unchanged on both sides (`b` its base, `l`
/// and `r` its sides now): the side whose permission bits changed since the base gives them
/// to the other (a chmod is the user's intent, wider or not). Both changed, or neither while
/// they differ (the same file created apart with other modes): the narrower, never the wider
/// (a key made 0600 on one host and 0644 on another stays 0600 everywhere); two modes neither
/// of which holds the other (0640, 0604) both become what both allow (0600). One-way, only
/// the direction's side is set. A base without modes (recorded before they were) only learns
/// them.
fn chmod(b: &BaseEntry, l: &Meta, r: &Meta, direction: Direction) -> Option<Action> {
    if l.dir || r.dir || l.mode == r.mode || b.local.mode == 0 || b.remote.mode == 0 {
        return None;
    }
    let (lch, rch) = (l.mode != b.local.mode, r.mode != b.remote.mode);
    let (to_remote, to_local) = match direction {
        Direction::Bidirectional => (Action::ChmodRemote, Action::ChmodLocal),
        Direction::Push => (Action::ChmodRemote, Action::Pending(Side::Remote)),
        Direction::Pull => (Action::Pending(Side::Local), Action::ChmodLocal),
    };
    let narrow = l.mode & r.mode;
    Some(match (lch, rch) {
        (true, false) => to_remote,
        (false, true) => to_local,
        _ if direction == Direction::Push => Action::ChmodRemote,
        _ if direction == Direction::Pull => Action::ChmodLocal,
        _ if narrow == l.mode => Action::ChmodRemote,
        _ if narrow == r.mode => Action::ChmodLocal,
        _ => Action::ChmodBoth,
    })
}

/// Whether `a` deletes a file (on either side).
pub fn is_deletion(a: Action) -> bool {
    matches!(a, Action::DeleteLocal | Action::DeleteRemote)
}

/// The guard on mass deletion: a plan that deletes more than `max_delete` (a share) of the
/// `tracked` files of `target` stops the run before anything is changed, unless it deletes
/// `floor` files or fewer (3 of 4 tracked files is no mass deletion). `allow`: an operator
/// let this run through (`sync TARGET --allow-deletes N`): up to N deletions go, whatever the
/// share; more than N stop it all the same.
/// Per listed path (`paths`): (the path, the run's deletions under it, the base's paths under
/// it), for [`mass_deletion`]: a listed folder emptied at once (a drive mounted there that is
/// not now: a bare, empty mountpoint) is a mass deletion even when it holds a small share of
/// all that is synced.
pub fn per_listed(
    steps: &[(usize, Action)],
    items: &[Slot],
    names: &Paths,
    listed: &[String],
    base: &Base,
) -> Vec<(String, usize, usize)> {
    listed
        .iter()
        .map(|p| {
            let p = p.trim_end_matches('/');
            let folder = format!("{p}/");
            let deletions = steps
                .iter()
                .filter(|&&(i, a)| {
                    is_deletion(a) && {
                        let rel = items[i].rel.of(names);
                        rel == p || rel.starts_with(&folder)
                    }
                })
                .count();
            (p.to_string(), deletions, base.count_under(p))
        })
        .collect()
}

pub fn mass_deletion(
    steps: &[(usize, Action)],
    tracked: usize,
    listed: &[(String, usize, usize)],
    max_delete: f64,
    floor: usize,
    allow: Option<usize>,
    target: &str,
) -> Option<Stop> {
    let deletions = steps.iter().filter(|(_, a)| is_deletion(*a)).count();
    let see = format!(
        "`metasystem sync {target} --dry-run` lists them; if they are intended, `metasystem \
         sync {target} --allow-deletes {deletions}` lets this one run through (it lists what it \
         deletes)"
    );
    if let Some(allowed) = allow {
        if deletions > allowed {
            return Some(Stop::refused(
                format!(
                    "stopped: this run would delete {deletions} files, more than \
                     `--allow-deletes {allowed}` lets through; nothing was changed. {see}"
                ),
                Refusal::MaxDelete,
            ));
        }
        return None;
    }
    if deletions > floor && tracked > 0 && deletions as f64 > max_delete * tracked as f64 {
        return Some(Stop::refused(
            format!(
                "stopped: this run would delete {deletions} of {tracked} synced files, more \
                 than max_delete ({:.0}%) allows above max_delete_floor ({floor} files); \
                 nothing was changed. {see}",
                max_delete * 100.0,
            ),
            Refusal::MaxDelete,
        ));
    }
    for (path, deletions, tracked) in listed {
        let (deletions, tracked) = (*deletions, *tracked);
        if deletions > floor && tracked > 0 && deletions as f64 > max_delete * tracked as f64 {
            return Some(Stop::refused(
                format!(
                    "stopped: this run would delete {deletions} of the {tracked} synced files \
                     under `{path}`, more than max_delete ({:.0}%) allows above \
                     max_delete_floor ({floor} files) (an unmounted drive's empty mountpoint?); \
                     nothing was changed. {see}",
                    max_delete * 100.0,
                ),
                Refusal::MaxDelete,
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::SideState;
    use crate::sync::items::Name;
    use Action::*;

    const A: Digest = [1; 32];
    const B: Digest = [2; 32];
    const C: Digest = [3; 32];

    /// A side as listed now: its hash (known) and time.
    type Now = Option<(Digest, i64)>;

    fn meta(mtime_ns: i64) -> Meta {
        Meta {
            size: 4,
            mtime_ns,
            ..Meta::default()
        }
    }

    fn side(hash: Digest) -> SideState {
        SideState {
            hash,
            size: 4,
            mtime_ns: 1,
            ..SideState::default()
        }
    }

    /// Items named `p0`, `p1`, ... from (base hash, local now, remote now).
    fn items(rows: &[(Option<Digest>, Now, Now)]) -> (Vec<Slot>, Paths) {
        let mut names = Paths::default();
        let mut out = Vec::new();
        for (i, &(base, l, r)) in rows.iter().enumerate() {
            names.push(&format!("p{i}"));
            out.push(Slot {
                rel: Name(i as u32),
                local: l.map(|(_, t)| meta(t)),
                remote: r.map(|(_, t)| meta(t)),
                base: base.map(|h| {
                    Box::new(BaseEntry {
                        local: side(h),
                        remote: side(h),
                    })
                }),
                hashes: Some(Box::new([l.map(|(h, _)| h), r.map(|(h, _)| h)])),
                conflict: false,
                closes: None,
                unhashed: false,
            });
        }
        (out, names)
    }

    fn decided(rows: &[(Option<Digest>, Now, Now)], d: Direction, s: Strategy) -> Plan {
        let (mut items, names) = items(rows);
        plan(
            &mut items,
            &names,
            &Base::new(),
            &[],
            &HashSet::new(),
            d,
            s,
            0,
        )
    }

    /// One path per row: what the plan does with it (`None`: no step).
    #[test]
    fn each_pair_of_sides_gets_its_step() {
        let bi = Direction::Bidirectional;
        let rows: &[(Option<Digest>, Now, Now, Option<Action>)] = &[
            (None, Some((A, 1)), None, Some(CopyToRemote)),
            (None, None, Some((A, 1)), Some(CopyToLocal)),
            (None, Some((A, 1)), Some((A, 9)), Some(Agree)),
            (Some(A), Some((A, 5)), Some((A, 1)), None), // touched only
            (Some(A), Some((B, 1)), Some((A, 1)), Some(CopyToRemote)),
            (Some(A), Some((A, 1)), Some((B, 1)), Some(CopyToLocal)),
            (Some(A), None, Some((A, 1)), Some(DeleteRemote)),
            (Some(A), Some((A, 1)), None, Some(DeleteLocal)),
            (Some(A), None, None, Some(Forget)),
            (Some(A), None, Some((B, 1)), Some(CopyToLocal)), // change beats deletion
            (Some(A), Some((B, 2)), Some((C, 1)), Some(CopyToRemote)), // newest
            (Some(A), Some((B, 1)), Some((C, 2)), Some(CopyToLocal)),
        ];
        let plain: Vec<_> = rows.iter().map(|&(b, l, r, _)| (b, l, r)).collect();
        let p = decided(&plain, bi, Strategy::Newest);
        for (i, &(.., want)) in rows.iter().enumerate() {
            let got = p.steps.iter().find(|(j, _)| *j == i).map(|&(_, a)| a);
            assert_eq!(got, want, "row {i}");
        }
        // The touched path learns its new time, with no step.
        assert_eq!(p.touched.len(), 1);
        assert_eq!(p.touched[0].path(), "p3");
        assert!(p.pending.is_empty() && p.unresolved.is_empty());
    }

    #[test]
    fn conflicts_are_marked_and_manual_keeps_both() {
        let rows = [(Some(A), Some((B, 1)), Some((C, 2)))];
        let (mut it, names) = items(&rows);
        let p = plan(
            &mut it,
            &names,
            &Base::new(),
            &[],
            &HashSet::new(),
            Direction::Bidirectional,
            Strategy::Manual,
            0,
        );
        assert_eq!(p.steps, [(0, KeepBoth)]);
        assert!(it[0].conflict);
    }

    /// Under `newest`, a time more than 5 minutes ahead of this host's clock decides nothing:
    /// both versions are kept, as under `manual`.
    #[test]
    fn a_time_from_the_future_is_not_trusted_by_newest() {
        let now = 1_000_000_000_000;
        let future = now + SKEW_LIMIT_NS + 1;
        let rows = [
            (Some(A), Some((B, future)), Some((C, now))),
            (Some(A), Some((B, now + 1)), Some((C, now))),
            (Some(A), Some((B, future)), Some((A, now))), // no conflict: it is copied
        ];
        let (mut it, names) = items(&rows);
        let p = plan(
            &mut it,
            &names,
            &Base::new(),
            &[],
            &HashSet::new(),
            Direction::Bidirectional,
            Strategy::Newest,
            now,
        );
        assert_eq!(
            p.steps,
            [(0, KeepBoth), (1, CopyToRemote), (2, CopyToRemote)]
        );
        assert!(it[0].conflict);
    }

    #[test]
    fn one_way_directions_list_the_other_sides_changes_as_pending() {
        let rows = [
            (Some(A), Some((A, 1)), Some((B, 1))),
            (Some(A), Some((B, 1)), Some((A, 1))),
        ];
        let p = decided(&rows, Direction::Push, Strategy::Newest);
        assert_eq!(p.steps, [(1, CopyToRemote)]);
        assert_eq!(p.pending.len(), 1);
        assert_eq!(p.pending[0].path, "p0");
        let p = decided(&rows, Direction::Pull, Strategy::Newest);
        assert_eq!(p.steps, [(0, CopyToLocal)]);
        assert_eq!(p.pending[0].path, "p1");
    }

    fn kept(id: i64, path: &str, local: Digest, remote: Digest) -> ConflictRow {
        ConflictRow {
            id,
            target: "t".into(),
            path: path.into(),
            local_hash: local,
            remote_hash: remote,
            copy: format!("{path}.conflict"),
            detected_ms: 0,
            resolved_ms: None,
            resolution: None,
        }
    }

    /// Conflicts kept earlier: left alone while unchanged, settled by an edit of one side,
    /// superseded by edits of both, closed when gone or agreeing.
    #[test]
    fn kept_conflicts_are_left_settled_or_superseded() {
        let rows = [
            (Some(A), Some((B, 1)), Some((C, 1))),       // p0: as kept
            (Some(A), Some(([4; 32], 1)), Some((C, 1))), // p1: local edited since it was kept
            (Some(A), Some((B, 5)), Some((C, 1))),       // p2: both edited again since it was kept
        ];
        let (mut it, names) = items(&rows);
        let mut base = Base::new();
        base.insert(
            "gone-but-based".into(),
            BaseEntry {
                local: side(A),
                remote: side(A),
            },
        );
        let open = [
            kept(1, "p0", B, C),
            kept(2, "p1", B, C),
            kept(3, "p2", [4; 32], [5; 32]),
            kept(4, "gone-but-based", B, C),
            kept(5, "nowhere", B, C),
            kept(6, "unreadable", B, C),
        ];
        let held: HashSet<&str> = ["unreadable"].into_iter().collect();
        let p = plan(
            &mut it,
            &names,
            &base,
            &open,
            &held,
            Direction::Bidirectional,
            Strategy::Newest,
            0,
        );
        assert_eq!(p.unresolved, ["p0"]);
        // p1: the local side differs from the kept B, the remote is still C: the edit wins.
        assert_eq!(it[1].closes.as_deref(), Some(&(2, Closed::Edited)));
        assert!(p.steps.contains(&(1, CopyToRemote)));
        assert!(!it[1].conflict);
        // p2: both differ from what was kept: a new conflict that supersedes the record.
        assert_eq!(it[2].closes.as_deref(), Some(&(3, Closed::Superseded)));
        assert!(it[2].conflict);
        // Not listed: settled (in the base: edited; nowhere: gone); a held path is left open.
        let mut closing = p.closing.clone();
        closing.sort();
        assert_eq!(closing, [(4, Closed::Edited), (5, Closed::Gone)]);
    }

    /// A chmod alone: the side that changed gives its mode to the other, as the direction
    /// allows; a base recorded without modes only learns them.
    #[test]
    fn the_side_whose_mode_changed_gives_it() {
        use Direction::*;
        let m = |mode| Meta { mode, ..meta(1) };
        let base = |l, r| BaseEntry {
            local: SideState { mode: l, ..side(A) },
            remote: SideState { mode: r, ..side(A) },
        };
        let cases = [
            (
                base(0o644, 0o644),
                0o600,
                0o644,
                Bidirectional,
                Some(ChmodRemote),
            ),
            (
                base(0o644, 0o644),
                0o644,
                0o755,
                Bidirectional,
                Some(ChmodLocal),
            ),
            // both changed: the narrower; neither holding the other: what both allow
            (
                base(0o644, 0o644),
                0o600,
                0o755,
                Bidirectional,
                Some(ChmodRemote),
            ),
            (
                base(0o644, 0o644),
                0o755,
                0o600,
                Bidirectional,
                Some(ChmodLocal),
            ),
            (
                base(0o644, 0o644),
                0o640,
                0o604,
                Bidirectional,
                Some(ChmodBoth),
            ),
            // created apart with other modes (the base has both as they are): the narrower
            (
                base(0o600, 0o644),
                0o600,
                0o644,
                Bidirectional,
                Some(ChmodRemote),
            ),
            (
                base(0o640, 0o604),
                0o640,
                0o604,
                Bidirectional,
                Some(ChmodBoth),
            ),
            (base(0o644, 0o644), 0o600, 0o755, Pull, Some(ChmodLocal)),
            (base(0o640, 0o604), 0o640, 0o604, Push, Some(ChmodRemote)),
            (
                base(0o644, 0o644),
                0o644,
                0o755,
                Push,
                Some(Pending(Side::Remote)),
            ),
            (base(0o644, 0o644), 0o600, 0o600, Bidirectional, None),
            (base(0, 0), 0o600, 0o644, Bidirectional, None),
        ];
        for (i, (b, l, r, d, want)) in cases.into_iter().enumerate() {
            assert_eq!(chmod(&b, &m(l), &m(r), d), want, "case {i}");
        }
    }

    /// A plan of `deletions` deletions and a copy.
    fn deleting(deletions: usize) -> Vec<(usize, Action)> {
        (0..deletions)
            .map(|i| {
                (
                    i,
                    if i % 2 == 0 {
                        DeleteLocal
                    } else {
                        DeleteRemote
                    },
                )
            })
            .chain(std::iter::once((deletions, CopyToLocal)))
            .collect()
    }

    #[test]
    fn mass_deletion_stops_above_the_share_and_the_floor() {
        let cases = [
            // (deletions, tracked, max_delete, floor, stopped)
            (3, 6, 0.5, 0, false), // 3 of 6 is not more than half
            (3, 5, 0.5, 0, true),
            (3, 10, 0.2, 0, true),
            (0, 0, 0.0, 0, false), // nothing tracked: nothing to guard
            (3, 100, 0.0, 0, true),
            (0, 100, 0.0, 0, false), // no deletion: nothing to stop
            // The floor: at or below it, never; above it, the share.
            (2, 3, 0.5, 10, false),
            (10, 10, 0.5, 10, false),
            (11, 12, 0.5, 10, true),
            (11, 30, 0.5, 10, false),
            (16, 30, 0.5, 10, true),
            (1, 1, 0.0, 1, false),
            (2, 2, 0.0, 1, true),
        ];
        for (deletions, tracked, share, floor, stopped) in cases {
            let s = mass_deletion(&deleting(deletions), tracked, &[], share, floor, None, "t");
            assert_eq!(
                s.is_some(),
                stopped,
                "{deletions} of {tracked}, {share}, floor {floor}"
            );
            if let Some(s) = s {
                assert_eq!(s.refusal, Some(Refusal::MaxDelete));
                let why = &s.reason;
                assert!(why.contains(&format!("{deletions} of {tracked}")), "{why}");
                assert!(why.contains(&format!("({floor} files)")), "{why}");
            }
        }
    }

    /// `--allow-deletes N`: up to N go whatever the share; more stop, saying how many.
    #[test]
    fn allow_deletes_lets_up_to_n_through() {
        let cases = [
            // (deletions, tracked, allowed, stopped)
            (20, 20, 20, false), // every file, allowed
            (20, 20, 25, false),
            (20, 20, 19, true),
            (3, 100, 2, true), // below the guard, but more than allowed
            (0, 10, 0, false),
            (1, 10, 0, true),
        ];
        for (deletions, tracked, allowed, stopped) in cases {
            let s = mass_deletion(
                &deleting(deletions),
                tracked,
                &[],
                0.5,
                10,
                Some(allowed),
                "t",
            );
            assert_eq!(s.is_some(), stopped, "{deletions} of {tracked}, {allowed}");
            if let Some(s) = s {
                assert_eq!(s.refusal, Some(Refusal::MaxDelete));
                let want = format!(
                    "would delete {deletions} files, more than `--allow-deletes {allowed}`"
                );
                assert!(s.reason.contains(&want), "{}", s.reason);
            }
        }
    }

    /// The refusal says how to see the plan and how to let this one run through, and never
    /// suggests something that deletes without showing what.
    #[test]
    fn the_refusal_suggests_a_dry_run_and_allow_deletes() {
        let s = mass_deletion(&deleting(12), 20, &[], 0.5, 10, None, "icloud")
            .unwrap_or_else(|| panic!("not stopped"));
        let why = s.reason;
        assert!(why.contains("`metasystem sync icloud --dry-run`"), "{why}");
        assert!(
            why.contains("`metasystem sync icloud --allow-deletes 12`"),
            "{why}"
        );
        assert!(!why.contains("raise max_delete"), "{why}");
        assert!(!why.contains("and run `metasystem sync icloud`"), "{why}");
    }

    /// A listed path emptied at once (an unmounted drive's bare mountpoint) stops the run even
    /// when its files are a small share of all that is synced; a few deletions under it, or
    /// deletions let through, do not.
    #[test]
    fn a_listed_path_emptied_at_once_is_a_mass_deletion() {
        let listed = [("shared".to_string(), 15, 15), ("docs".to_string(), 0, 20)];
        let s = mass_deletion(&deleting(15), 35, &listed, 0.5, 10, None, "t")
            .expect("15 of the 15 files under shared");
        assert!(
            s.reason
                .contains("15 of the 15 synced files under `shared`"),
            "{}",
            s.reason
        );
        let few = [("shared".to_string(), 8, 15)];
        assert!(mass_deletion(&deleting(8), 35, &few, 0.5, 10, None, "t").is_none());
        let half = [("shared".to_string(), 11, 30)];
        assert!(mass_deletion(&deleting(11), 50, &half, 0.5, 10, None, "t").is_none());
        assert!(mass_deletion(&deleting(15), 35, &listed, 0.5, 10, Some(15), "t").is_none());
    }
}
