//! The three-way decision (Unison's): each side of a path is classified against the last state
//! both sides agreed on (the base), and the pair of classes decides what to do. Pure: no
//! filesystem, no clock; the engine resolves hashes before it asks.

use std::cmp::Ordering;

/// A 32-byte SHA-256 digest.
pub type Digest = [u8; 32];

/// What one side of a path looks like now, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub hash: Digest,
    /// Modification time, nanoseconds since the Unix epoch (for `newest`).
    pub mtime_ns: i64,
    /// The time is more than [`SKEW_LIMIT_NS`] ahead of this host's clock: not trusted by
    /// `newest` (a clock far ahead would win every conflict and overwrite newer work).
    pub future: bool,
}

/// How far ahead of this host's clock a modification time may be and still be trusted.
pub const SKEW_LIMIT_NS: i64 = 5 * 60 * 1_000_000_000;

/// One side of a path against the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not in the base and not on this side.
    Absent,
    /// Not in the base, on this side now.
    Created(Seen),
    /// In the base and the same contents.
    Unchanged,
    /// In the base, different contents now.
    Modified(Seen),
    /// In the base, gone from this side.
    Deleted,
}

impl Class {
    /// `base`: this side's hash when both sides last agreed (`None`: the path is not in the
    /// base); `now`: this side now (`None`: no such file).
    pub fn of(base: Option<Digest>, now: Option<Seen>) -> Class {
        match (base, now) {
            (None, None) => Class::Absent,
            (None, Some(s)) => Class::Created(s),
            (Some(_), None) => Class::Deleted,
            (Some(b), Some(s)) if b == s.hash => Class::Unchanged,
            (Some(_), Some(s)) => Class::Modified(s),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Absent => "absent",
            Class::Created(_) => "created",
            Class::Unchanged => "unchanged",
            Class::Modified(_) => "modified",
            Class::Deleted => "deleted",
        }
    }
}

/// Which way changes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Changes of the primary go to the target; the target's own changes are left alone
    /// (reported as pending), and a conflict is decided for the primary.
    Push,
    /// The mirror image of `Push`.
    Pull,
    /// Both ways; conflicts by the strategy.
    Bidirectional,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
            Direction::Bidirectional => "bidirectional",
        }
    }
}

/// How a conflict (both sides changed to different contents) is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The later modification time wins; equal times: the greater hash (the same answer on
    /// every host, whichever side it calls local).
    Newest,
    Local,
    Remote,
    /// Keep both: the remote version is saved beside the local one as a conflict copy, and
    /// the path is left alone until the conflict is resolved.
    Manual,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Newest => "newest",
            Strategy::Local => "local",
            Strategy::Remote => "remote",
            Strategy::Manual => "manual",
        }
    }
}

/// The winner of a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// What to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (and nothing to record).
    Nothing,
    /// Both sides hold the same contents already: record them as the base.
    Agree,
    /// Both sides are gone: drop the path from the base.
    Forget,
    CopyToRemote,
    CopyToLocal,
    /// Back up, then delete the remote file.
    DeleteRemote,
    DeleteLocal,
    /// Both changed differently and the strategy is manual: keep both.
    KeepBoth,
    /// A change on the side this direction does not take from: left alone, reported pending.
    Pending(Side),
    /// The contents are the same and one side's permission bits changed (a chmod): the
    /// remote file gets the local one's mode.
    ChmodRemote,
    /// The mirror image: the local file gets the remote one's mode.
    ChmodLocal,
    /// The contents are the same and the modes differ with neither side alone having changed
    /// them (both did, or they were created apart): both get only the bits both allow
    /// (`local & remote`), never the wider of the two.
    ChmodBoth,
}

/// The decision, and whether it settled a conflict (for the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub conflict: bool,
}

fn plain(action: Action) -> Decision {
    Decision {
        action,
        conflict: false,
    }
}

/// The winner of a conflict between `local` and `remote` under `strategy` (`None`: manual).
pub fn winner(strategy: Strategy, local: Seen, remote: Seen) -> Option<Side> {
    match strategy {
        Strategy::Local => Some(Side::Local),
        Strategy::Remote => Some(Side::Remote),
        Strategy::Manual => None,
        // A time from the future decides nothing: both versions are kept.
        Strategy::Newest if local.future || remote.future => None,
        Strategy::Newest => Some(match local.mtime_ns.cmp(&remote.mtime_ns) {
            Ordering::Greater => Side::Local,
            Ordering::Less => Side::Remote,
            Ordering::Equal => {
                if local.hash >= remote.hash {
                    Side::Local
                } else {
                    Side::Remote
                }
            }
        }),
    }
}

/// The decision for one path. Modification beats deletion (a deleted file whose other copy
/// changed comes back); both sides changed to the same contents is agreement, not a conflict.
pub fn decide(local: Class, remote: Class, direction: Direction, strategy: Strategy) -> Decision {
    use Class::*;
    let wanted = match (local, remote) {
        (Absent, Absent) | (Unchanged, Unchanged) => return plain(Action::Nothing),
        (Deleted, Deleted) => return plain(Action::Forget),
        (Created(l), Created(r)) | (Modified(l), Modified(r)) => {
            if l.hash == r.hash {
                return plain(Action::Agree);
            }
            // A conflict: the direction decides for its side, else the strategy.
            let side = match direction {
                Direction::Push => Some(Side::Local),
                Direction::Pull => Some(Side::Remote),
                Direction::Bidirectional => winner(strategy, l, r),
            };
            let action = match side {
                Some(Side::Local) => Action::CopyToRemote,
                Some(Side::Remote) => Action::CopyToLocal,
                None => Action::KeepBoth,
            };
            return Decision {
                action,
                conflict: true,
            };
        }
        (Created(_), Absent) | (Modified(_), Unchanged) | (Modified(_), Deleted) => {
            Action::CopyToRemote
        }
        (Absent, Created(_)) | (Unchanged, Modified(_)) | (Deleted, Modified(_)) => {
            Action::CopyToLocal
        }
        (Deleted, Unchanged) => Action::DeleteRemote,
        (Unchanged, Deleted) => Action::DeleteLocal,
        // A base and no base at once cannot happen: both sides share one base.
        (Absent | Created(_), _) | (_, Absent | Created(_)) => return plain(Action::Nothing),
    };
    // One side changed: the direction says whether that side's changes are taken.
    let from = match wanted {
        Action::CopyToRemote | Action::DeleteRemote => Side::Local,
        _ => Side::Remote,
    };
    let taken = match direction {
        Direction::Bidirectional => true,
        Direction::Push => from == Side::Local,
        Direction::Pull => from == Side::Remote,
    };
    plain(if taken { wanted } else { Action::Pending(from) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Digest = [1; 32];
    const B: Digest = [2; 32];
    const C: Digest = [3; 32];

    fn seen(hash: Digest, mtime_ns: i64) -> Option<Seen> {
        Some(Seen {
            hash,
            mtime_ns,
            future: false,
        })
    }

    fn bi(l: Class, r: Class, s: Strategy) -> Decision {
        decide(l, r, Direction::Bidirectional, s)
    }

    #[test]
    fn classes_against_the_base() {
        assert_eq!(Class::of(None, None), Class::Absent);
        assert!(matches!(Class::of(None, seen(A, 1)), Class::Created(_)));
        assert_eq!(Class::of(Some(A), None), Class::Deleted);
        assert_eq!(Class::of(Some(A), seen(A, 99)), Class::Unchanged); // touched only
        assert!(matches!(Class::of(Some(A), seen(B, 1)), Class::Modified(_)));
    }

    /// Every reachable pair of classes, bidirectional, newest.
    #[test]
    fn the_whole_matrix() {
        let s = Strategy::Newest;
        let created = |h| {
            Class::Created(Seen {
                hash: h,
                mtime_ns: 5,
                future: false,
            })
        };
        let modified = |h| {
            Class::Modified(Seen {
                hash: h,
                mtime_ns: 5,
                future: false,
            })
        };
        use Action::*;
        use Class::{Absent, Deleted, Unchanged};
        let cases = [
            // no base
            (Absent, Absent, Nothing, false),
            (created(A), Absent, CopyToRemote, false),
            (Absent, created(A), CopyToLocal, false),
            (created(A), created(A), Agree, false),
            // with a base
            (Unchanged, Unchanged, Nothing, false),
            (modified(B), Unchanged, CopyToRemote, false),
            (Unchanged, modified(B), CopyToLocal, false),
            (modified(B), modified(B), Agree, false),
            (Deleted, Unchanged, DeleteRemote, false),
            (Unchanged, Deleted, DeleteLocal, false),
            (Deleted, Deleted, Forget, false),
            (Deleted, modified(B), CopyToLocal, false),
            (modified(B), Deleted, CopyToRemote, false),
        ];
        for (l, r, want, conflict) in cases {
            let d = bi(l, r, s);
            assert_eq!(d.action, want, "{} / {}", l.name(), r.name());
            assert_eq!(d.conflict, conflict, "{} / {}", l.name(), r.name());
        }
        // Different contents on both sides: conflicts.
        assert!(bi(created(A), created(B), s).conflict);
        assert!(bi(modified(B), modified(C), s).conflict);
    }

    #[test]
    fn each_strategy_decides_a_conflict() {
        let l = Class::Modified(Seen {
            hash: B,
            mtime_ns: 200,
            future: false,
        });
        let r = Class::Modified(Seen {
            hash: C,
            mtime_ns: 100,
            future: false,
        });
        assert_eq!(bi(l, r, Strategy::Newest).action, Action::CopyToRemote);
        assert_eq!(bi(r, l, Strategy::Newest).action, Action::CopyToLocal);
        assert_eq!(bi(l, r, Strategy::Local).action, Action::CopyToRemote);
        assert_eq!(bi(l, r, Strategy::Remote).action, Action::CopyToLocal);
        assert_eq!(bi(l, r, Strategy::Manual).action, Action::KeepBoth);
    }

    /// Equal times: the same winner whichever host calls which side local.
    #[test]
    fn newest_ties_are_broken_the_same_way_on_every_host() {
        let x = Seen {
            hash: B,
            mtime_ns: 7,
            future: false,
        };
        let y = Seen {
            hash: C,
            mtime_ns: 7,
            future: false,
        };
        assert_eq!(winner(Strategy::Newest, x, y), Some(Side::Remote));
        assert_eq!(winner(Strategy::Newest, y, x), Some(Side::Local));
    }

    #[test]
    fn one_way_directions_leave_the_other_sides_changes_pending() {
        let m = Class::Modified(Seen {
            hash: B,
            mtime_ns: 1,
            future: false,
        });
        let push = |l, r| decide(l, r, Direction::Push, Strategy::Newest).action;
        let pull = |l, r| decide(l, r, Direction::Pull, Strategy::Newest).action;
        assert_eq!(push(m, Class::Unchanged), Action::CopyToRemote);
        assert_eq!(push(Class::Unchanged, m), Action::Pending(Side::Remote));
        assert_eq!(
            push(Class::Unchanged, Class::Deleted),
            Action::Pending(Side::Remote)
        );
        assert_eq!(push(Class::Deleted, Class::Unchanged), Action::DeleteRemote);
        assert_eq!(pull(Class::Unchanged, m), Action::CopyToLocal);
        assert_eq!(pull(m, Class::Unchanged), Action::Pending(Side::Local));
        // A conflict goes the direction's way whatever the strategy.
        let n = Class::Modified(Seen {
            hash: C,
            mtime_ns: 9,
            future: false,
        });
        assert_eq!(
            decide(m, n, Direction::Push, Strategy::Manual).action,
            Action::CopyToRemote
        );
        assert_eq!(
            decide(m, n, Direction::Pull, Strategy::Manual).action,
            Action::CopyToLocal
        );
    }

    /// A clock far ahead on one side does not make its stale copy win: only changes against
    /// the base move files, and an unchanged file's time is irrelevant.
    #[test]
    fn clock_skew_does_not_move_an_unchanged_file() {
        let local = Class::of(Some(A), seen(B, 1_000)); // edited here, clock right
        let remote = Class::of(Some(A), seen(A, i64::MAX / 2)); // untouched, clock far ahead
        assert_eq!(
            bi(local, remote, Strategy::Newest).action,
            Action::CopyToRemote
        );
    }
}
