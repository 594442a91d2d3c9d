//! Sync targets: a primary folder (the state dir by default) and a target folder (a cloud
//! folder, an external drive) kept the same without ever losing data.
//!
//! - [`classify`]: the three-way decision against the base (pure);
//! - [`scan`]: one side's listing and the quick check's view of each file;
//! - [`fsops`]: hashing, temp-file copies, installs that re-check the destination, backups;
//! - [`snapshot`]: consistent copies of live SQLite databases (`VACUUM INTO` + integrity_check);
//! - [`engine`]: one run, as phases with typed values between them: [`guards`] (offline,
//!   marker, lock) → [`listings`] (both sides) → [`items`] (joined with the base) and
//!   [`hashing`] → [`plan`] (pure decisions, the guard on mass deletion) → [`apply`] (chunks,
//!   [`databases`] last) with [`record`] (the base committed as files become durable); what a
//!   run did is its [`report`];
//! - [`lock`]: the target's lock, one run or change at a time across hosts, kept fresh;
//! - [`resolve`]: an operator's resolution of a kept conflict (`conflicts resolve`);
//! - [`verify`]: integrity and row counts of every database in every location (`verify`);
//! - [`backups`]: a target's backups listed, and one restored into the primary;
//! - [`watch`]: `watch = true`: the primary watched, changes turned into runs (debounced, at
//!   most one per `min_interval`);
//! - [`actor`]: the `sync_target` actor (schedule, forced runs, records, breaker, alerts).

pub mod actor;
mod apply;
pub mod backup_name;
pub mod backups;
pub mod classify;
mod databases;
pub mod engine;
pub mod error;
pub mod fsops;
mod guards;
mod hashing;
mod items;
mod listings;
pub mod lock;
pub mod longfs;
pub mod names;
pub mod nesting;
mod plan;
mod record;
mod renames;
pub mod report;
pub mod resolve;
pub mod scan;
pub mod select;
mod shapes;
pub mod snapshot;
pub mod temps;
pub mod verify;
pub mod watch;

pub use actor::{SyncTargetActor, SyncTargetArgs, SyncTargetMessage, SyncTargets, TargetStatus};
pub use classify::{Direction, Strategy};
pub use engine::{Outcome, Progress, Refusal, RunOptions, RunReport, SyncSpec};
pub use error::OpError;
pub use globset;
pub use guards::{history_of as marker_history, nonce_of as marker_nonce};
pub use resolve::{Keep, Resolution};
pub use scan::Selection;
