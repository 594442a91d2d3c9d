//! What a run reports: its outcome, why it stopped, and what it did path by path (copies,
//! deletions, conflicts, what it left for later). [`Stop`] is how a phase of a run ends it
//! early.

use serde::{Deserialize, Serialize};

use super::classify::{Action, Class, Direction, Side, Strategy};
use super::engine::{RunOptions, SyncSpec};
use super::scan::Meta;

/// A run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Done but for paths left on every run: a path deferred on [`PARTIAL_AFTER`] runs in a
    /// row (it never stops changing, or stays in use).
    Partial,
    /// Not run: the target is offline (or a run was not due).
    Skipped,
    Error,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Skipped => "skipped",
            Outcome::Error => "error",
        }
    }
}

/// Runs in a row that leave the same path deferred before the run is `partial` (and warns).
pub const PARTIAL_AFTER: u32 = 3;

/// Why a run stopped before it changed anything, when it is worth an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The target is there but its marker is gone: not the folder synced before.
    MarkerMissing,
    /// More deletions than `max_delete` allows.
    MaxDelete,
    /// Another run (this host or another) holds the target's lock.
    Locked,
}

/// A conflict met by a run and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictReport {
    pub path: String,
    /// local | remote | both (kept both: the remote version beside it as `copy`).
    pub kept: String,
    pub copy: Option<String>,
}

/// A planned or applied action on a path (listed by dry runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub path: String,
    pub action: String,
    pub local: String,
    pub remote: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub target: String,
    pub outcome: Outcome,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    pub refusal: Option<Refusal>,
    pub dry_run: bool,
    /// A first sync (a new target, or a new or restored marker): a union of both sides
    /// against no base, deleting nothing.
    #[serde(default)]
    pub first_sync: bool,
    pub direction: Direction,
    pub strategy: Strategy,
    pub local_files: usize,
    pub remote_files: usize,
    pub copied_to_remote: usize,
    pub copied_to_local: usize,
    pub deleted_remote: usize,
    pub deleted_local: usize,
    /// Paths found the same on both sides and recorded (no copy).
    pub agreed: usize,
    /// Permission bits set on the other side (a chmod alone).
    #[serde(default)]
    pub modes: usize,
    pub bytes: u64,
    pub backups: usize,
    pub backups_pruned: usize,
    pub conflicts: Vec<ConflictReport>,
    /// Conflicts kept earlier and not resolved yet (left alone).
    pub unresolved: Vec<String>,
    /// Changes the direction does not take (`push` leaves the target's own changes here).
    pub pending: Vec<Planned>,
    /// Left for the next run: changed while this one ran, or in use.
    pub deferred: Vec<(String, String)>,
    /// Files that failed (unreadable, no space, ...): the rest went on.
    pub errors: Vec<(String, String)>,
    /// Not synced: symlinks, placeholders, unreadable folders.
    pub skipped: Vec<(String, String)>,
    /// Case-only renames made on one side, made on the other: (old name, new name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed: Vec<(String, String)>,
    /// Names that differ only by case or Unicode normalisation: reported, not merged.
    pub collisions: Vec<Vec<String>>,
    /// Sides whose file system has no stable inode numbers (FAT, exFAT, FUSE, SMB): the
    /// quick check cannot be trusted there, so every file is hashed on every run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashed_every_run: Vec<String>,
    /// Live databases pushed as snapshots: (file, what happened).
    pub snapshots: Vec<(String, String)>,
    /// Dry runs: what would be done. A run let through the guard on mass deletion
    /// (`--allow-deletes`): the deletions it planned (made, but for those in `errors`).
    pub planned: Vec<Planned>,
    pub took_ms: u64,
    /// The run's ID: the stamp (`YYYYMMDD-HHMMSS`, UTC) its changes were made at, which every
    /// backup it took carries in its name (`backups restore --run ID` puts them all back).
    /// Set for a run that applied steps; none for a dry run or one that changed nothing.
    #[serde(default)]
    pub run_id: Option<String>,
}

impl RunReport {
    /// The report of a run that did not happen (skipped for `reason`).
    pub fn not_run(spec: &SyncSpec, opts: &RunOptions, reason: String) -> Self {
        RunReport::stopped(spec, opts, Stop::skipped(reason, None))
    }

    /// A run that could not start: what it needed failed (the store could not be read).
    pub fn failed(spec: &SyncSpec, opts: &RunOptions, reason: String) -> Self {
        RunReport::stopped(spec, opts, Stop::error(reason))
    }

    /// A run stopped before its first phase, with `opts`' direction and strategy.
    fn stopped(spec: &SyncSpec, opts: &RunOptions, stop: Stop) -> Self {
        RunReport::new(
            spec,
            opts.direction.unwrap_or(spec.direction),
            opts.strategy.unwrap_or(spec.strategy),
            opts.dry_run,
        )
        .stop(stop)
    }

    pub(super) fn new(
        spec: &SyncSpec,
        direction: Direction,
        strategy: Strategy,
        dry_run: bool,
    ) -> Self {
        RunReport {
            target: spec.name.clone(),
            outcome: Outcome::Success,
            reason: None,
            refusal: None,
            dry_run,
            first_sync: false,
            direction,
            strategy,
            local_files: 0,
            remote_files: 0,
            copied_to_remote: 0,
            copied_to_local: 0,
            deleted_remote: 0,
            deleted_local: 0,
            agreed: 0,
            modes: 0,
            bytes: 0,
            backups: 0,
            backups_pruned: 0,
            conflicts: Vec::new(),
            unresolved: Vec::new(),
            pending: Vec::new(),
            deferred: Vec::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            renamed: Vec::new(),
            collisions: Vec::new(),
            hashed_every_run: Vec::new(),
            snapshots: Vec::new(),
            planned: Vec::new(),
            took_ms: 0,
            run_id: None,
        }
    }

    /// Files copied or deleted.
    pub fn files_changed(&self) -> usize {
        self.copied_to_remote + self.copied_to_local + self.deleted_remote + self.deleted_local
    }

    /// The report of a run that ended early.
    pub(super) fn stop(mut self, stop: Stop) -> Self {
        self.outcome = stop.outcome;
        self.reason = Some(stop.reason);
        self.refusal = stop.refusal;
        self
    }
}

/// Why a run ended before its end: the outcome and reason it reports, and the refusal when it
/// is worth an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub outcome: Outcome,
    pub reason: String,
    pub refusal: Option<Refusal>,
}

impl Stop {
    /// The run failed.
    pub fn error(reason: impl Into<String>) -> Stop {
        Stop {
            outcome: Outcome::Error,
            reason: reason.into(),
            refusal: None,
        }
    }

    /// The run did not happen (offline, locked).
    pub fn skipped(reason: impl Into<String>, refusal: Option<Refusal>) -> Stop {
        Stop {
            outcome: Outcome::Skipped,
            reason: reason.into(),
            refusal,
        }
    }

    /// The run refused to go on (nothing was changed).
    pub fn refused(reason: impl Into<String>, refusal: Refusal) -> Stop {
        Stop {
            outcome: Outcome::Error,
            reason: reason.into(),
            refusal: Some(refusal),
        }
    }
}

pub(super) fn fmt_side(m: Option<Meta>) -> String {
    match m {
        Some(m) => format!("{} bytes", m.size),
        None => "absent".into(),
    }
}

pub(super) fn action_name(a: Action) -> &'static str {
    match a {
        Action::Nothing => "nothing",
        Action::Agree => "record (same on both sides)",
        Action::Forget => "forget (deleted on both sides)",
        Action::CopyToRemote => "copy to the target",
        Action::CopyToLocal => "copy to the primary",
        Action::DeleteRemote => "delete on the target (backed up)",
        Action::DeleteLocal => "delete on the primary (backed up)",
        Action::KeepBoth => "conflict: keep both",
        Action::Pending(Side::Local) => "pending on the primary",
        Action::ChmodRemote => "set the permissions on the target",
        Action::ChmodLocal => "set the permissions on the primary",
        Action::ChmodBoth => "narrow the permissions on both sides to what both allow",
        Action::Pending(Side::Remote) => "pending on the target",
    }
}

pub(super) fn planned(rel: &str, a: Action, lc: Class, rc: Class) -> Planned {
    Planned {
        path: rel.to_string(),
        action: action_name(a).to_string(),
        local: lc.name().to_string(),
        remote: rc.name().to_string(),
    }
}
