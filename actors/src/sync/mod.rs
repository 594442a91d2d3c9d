//! Sync targets: a primary folder (the state dir by default) and a target folder (a cloud
//! folder, an external drive) kept the same without ever losing data.
//!
//! - [`classify`]: the three-way decision against the base (pure);
//! - [`scan`]: one side's listing and the quick check's view of each file;
//! - [`fsops`]: hashing, temp-file copies, installs that re-check the destination, backups;
//! - [`snapshot`]: consistent copies of live SQLite databases (`VACUUM INTO` + integrity_check);
//! - [`engine`]: one run (guards, scan, decide, apply, commit the base in batches);
//! - [`lock`]: the target's lock, one run or change at a time across hosts, kept fresh;
//! - [`resolve`]: an operator's resolution of a kept conflict (`conflicts resolve`);
//! - [`verify`]: integrity and row counts of every database in every location (`verify`);
//! - [`backups`]: a target's backups listed, and one restored into the primary;
//! - [`watch`]: `watch = true`: the primary watched, changes turned into runs (debounced, at
//!   most one per `min_interval`);
//! - [`actor`]: the `sync_target` actor (schedule, forced runs, records, breaker, alerts).

pub mod actor;
pub mod backups;
pub mod classify;
pub mod engine;
pub mod fsops;
pub mod lock;
pub mod nesting;
pub mod resolve;
pub mod scan;
pub mod select;
pub mod snapshot;
pub mod verify;
pub mod watch;

pub use actor::{SyncTargetActor, SyncTargetArgs, SyncTargetMessage, SyncTargets, TargetStatus};
pub use classify::{Direction, Strategy};
pub use engine::{Outcome, Progress, Refusal, RunOptions, RunReport, SyncSpec};
pub use globset;
pub use resolve::{Keep, Resolution};
pub use scan::Selection;
