//! The commands of the control protocol: one type per command, each tied to the type of its
//! answer by [`Request`].
//!
//! [`requests!`] at the bottom is the one list: it makes the wire enum [`Command`] (tagged by
//! `cmd`, so `{"cmd":"sync","target":"icloud"}` reads as `Command::Sync(Sync { .. })`), each
//! command's `cmd` name and read-only flag, and [`for_each_request!`], with which the daemon
//! generates its dispatch (`daemon::handle`) so a command listed here without a handler is a
//! compile error. The CLI and `top` send a command and decode `R::Response`
//! (`control::client::Connection::call`).
//!
//! Adding a command: a struct here, a line in the list, a `Handler` impl in the daemon.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::{
    AlertsResult, AnomaliesResult, BackupsResult, BreakerAction, BreakerRow, BreakersResult,
    ChaosRun, ChaosStatusResult, ChaosStopResult, ConflictsResult, EventsResult, HealResult,
    HealthResult, LogsResult, MetricsResult, ReloadResult, RetriesResult, Status as StatusResult,
    StreamItem, SyncResult, SyncStatusResult, Topic, TreeResult,
};
use metasystem_actors::sync::backups::{Restored, RestoredSet};
use metasystem_actors::sync::verify::VerifyReport;
use metasystem_actors::sync::Resolution;

/// A command of the control protocol and what it answers.
pub trait Request:
    Serialize + DeserializeOwned + Into<Command> + Clone + std::fmt::Debug + Send + 'static
{
    /// Its `cmd` on the wire.
    const NAME: &'static str;
    /// The `result` of a successful answer.
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// Whether it only reads (abandoning it half-way changes nothing).
    fn is_read_only(&self) -> bool;
}

/// The answer to `start`, `stop`, `restart` and `kill`. Starting what runs and stopping what
/// is stopped answer alike (like systemctl): done, nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub path: String,
    pub changed: bool,
    /// When nothing changed: the state it was already in (`running`, `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The answer to `shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShuttingDown {
    pub shutting_down: bool,
}

/// The answer to `alert_silence`: the silences in force after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silences {
    pub silences: Vec<super::protocol::Silence>,
}

/// Nodes by state, healthy or not, the store, the log, alerts waiting, breakers not closed,
/// probes failing, each sync target's last run ([`StatusResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}

/// Every node of the tree, and whether it is healthy ([`TreeResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {}

/// Starts the stopped child at `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub path: String,
}

/// Stops the child at `path` (it stays stopped until `start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    pub path: String,
}

/// Restarts the child at `path` (and what its supervisor's strategy restarts with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub path: String,
}

/// Chaos: crash the actor (its supervisor sees a failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    pub path: String,
}

/// Re-read the config and apply the difference; with `dry_run`, only say what would change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// One page of stored events ([`EventsResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Only events of the last this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
    /// Only events about this path and below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How many: the most recent this many (default 1,000; at most 1,000,000), oldest
    /// first; with `after`, the next this many after it. A reply holds one page: it
    /// says where the next one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Continue after this event id (`next.after` of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

/// Stops the daemon in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {}

/// Streams what happens from now on: an answer `{"subscribed": TOPIC}`, then one line per
/// item (`{"event": ...}`), `{"dropped": N}` when this client fell behind and lost the
/// N oldest, and `{"end": WHY}` before the daemon closes the stream. With `after`, the
/// events after that id come first, so nothing between a page and the stream is missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    pub topic: Topic,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

/// Metric summaries over the last `since_s` seconds (default a day): per series, per
/// metric, and for the whole system; only metric `name` when given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
}

/// Anomalies detected over the last `since_s` seconds (default a day), newest last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomalies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
}

/// Recent alert notifications with their delivery state and attempts, the silences, and
/// how many wait for delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Sends a test notification to a channel now (through the alerts actor); answers what
/// the channel said. The same path as `call PATH test channel=NAME` on the alerts actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    pub channel: String,
}

/// Silences alerts whose key matches `pattern` (a key, or a glob with `*`) for `for_s`
/// seconds; `for_s` 0 lifts the silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSilence {
    pub pattern: String,
    pub for_s: u64,
}

/// Every circuit breaker (state, counts, current wait) and the latest transitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakers {}

/// An operator's action on the breaker `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOp {
    pub name: String,
    pub op: BreakerAction,
}

/// Runs every probe now and answers their reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {}

/// Every probe's latest report, without running any check: what `metasystem probes` lists
/// and the dashboard (`top`) reads on each refresh.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {}

/// Forces a sync run of `target` (every target when absent), waits for it (after a run
/// in progress) and answers the reports ([`SyncResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// push | pull (default: the target's direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// newest | local | remote | manual (default: the target's strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// How long a run waits for its target's lock when another run (of this host or
    /// another) holds it, in ms (absent: skipped at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<u64>,
    /// Lets this run (of one `target`) through the guard on mass deletion: up to this many
    /// deletions, whatever `max_delete`; more stop it. Its report lists them (`planned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_deletes: Option<usize>,
}

/// The fleet: every host with a snapshot in the sync targets' `.metasystem-hosts/` (only
/// `target`'s when given), and this host live ([`crate::kinds::sync_hosts::HostsResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hosts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Every sync target: online or not, the last run, progress ([`SyncStatusResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncStatus {}

/// Conflicts the manual strategy kept ([`ConflictsResult`]): the open ones, or every one
/// with `all`; only `target`'s when given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflicts {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `PRAGMA integrity_check` and row counts of every SQLite database in every location
/// of every sync target: the primary's synced paths, the target's, its per-host
/// snapshots ([`VerifyReport`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {}

/// The backups of every sync target (only `target`'s when given), newest first
/// ([`BackupsResult`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backups {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Puts backup `name` (relative to its target's backups folder, as `backups` lists it)
/// back in the primary at its original path, through the target's actor ([`Restored`]).
/// `target` is needed only when several targets hold that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRestore {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Puts back in the primary every backup of run `run` (its ID, `YYYYMMDD-HHMMSS`, as
/// `sync` reports it and `backups` lists it; of a path's same-second duplicates the
/// newest), or for each original path its oldest backup taken at or after `since_unix_ms`
/// (ms since 1970; needs `target`): exactly one of the two. Each goes through the
/// target's actor as `backup_restore` does ([`RestoredSet`], each path's result). `target`
/// is needed when the run's ID is found in several targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRestoreRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_unix_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Settles the open conflict of `path` (relative to the primary) keeping `keep` (local |
/// remote | both), through the target's actor, after a run in progress ([`Resolution`]).
/// `target` is needed only when the path has open conflicts in several targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictResolve {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub keep: metasystem_actors::sync::Keep,
}

/// Self-heal actions of the last `since_s` seconds (default a day), newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
}

/// Retried operations ([`RetriesResult`]): per operation (only `op` when given), the
/// statistics of its runs of the last `since_s` seconds (default a week) and the schedule
/// they suggest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
}

/// An operation of the actor at `path`, handled by its kind (`src/kinds/`). Without `op`:
/// the kind's operations ([`super::protocol::OpsResult`]). What an operation answers is
/// its kind's business: JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The operation's arguments, a JSON object.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
}

/// The output of the managed process at `path`: its last `lines` lines (default 10, at
/// most 100,000, and at most 4 MiB) from its log files ([`LogsResult`]). With `follow`,
/// the connection becomes a stream, as `subscribe`: `{"subscribed": "logs"}`, the last
/// lines as one `{"log": TEXT}`, then each piece of output as it is read (across
/// restarts), `{"dropped": N}` when this client fell behind, `{"end": WHY}`. `stderr`:
/// its stderr, when the process logs it to a file of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr: bool,
}

/// Starts a chaos run in the daemon (at most one at a time): for `for_ms`, every
/// `every_min_ms..=every_max_ms` (default 5 s to 30 s) kill a random running actor
/// strictly under `path` (default `root`) and measure its recovery. Answers the run
/// ([`ChaosRun`]) at once; the run goes on whatever the client does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    #[serde(default = "root_path")]
    pub path: String,
    pub for_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_max_ms: Option<u64>,
    /// Makes the sequence of waits and choices reproducible; random when absent (the run
    /// says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn root_path() -> String {
    "root".to_string()
}

/// Ends the running chaos run: no more kills; recoveries being measured get a few
/// seconds. Answers [`ChaosStopResult`] once the report is made (or after those seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosStop {}

/// The running chaos run, else the last one since the daemon started
/// ([`ChaosStatusResult`]). Kills numbered from `from` on (at most 1,000); without it the
/// last 1,000.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
}

/// Makes [`Command`] and the [`Request`] impls from the list.
macro_rules! requests {
    ($($variant:ident ($ty:ty) = $name:literal => $response:ty, read_only: $ro:expr;)+) => {
        /// A request's command, as the `cmd` tag and the command's fields.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        pub enum Command {
            $($variant($ty)),+
        }

        impl Command {
            /// Every `cmd`, in the list's order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The `cmd` name, for messages.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => $name),+
                }
            }

            /// Whether the command only reads (abandoning it half-way changes nothing).
            pub fn is_read_only(&self) -> bool {
                match self {
                    $(Command::$variant(r) => r.is_read_only()),+
                }
            }
        }

        $(
            impl Request for $ty {
                const NAME: &'static str = $name;
                type Response = $response;
                fn is_read_only(&self) -> bool {
                    let read_only: fn(&Self) -> bool = $ro;
                    read_only(self)
                }
            }

            impl From<$ty> for Command {
                fn from(r: $ty) -> Command {
                    Command::$variant(r)
                }
            }
        )+
    };
}

/// The one list of commands: `Variant(Type) = "cmd" => Response, read_only: fn`. Expanded
/// here by `requests!`, and by the daemon's dispatch (`daemon::handle`).
macro_rules! with_requests {
    ($callback:ident) => {
        $callback! {
            Status(Status) = "status" => StatusResult, read_only: |_| true;
            Tree(Tree) = "tree" => TreeResult, read_only: |_| true;
            Start(Start) = "start" => Done, read_only: |_| false;
            Stop(Stop) = "stop" => Done, read_only: |_| false;
            Restart(Restart) = "restart" => Done, read_only: |_| false;
            Kill(Kill) = "kill" => Done, read_only: |_| false;
            Reload(Reload) = "reload" => ReloadResult, read_only: |r| r.dry_run;
            Events(Events) = "events" => EventsResult, read_only: |_| true;
            Shutdown(Shutdown) = "shutdown" => ShuttingDown, read_only: |_| false;
            Subscribe(Subscribe) = "subscribe" => StreamItem, read_only: |_| false;
            Metrics(Metrics) = "metrics" => MetricsResult, read_only: |_| true;
            Anomalies(Anomalies) = "anomalies" => AnomaliesResult, read_only: |_| true;
            Alerts(Alerts) = "alerts" => AlertsResult, read_only: |_| true;
            AlertTest(AlertTest) = "alert_test" => metasystem_actors::alerts::actor::TestReport, read_only: |_| false;
            AlertSilence(AlertSilence) = "alert_silence" => Silences, read_only: |_| false;
            Breakers(Breakers) = "breakers" => BreakersResult, read_only: |_| true;
            BreakerOp(BreakerOp) = "breaker_op" => BreakerRow, read_only: |_| false;
            Health(Health) = "health" => HealthResult, read_only: |_| false;
            Probes(Probes) = "probes" => HealthResult, read_only: |_| true;
            Sync(Sync) = "sync" => SyncResult, read_only: |r| r.dry_run;
            SyncStatus(SyncStatus) = "sync_status" => SyncStatusResult, read_only: |_| true;
            Conflicts(Conflicts) = "conflicts" => ConflictsResult, read_only: |_| true;
            Hosts(Hosts) = "hosts" => crate::kinds::sync_hosts::HostsResult, read_only: |_| true;
            Verify(Verify) = "verify" => VerifyReport, read_only: |_| true;
            Backups(Backups) = "backups" => BackupsResult, read_only: |_| true;
            BackupRestore(BackupRestore) = "backup_restore" => Restored, read_only: |_| false;
            BackupRestoreRun(BackupRestoreRun) = "backup_restore_run" => RestoredSet, read_only: |_| false;
            ConflictResolve(ConflictResolve) = "conflict_resolve" => Resolution, read_only: |_| false;
            Heal(Heal) = "heal" => HealResult, read_only: |_| true;
            Retries(Retries) = "retries" => RetriesResult, read_only: |_| true;
            Call(Call) = "call" => Value, read_only: |_| false;
            Logs(Logs) = "logs" => LogsResult, read_only: |_| true;
            Chaos(Chaos) = "chaos" => ChaosRun, read_only: |_| false;
            ChaosStop(ChaosStop) = "chaos_stop" => ChaosStopResult, read_only: |_| false;
            ChaosStatus(ChaosStatus) = "chaos_status" => ChaosStatusResult, read_only: |_| true;
        }
    };
}
pub(crate) use with_requests;

with_requests!(requests);

#[cfg(test)]
mod tests {
    use super::*;

    /// The list's `cmd` names are serde's: each reads as its own command (or fails on a
    /// missing field, never as an unknown command).
    #[test]
    fn every_listed_name_is_the_wire_tag() {
        for name in Command::NAMES {
            match serde_json::from_value::<Command>(serde_json::json!({ "cmd": name })) {
                Ok(command) => assert_eq!(command.name(), *name),
                Err(e) => assert!(e.to_string().starts_with("missing field"), "{name}: {e}"),
            }
        }
    }

    /// A command serializes with its `cmd` and reads back as itself.
    #[test]
    fn a_command_round_trips() {
        let sync: Command = Sync {
            target: Some("t".into()),
            dry_run: true,
            ..Default::default()
        }
        .into();
        let text = serde_json::to_string(&sync).unwrap();
        assert_eq!(text, r#"{"cmd":"sync","target":"t","dry_run":true}"#);
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), sync);
        assert!(sync.is_read_only());
        assert_eq!(<Sync as Request>::NAME, "sync");
    }
}
