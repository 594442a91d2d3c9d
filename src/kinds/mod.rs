//! The actor kinds, and the one list of them.
//!
//! Each kind is one file here: its config schema and validation ([`ActorKind::parse`]), how a
//! child of that kind becomes an engine [`ChildSpec`] ([`ActorKind::child_spec`]), and its
//! control operations ([`ActorKind::OPS`], [`ActorKind::call`]: parse the arguments, send the
//! actor a typed message, render its typed reply). The actors themselves live in the
//! `metasystem-actors` crate, one folder per kind.
//!
//! [`kinds!`] below is the only list. The `Kind` enum, the names the config accepts (and
//! suggests from), and every dispatch are generated from it, so a kind cannot be listed without
//! being parsed, wired and routed: a missing piece is a compile error, never a child that
//! vanishes from a valid config.

pub mod alerts;
pub mod breakers;
pub mod heartbeat;
pub mod metrics;
pub mod probe;
pub mod process;
pub mod supervisor;
pub mod sync_hosts;
pub mod sync_target;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metasystem_actors::alerts::Alerts;
use metasystem_actors::metrics::Metrics;
use metasystem_actors::store::Store;
use metasystem_actors::{ChildSpec, Shutdown, Tree};
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::{self, Write};

use crate::config::reader::{Diags, Table};
use crate::control::client::Connection;

/// What actors are given besides their own config.
#[derive(Clone)]
pub struct Services {
    /// The store: events and metric samples (telemetry lane), durable state.
    pub store: Store,
    /// Where every actor reports samples (the metrics actor when it runs, else the store).
    pub metrics: Metrics,
    /// Where every actor raises alerts (the alerts actor when it runs, else the log).
    pub alerts: Alerts,
    /// The systemd watchdog interval, when one is set.
    pub watchdog: Option<Duration>,
    /// The circuit breakers by name: filled by the breakers actor, used by every actor that
    /// calls a dependency (and by `breakers` commands) without a message round trip.
    pub breakers: metasystem_actors::breakers::Breakers,
    /// The probes' latest reports (for `/health`, `status`, `health`).
    pub probes: metasystem_actors::probes::actor::Probes,
    /// The sync targets' status and actors (for `sync`, `status`, the `sync` heal action).
    pub sync: metasystem_actors::sync::SyncTargets,
    /// The managed processes' status and output channels, by tree path (for `logs -f`, the
    /// `process` probe check).
    pub processes: metasystem_actors::process::Processes,
    /// The bound on blocking checks (disk, memory, sqlite) running at once, shared by every
    /// probe (`[daemon] blocking_checks`).
    pub check_slots: metasystem_actors::probes::Slots,
    /// The running tree, once started: what `restart` heal actions act on.
    pub tree: Arc<std::sync::OnceLock<metasystem_actors::Tree>>,
    /// The running breakers actor, which persists what the breakers' notifier hands it.
    pub breakers_slot:
        metasystem_actors::slot::Slot<metasystem_actors::breakers::actor::BreakersMessage>,
}

/// What a kind's parser gets besides the child's table.
pub struct ParseCx<'a> {
    pub d: &'a mut Diags,
    /// The child's tree path (`root/sync/icloud`), for messages and nested children.
    pub path: String,
    /// How many supervisors are above the child (the root's children are at depth 1).
    pub depth: usize,
    /// The daemon's state dir: relative paths in a kind's config (a probe's `path`, a heal
    /// action's `dir`) are taken from it.
    pub state_dir: std::path::PathBuf,
    /// References to other children (see [`crate::config::refs`]): recorded while the tree
    /// is read, checked once all of it is.
    pub refs: &'a mut crate::config::refs::Refs,
    /// This host's identity, for the kinds that name the host (sync targets).
    pub host: &'a HostSlot,
    /// The backoff of the supervisor whose children are being read: what a nested
    /// supervisor without `backoff` of its own inherits.
    pub backoff: metasystem_actors::Backoff,
}

/// This host's identity ([`metasystem_actors::host`]), resolved when a kind first asks: a
/// tree that names no host never looks for a machine id, nor makes the state dir's `host-id`.
#[derive(Debug)]
pub struct HostSlot {
    /// `[daemon] host_id`, if given (and valid).
    configured: Option<String>,
    state_dir: std::path::PathBuf,
    resolved: std::cell::OnceCell<Result<String, String>>,
    reported: std::cell::Cell<bool>,
}

impl HostSlot {
    pub fn new(configured: Option<String>, state_dir: std::path::PathBuf) -> Self {
        HostSlot {
            configured,
            state_dir,
            resolved: std::cell::OnceCell::new(),
            reported: std::cell::Cell::new(false),
        }
    }
}

impl ParseCx<'_> {
    /// This host's identity. If there is none (a bad `METASYSTEM_HOST_ID`, no machine id and
    /// no way to keep one), the error is reported once, at `span` (the first child that needs
    /// it), and the answer is empty.
    pub fn host(&mut self, span: std::ops::Range<usize>) -> String {
        let slot = self.host;
        let resolved = slot.resolved.get_or_init(|| {
            metasystem_actors::host::resolve(slot.configured.as_deref(), &slot.state_dir)
        });
        match resolved {
            Ok(id) => id.clone(),
            Err(e) => {
                if !slot.reported.replace(true) {
                    self.d.error(
                        span,
                        format!("this host's identity (which names it in sync targets): {e}"),
                    );
                }
                String::new()
            }
        }
    }

    /// This host's identity as [`ParseCx::host`] resolves it, or the machine's hostname where
    /// it cannot be resolved (that error is for the kinds that need the identity to say).
    pub fn host_or_hostname(&mut self) -> String {
        let slot = self.host;
        let resolved = slot.resolved.get_or_init(|| {
            metasystem_actors::host::resolve(slot.configured.as_deref(), &slot.state_dir)
        });
        match resolved {
            Ok(id) => id.clone(),
            Err(_) => hostname(),
        }
    }

    /// Records that the string at `value` (the key `key` of the table `context`) must name
    /// what `wants` says; checked once the whole tree is read.
    pub fn refer(
        &mut self,
        wants: crate::config::refs::Wants,
        key: &'static str,
        context: &str,
        value: &toml::Spanned<String>,
    ) {
        self.refs.wanted.push(crate::config::refs::Reference {
            wants,
            value: value.get_ref().clone(),
            span: value.span(),
            key,
            context: context.to_string(),
        });
    }
}

/// One control operation of a kind, for `call PATH` (which lists them) and suggestions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Op {
    pub name: &'static str,
    /// Its arguments, for people: `""`, `"name=NAME"`, ...
    pub args: &'static str,
    pub summary: &'static str,
}

/// What a kind's operation handler gets.
pub struct CallCx<'a> {
    pub tree: &'a Tree,
    /// The actor's tree path.
    pub path: &'a str,
    pub services: &'a Services,
    /// How long the actor may take to answer.
    pub timeout: Duration,
}

/// Why an operation failed: the protocol's error ([`crate::control::protocol::Failure`]).
pub type CallError = crate::control::protocol::Failure;

/// A kind: its config, its child spec, its operations. Implemented by the kind's config type.
pub trait ActorKind: Sized + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// The name written as `kind = "..."`.
    const NAME: &'static str;
    /// How children of this kind are stopped when the config does not say.
    const DEFAULT_SHUTDOWN: Shutdown = Shutdown::WORKER_DEFAULT;
    /// How long a start may take when the config does not say (`None`: as long as it takes).
    const DEFAULT_START_TIMEOUT: Option<Duration> = Some(metasystem_actors::WORKER_START_TIMEOUT);
    /// Whether `start_timeout` may be set (a supervisor's start is its children's starts).
    const HAS_START_TIMEOUT: bool = true;
    /// Whether the tree may hold at most one child of this kind (it serves the whole daemon).
    const SINGLETON: bool = false;
    /// The operations `call` accepts for an actor of this kind.
    const OPS: &'static [Op];

    /// Reads the kind's own keys from the child's table (the common keys, `name`, `kind`,
    /// `restart`, `shutdown` and `start_timeout`, are already taken). Every problem goes to
    /// `cx.d`; `None` when the kind's config is unusable.
    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self>;

    /// The keys [`Self::parse`] reads, described for `metasystem schema` (the JSON Schema of
    /// the file): types, choices, defaults, what each does. A test checks the two agree both
    /// ways (`config::schema`'s tests).
    fn schema() -> crate::config::schema::Obj;

    /// How a child with this config is stopped when the file does not say (a process needs
    /// its `stop_timeout` and more).
    fn default_shutdown(&self) -> Shutdown {
        Self::DEFAULT_SHUTDOWN
    }

    /// The engine spec of a child named `name` with this config (restart type, shutdown and
    /// start timeout are applied by the caller).
    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec;

    /// What `check` warns about in a valid config of a child at `path` (settings that are
    /// accepted but will not work in this environment, such as an alert channel whose
    /// password variable is unset): one line each.
    fn warnings(&self, _path: &str) -> Vec<String> {
        Vec::new()
    }

    /// Runs `op` (one of [`Self::OPS`]) with `args` (a JSON object) on the actor at `cx.path`.
    fn call(
        cx: CallCx<'_>,
        op: &str,
        args: Value,
    ) -> impl Future<Output = Result<Value, CallError>> + Send;

    /// The kind's part of `status`: keys of the answer's object (none by default), from its
    /// running actors (`cx.paths_of(Self::NAME)`) and the shared registries. A kind keeps
    /// its keys typed in a struct of its file, read back by [`Self::render_status`].
    fn status(_cx: &ViewCx<'_>) -> impl Future<Output = Map<String, Value>> + Send {
        async { Map::new() }
    }

    /// How `metasystem status` shows the kind's part of the answer (`status`: every key of
    /// the answer; a daemon without this kind's keys shows nothing).
    fn render_status(_status: &Map<String, Value>, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    /// The kind's checks in `/health` (none by default).
    fn health(_cx: &ViewCx<'_>) -> impl Future<Output = HealthPart> + Send {
        async { HealthPart::default() }
    }

    /// What a tree without any child of this kind means for the operator (the systemd
    /// watchdog without a heartbeat): said when it starts and when a reload is planned.
    /// Nothing by default.
    fn absent(_services: &Services) -> Option<String> {
        None
    }

    /// What is let go of once a reload has left no child of this kind (a registry the
    /// kind's actor fills and that outlives it). Nothing by default.
    fn removed(_services: &Services) {}

    /// The kind's panel in `top` (none by default): read over `conn` (a request of the
    /// protocol) on each refresh of the dashboard, drawn as a table, and shown under its key
    /// by `top --summary`.
    fn top_panel(_conn: &mut Connection) -> Option<Result<Panel, String>> {
        None
    }

    /// The kind's own subcommands of the CLI ([`NoCommands`] for none), flattened into the
    /// CLI's: each becomes a request of the protocol.
    type Cli: KindCli;
}

/// A panel of `top` ([`ActorKind::top_panel`]): a titled table, and what `top --summary`
/// shows under `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub key: &'static str,
    pub title: String,
    /// The columns' names and widths (`None`: what is left).
    pub columns: Vec<(&'static str, Option<u16>)>,
    pub rows: Vec<Vec<Cell>>,
    /// What `top --summary` shows under `key`.
    pub data: Value,
}

/// A cell of a [`Panel`]: its text and how it is coloured.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }
}

/// How a cell is coloured: as things are well, need a look, or are wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

/// A request of `top`'s panel, answered and decoded (the refusal as the error).
pub fn fetch<R: crate::control::request::Request>(
    conn: &mut Connection,
    request: R,
) -> Result<R::Response, String> {
    match conn.call(request) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(refused)) => Err(format!("{}: {}", R::NAME, refused.message)),
        Err(e) => Err(e.to_string()),
    }
}

/// A kind's subcommands of the CLI (clap's), each becoming a request of the protocol, which
/// the CLI sends and shows as any other (`cli::show`).
pub trait KindCli: clap::Subcommand + std::fmt::Debug {
    fn request(&self) -> Result<crate::control::request::Command, String>;
}

/// The subcommands of a kind that has none.
#[derive(clap::Subcommand, Debug)]
pub enum NoCommands {}

impl KindCli for NoCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        match *self {}
    }
}

/// What a kind is given to say its part of `status` and `/health`.
pub struct ViewCx<'a> {
    pub tree: &'a Tree,
    pub services: &'a Services,
    /// The tree as the request found it.
    pub nodes: &'a [metasystem_actors::NodeSnapshot],
}

impl<'a> ViewCx<'a> {
    /// The paths of the running actors of the kind named `kind`.
    pub fn paths_of(&self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes
            .iter()
            .filter(move |n| n.kind == kind && n.state == metasystem_actors::NodeState::Running)
            .map(|n| n.path.as_str())
    }

    /// What [`ask`] needs to ask the actor at `path`, waiting at most `timeout`.
    pub fn at(&self, path: &'a str, timeout: Duration) -> CallCx<'a> {
        CallCx {
            tree: self.tree,
            path,
            services: self.services,
            timeout,
        }
    }
}

/// A kind's part of `/health` (draft-inadarei-api-health-check).
#[derive(Debug)]
pub struct HealthPart {
    /// Its checks: the key (`probe:root/x`) and the check object.
    pub checks: Vec<(String, Value)>,
    /// What is wrong, for `output`.
    pub problems: Vec<String>,
    /// The worst of its checks (pass when it has none).
    pub status: metasystem_actors::probes::Health,
}

impl Default for HealthPart {
    fn default() -> Self {
        HealthPart {
            checks: Vec::new(),
            problems: Vec::new(),
            status: metasystem_actors::probes::Health::Pass,
        }
    }
}

impl HealthPart {
    fn merge(&mut self, other: HealthPart) {
        self.checks.extend(other.checks);
        self.problems.extend(other.problems);
        self.status = self.status.worst(other.status);
    }
}

/// A kind's section of the `status` answer as its typed struct (absent keys take their
/// defaults: an older daemon, or none of the kind).
pub fn section<T: serde::de::DeserializeOwned + Default>(status: &Map<String, Value>) -> T {
    serde_json::from_value(Value::Object(status.clone())).unwrap_or_default()
}

/// A kind's typed section as keys of the `status` answer.
pub fn keys<T: Serialize>(section: &T) -> Map<String, Value> {
    match serde_json::to_value(section) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Generates [`Kind`] and its dispatch from the list of kinds.
macro_rules! kinds {
    ($($variant:ident => $config:ty),+ $(,)?) => {
        /// A child's kind and its kind-specific config.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Kind {
            $($variant($config)),+
        }

        impl Kind {
            /// Every kind name, in the list's order.
            pub const NAMES: &'static [&'static str] = &[$(<$config as ActorKind>::NAME),+];

            pub fn name(&self) -> &'static str {
                match self {
                    $(Kind::$variant(_) => <$config as ActorKind>::NAME),+
                }
            }

            /// Parses the kind-specific keys of a child whose `kind` is `name`: `None` when
            /// `name` is not a kind, `Some(None)` when its config is unusable.
            pub fn parse(
                name: &str,
                cx: &mut ParseCx<'_>,
                t: &mut Table<'_, '_>,
            ) -> Option<Option<Kind>> {
                $(
                    if name == <$config as ActorKind>::NAME {
                        return Some(<$config as ActorKind>::parse(cx, t).map(Kind::$variant));
                    }
                )+
                None
            }

            /// Every kind's keys for the schema: its name, its keys, whether it takes
            /// `start_timeout`; in the list's order.
            pub fn schemas() -> Vec<(&'static str, crate::config::schema::Obj, bool)> {
                vec![$((
                    <$config as ActorKind>::NAME,
                    <$config as ActorKind>::schema(),
                    <$config as ActorKind>::HAS_START_TIMEOUT,
                )),+]
            }

            /// What `check` warns about for the child at `path`.
            pub fn warnings(&self, path: &str) -> Vec<String> {
                match self {
                    $(Kind::$variant(k) => k.warnings(path)),+
                }
            }

            pub fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
                match self {
                    $(Kind::$variant(k) => k.child_spec(name, services)),+
                }
            }

            /// How this child is stopped when the file does not say.
            pub fn shutdown_default(&self) -> Shutdown {
                match self {
                    $(Kind::$variant(k) => k.default_shutdown()),+
                }
            }

            pub fn default_start_timeout(name: &str) -> Option<Duration> {
                $(
                    if name == <$config as ActorKind>::NAME {
                        return <$config as ActorKind>::DEFAULT_START_TIMEOUT;
                    }
                )+
                None
            }

            pub fn has_start_timeout(name: &str) -> bool {
                $(
                    if name == <$config as ActorKind>::NAME {
                        return <$config as ActorKind>::HAS_START_TIMEOUT;
                    }
                )+
                false
            }

            /// The kinds of which the tree may hold at most one child.
            pub fn singletons() -> Vec<&'static str> {
                let mut names = Vec::new();
                $(
                    if <$config as ActorKind>::SINGLETON {
                        names.push(<$config as ActorKind>::NAME);
                    }
                )+
                names
            }

            /// Every kind's part of `status`, in the list's order.
            pub async fn status(cx: &ViewCx<'_>) -> Map<String, Value> {
                let mut all = Map::new();
                $(all.extend(<$config as ActorKind>::status(cx).await);)+
                all
            }

            /// Every kind's lines of `metasystem status`, in the list's order.
            pub fn render_status(status: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
                $(<$config as ActorKind>::render_status(status, out)?;)+
                Ok(())
            }

            /// Every kind's panel of `top`, in the list's order.
            pub fn top_panels(conn: &mut Connection) -> Result<Vec<Panel>, String> {
                let mut panels = Vec::new();
                $(
                    if let Some(panel) = <$config as ActorKind>::top_panel(conn) {
                        panels.push(panel?);
                    }
                )+
                Ok(panels)
            }

            /// Every kind's checks of `/health`.
            pub async fn health(cx: &ViewCx<'_>) -> HealthPart {
                let mut all = HealthPart::default();
                $(all.merge(<$config as ActorKind>::health(cx).await);)+
                all
            }

            /// What the kinds the tree `root` lacks mean ([`ActorKind::absent`]).
            pub fn absent(root: &crate::config::SupervisorConfig, services: &Services) -> Vec<String> {
                let mut warnings = Vec::new();
                $(
                    if !crate::wiring::has_kind(root, <$config as ActorKind>::NAME) {
                        warnings.extend(<$config as ActorKind>::absent(services));
                    }
                )+
                warnings
            }

            /// Lets go of what the kinds the reloaded tree `root` lacks leave behind
            /// ([`ActorKind::removed`]).
            pub fn removed(root: &crate::config::SupervisorConfig, services: &Services) {
                $(
                    if !crate::wiring::has_kind(root, <$config as ActorKind>::NAME) {
                        <$config as ActorKind>::removed(services);
                    }
                )+
            }

            /// The operations of the kind named `name`.
            pub fn ops(name: &str) -> Option<&'static [Op]> {
                $(
                    if name == <$config as ActorKind>::NAME {
                        return Some(<$config as ActorKind>::OPS);
                    }
                )+
                None
            }

            /// Routes `call PATH OP ARGS` to the handler of the kind named `name`.
            pub async fn call(
                name: &str,
                cx: CallCx<'_>,
                op: &str,
                args: Value,
            ) -> Result<Value, CallError> {
                $(
                    if name == <$config as ActorKind>::NAME {
                        return <$config as ActorKind>::call(cx, op, args).await;
                    }
                )+
                Err(CallError::new(
                    crate::control::protocol::code::BAD_REQUEST,
                    format!("actors of kind {name:?} have no operations"),
                ))
            }
        }
    };
}

/// The kinds' own subcommands of the CLI, flattened into the CLI's.
macro_rules! kind_commands {
    ($($variant:ident => $config:ty),+ $(,)?) => {
        #[derive(clap::Subcommand, Debug)]
        pub enum KindCommand {
            $(#[command(flatten)] $variant(<$config as ActorKind>::Cli)),+
        }

        impl KindCommand {
            /// The request the subcommand sends.
            pub fn request(&self) -> Result<crate::control::request::Command, String> {
                match self {
                    $(KindCommand::$variant(c) => c.request()),+
                }
            }
        }
    };
}

/// The one list of kinds.
macro_rules! with_kinds {
    ($callback:ident) => {
        $callback! {
            Supervisor => supervisor::SupervisorConfig,
            Heartbeat => heartbeat::HeartbeatConfig,
            Metrics => metrics::MetricsConfig,
            Alerts => alerts::AlertsConfig,
            Breakers => breakers::BreakersConfig,
            Probe => probe::ProbeConfig,
            SyncTarget => sync_target::SyncTargetConfig,
            Process => process::ProcessConfig,
        }
    };
}

with_kinds!(kinds);
with_kinds!(kind_commands);

/// This machine's name (alerts carry it, for people), from uname. Where a host is named for
/// the tool (sync targets' locks and per-host folders) it is its identity instead
/// ([`metasystem_actors::host`]).
pub fn hostname() -> String {
    metasystem_actors::host::hostname()
}

/// Checks `op` against `ops`: the error lists the valid ones and suggests the nearest.
pub fn check_op(kind: &str, ops: &[Op], op: &str) -> Result<(), CallError> {
    if ops.iter().any(|o| o.name == op) {
        return Ok(());
    }
    let names: Vec<&str> = ops.iter().map(|o| o.name).collect();
    let hint = match crate::config::reader::suggest(op, &names) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => String::new(),
    };
    Err(CallError::new(
        crate::control::protocol::code::BAD_REQUEST,
        format!(
            "{kind} has no operation `{op}`: it has {}{hint}",
            crate::config::reader::one_of(&names)
        ),
    ))
}

/// The arguments of an operation that takes none (any given is an error).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Reads an operation's arguments (a JSON object, or null for none) into `T`, whose serde
/// derive must deny unknown fields; the error names the operation.
pub fn args<T: serde::de::DeserializeOwned>(op: &str, args: Value) -> Result<T, CallError> {
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args
    };
    serde_json::from_value(args).map_err(|e| {
        CallError::new(
            crate::control::protocol::code::BAD_REQUEST,
            format!("bad arguments for `{op}`: {e}"),
        )
    })
}

/// A typed reply as the JSON the protocol carries.
pub fn reply<T: Serialize>(value: &T) -> Result<Value, CallError> {
    serde_json::to_value(value).map_err(|e| {
        CallError::new(
            crate::control::protocol::code::INTERNAL,
            format!("cannot encode the reply: {e}"),
        )
    })
}

/// The live actor at `cx.path`, if it takes messages `M`.
pub fn actor<M: ractor::Message>(cx: &CallCx<'_>) -> Result<ractor::ActorRef<M>, CallError> {
    cx.tree.directory().get::<M>(cx.path).ok_or_else(|| {
        CallError::new(
            crate::control::protocol::code::NOT_RUNNING,
            format!("{}: not running", cx.path),
        )
    })
}

/// Sends a typed request to the live actor at `cx.path` and waits (bounded) for its answer.
pub async fn ask<M, R>(
    cx: &CallCx<'_>,
    make: impl FnOnce(ractor::RpcReplyPort<R>) -> M,
) -> Result<R, CallError>
where
    M: ractor::Message,
    R: Send + 'static,
{
    use crate::control::protocol::code;
    let actor = actor::<M>(cx)?;
    match actor.call(make, Some(cx.timeout)).await {
        Ok(ractor::rpc::CallResult::Success(reply)) => Ok(reply),
        Ok(ractor::rpc::CallResult::Timeout) => Err(CallError::new(
            code::TIMEOUT,
            format!(
                "{} did not answer within {}",
                cx.path,
                humantime::format_duration(cx.timeout)
            ),
        )),
        _ => Err(CallError::new(
            code::NOT_RUNNING,
            format!("{}: stopped before answering", cx.path),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed kind parses from a minimal child and becomes a spec of its own kind: the
    /// list and the dispatch cannot drift apart.
    #[test]
    fn every_kind_parses_and_wires() {
        let mut seen = std::collections::HashSet::new();
        for name in Kind::NAMES {
            assert!(seen.insert(*name), "{name} listed twice");
            let child = if *name == "supervisor" {
                format!("[[root.children]]\nname = \"c\"\nkind = \"{name}\"\n  [[root.children.children]]\n  name = \"inner\"\n  kind = \"heartbeat\"\n")
            } else if *name == "sync_target" {
                format!(
                    "[[root.children]]\nname = \"c\"\nkind = \"{name}\"\ntarget = \"/tmp/elsewhere\"\npaths = [\"shared\"]\n"
                )
            } else if *name == "process" {
                format!(
                    "[[root.children]]\nname = \"c\"\nkind = \"{name}\"\ncommand = \"/bin/sh\"\n"
                )
            } else if *name == "probe" {
                // The one key a probe cannot do without.
                format!(
                    "[[root.children]]\nname = \"c\"\nkind = \"{name}\"\ncheck = \"breakers\"\n"
                )
            } else {
                format!("[[root.children]]\nname = \"c\"\nkind = \"{name}\"\n")
            };
            let src = format!("[daemon]\nstate_dir = \"/tmp/x\"\n[root]\n{child}");
            let config = match crate::config::parse(&src, "t.toml", std::path::Path::new("/")) {
                Ok(c) => c,
                Err(e) => panic!("kind {name}: {e}"),
            };
            let kind = &config.root.children[0].kind;
            assert_eq!(kind.name(), *name);
            assert!(Kind::ops(name).is_some_and(|ops| !ops.is_empty()), "{name}");
        }
    }
    /// A cleanup aimed at the state dir (as "." or as written) would delete the live store
    /// and the daemon's lock: refused when the config is read.
    #[test]
    fn a_cleanup_of_the_state_dir_is_refused() {
        for dir in [".", "/tmp/x", "/tmp/x/"] {
            let src = format!(
                "[daemon]\nstate_dir = \"/tmp/x\"\n[root]\n[[root.children]]\nname = \"p\"\nkind = \"probe\"\ncheck = \"breakers\"\nheal = [{{ action = \"cleanup\", dir = \"{dir}\", older_than = \"1h\" }}]\n"
            );
            let err = crate::config::parse(&src, "t.toml", std::path::Path::new("/"))
                .err()
                .unwrap_or_else(|| panic!("{dir}: accepted"))
                .to_string();
            assert!(err.contains("is the state dir"), "{dir}: {err}");
        }
    }
}
