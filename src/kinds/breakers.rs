//! `kind = "breakers"`: the daemon's circuit breakers, by name (see
//! `metasystem_actors::breakers`). Other actors use them through the shared registry without a
//! message round trip; the actor restores them, persists their state and transitions, and turns
//! OPEN into HALF_OPEN by timer.
//!
//! Config: `breakers.NAME = { failure_threshold, success_threshold, open_for, half_open_calls }`
//! plus, optionally, `open_for_max` (the cap the wait grows to after failed trials, default
//! twice `open_for`), `backoff` (its factor, default 2.0), `failure_rate` (0-1: also open when
//! this share of the calls in `window` failed), `window` (an integer: the last N calls; a
//! duration: the calls in that time; default 20 calls), `minimum_calls` (default 10) and
//! `half_open_max_wait` (a trial call not reported within this counts as failed, default 1m).
//! Operations: `status`.

use std::time::Duration;

use metasystem_actors::breakers::actor::{BreakersActor, BreakersArgs, BreakersMessage};
use metasystem_actors::breakers::{Breaker, StateName};
use metasystem_actors::breakers::{BreakerConfig, Window, MAX_COUNT_WINDOW};
use metasystem_actors::probes::Health;
use metasystem_actors::ChildSpec;
use serde_json::{Map, Value};
use std::io::{self, Write};

use super::{ActorKind, CallCx, CallError, HealthPart, NoArgs, Op, ParseCx, Services, ViewCx};
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};
use crate::config::{bounded, MAX_DURATION};

/// Every breaker, by name: the shared registry's and the probes' heal actions'
/// (`heal:PROBE:ACTION:TARGET`), which exist without a breakers child.
pub fn every(services: &Services) -> Vec<Breaker> {
    let mut all = services.breakers.all();
    all.extend(services.probes.heal_breakers());
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// The breakers' part of `status`: those not closed, `name (state)`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct BreakersSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    breakers_open: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakersConfig {
    /// In file order.
    pub breakers: Vec<(String, BreakerConfig)>,
}

/// An integer within `[min, max]`.
fn count(
    cx: &mut ParseCx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: u32,
    max: u32,
) -> Option<u32> {
    let v = t.integer(cx.d, key)?;
    match u32::try_from(*v.get_ref()) {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            cx.d.error(
                v.span(),
                format!("`{key}` in {} must be between {min} and {max}", t.context),
            );
            None
        }
    }
}

fn fraction(
    cx: &mut ParseCx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: f64,
    max: f64,
) -> Option<f64> {
    let v = t.number(cx.d, key)?;
    let x = *v.get_ref();
    if x.is_finite() && x > min && x <= max {
        Some(x)
    } else {
        cx.d.error(
            v.span(),
            format!(
                "`{key}` in {} must be more than {min} and at most {max}",
                t.context
            ),
        );
        None
    }
}

/// `window`: an integer (the last N calls) or a duration string (the calls in that time).
fn window(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Window> {
    let calls = matches!(
        t.take("window").map(|v| v.get_ref()),
        Some(toml::de::DeValue::Integer(_))
    );
    if calls {
        count(cx, t, "window", 1, MAX_COUNT_WINDOW).map(Window::Count)
    } else {
        let day = Duration::from_secs(24 * 3600);
        bounded(cx.d, t, "window", Duration::from_secs(1), day).map(Window::Time)
    }
}

fn breaker(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> BreakerConfig {
    let mut c = BreakerConfig::default();
    if let Some(n) = count(cx, t, "failure_threshold", 0, 10_000) {
        c.failure_threshold = n;
    }
    if let Some(n) = count(cx, t, "success_threshold", 1, 10_000) {
        c.success_threshold = n;
    }
    if let Some(n) = count(cx, t, "half_open_calls", 1, 10_000) {
        c.half_open_calls = n;
    }
    if let Some(n) = count(cx, t, "minimum_calls", 1, MAX_COUNT_WINDOW) {
        c.minimum_calls = n;
    }
    let second = Duration::from_millis(1);
    if let Some(d) = bounded(cx.d, t, "open_for", second, MAX_DURATION) {
        c.open_for = d;
    }
    c.open_for_max = c.open_for * 2;
    if let Some(d) = bounded(cx.d, t, "open_for_max", second, MAX_DURATION) {
        if d < c.open_for {
            cx.d.error(
                t.span.clone(),
                format!(
                    "`open_for_max` in {} must not be less than `open_for`",
                    t.context
                ),
            );
        }
        c.open_for_max = d.max(c.open_for);
    }
    if let Some(f) = fraction(cx, t, "backoff", 0.999_999, 100.0) {
        c.open_backoff = f.max(1.0);
    }
    c.failure_rate = fraction(cx, t, "failure_rate", 0.0, 1.0);
    if let Some(w) = window(cx, t) {
        c.window = w;
    }
    // A trial that never reports must not hold HALF_OPEN for ever: zero is refused.
    if let Some(d) = bounded(
        cx.d,
        t,
        "half_open_max_wait",
        second,
        Duration::from_secs(24 * 3600),
    ) {
        c.half_open_max_wait = d;
    }
    if c.failure_threshold == 0 && c.failure_rate.is_none() {
        cx.d.error(
            t.span.clone(),
            format!(
                "{} can never open: set `failure_threshold` above 0 or a `failure_rate`",
                t.context
            ),
        );
    }
    c
}

impl ActorKind for BreakersConfig {
    type Cli = BreakersCommands;
    const NAME: &'static str = "breakers";
    const SINGLETON: bool = true;
    const OPS: &'static [Op] = &[Op {
        name: "status",
        args: "",
        summary: "every breaker: state, counts, current wait",
    }];

    fn schema() -> Obj {
        let breaker = Obj::new(vec![
            key(
                "failure_threshold",
                Ty::Int,
                "Failures in a row that open the breaker (0 to 10000; 0: only `failure_rate` opens it).",
            )
            .default(5),
            key(
                "success_threshold",
                Ty::Int,
                "Successful trials in HALF_OPEN that close it (1 to 10000).",
            )
            .default(2),
            key(
                "half_open_calls",
                Ty::Int,
                "Trial calls let through at once in HALF_OPEN (1 to 10000).",
            )
            .default(1),
            key(
                "minimum_calls",
                Ty::Int,
                "Calls in the window before `failure_rate` is judged.",
            )
            .default(10),
            key("open_for", Ty::Duration, "How long it stays OPEN before a trial.").default("5m"),
            key(
                "open_for_max",
                Ty::Duration,
                "The cap the OPEN wait grows to after failed trials (default twice `open_for`).",
            ),
            key("backoff", Ty::Num, "How much the OPEN wait grows after a failed trial (1 to 100).")
                .default(2.0),
            key(
                "failure_rate",
                Ty::Num,
                "Also open when this share (more than 0, at most 1) of the calls in `window` failed.",
            )
            .example(0.5),
            key(
                "window",
                Ty::AnyOf(vec![Ty::Int, Ty::Duration]),
                "What `failure_rate` looks at: an integer (the last N calls) or a duration (the calls in that time, 1s to 1 day).",
            )
            .default(20),
            key(
                "half_open_max_wait",
                Ty::Duration,
                "A trial call not reported within this counts as failed (up to 1 day).",
            )
            .default("1m"),
        ]);
        Obj::new(vec![key(
            "breakers",
            Ty::Map(Box::new(Ty::Table(breaker))),
            "The circuit breakers, by name: `breakers.NAME = { failure_threshold = 5, open_for = \"30s\" }`.",
        )])
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let mut breakers = Vec::new();
        if let Some(mut table) = t.table(cx.d, "breakers") {
            table.context = format!("`breakers` of {}", t.context);
            for (name, mut b) in table.named_tables(cx.d) {
                if let Err(problem) = metasystem_actors::supervision::check_name(&name) {
                    cx.d.error(
                        b.span.clone(),
                        problem.replace("child name", "breaker name"),
                    );
                }
                b.context = format!("breaker `{name}` of {}", t.context);
                let config = breaker(cx, &mut b);
                b.finish(cx.d);
                breakers.push((name, config));
            }
            table.finish(cx.d);
        }
        Some(BreakersConfig { breakers })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (config, services) = (self.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                BreakersActor,
                BreakersArgs {
                    path: ctx.path.clone(),
                    store: services.store.clone(),
                    registry: services.breakers.clone(),
                    slot: services.breakers_slot.clone(),
                    metrics: services.metrics.clone(),
                    alerts: services.alerts.clone(),
                    breakers: config.breakers.clone(),
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        super::args::<NoArgs>(op, args)?;
        super::reply(&super::ask(&cx, BreakersMessage::Status).await?)
    }

    async fn status(cx: &ViewCx<'_>) -> Map<String, Value> {
        super::keys(&BreakersSection {
            breakers_open: metasystem_actors::probes::actor::open_breakers(&every(cx.services)),
        })
    }

    fn render_status(status: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
        let s: BreakersSection = super::section(status);
        if !s.breakers_open.is_empty() {
            writeln!(
                out,
                "breakers:  not closed: {} (`metasystem breakers`)",
                s.breakers_open.join(", ")
            )?;
        }
        Ok(())
    }

    /// Each breaker as a check: pass while closed (or disabled), warn otherwise.
    async fn health(cx: &ViewCx<'_>) -> HealthPart {
        let mut part = HealthPart::default();
        for b in every(cx.services) {
            let state = b.state();
            let closed = matches!(state, StateName::Closed | StateName::Disabled);
            part.checks.push((
                format!("breaker:{}", b.name()),
                serde_json::json!([{
                    "status": if closed { "pass" } else { "warn" },
                    "observedValue": state.as_str(),
                }]),
            ));
            if !closed {
                part.status = Health::Warn;
            }
        }
        if part.status != Health::Pass {
            part.problems.push("a circuit breaker is open".into());
        }
        part
    }

    /// The breakers outlive their actor's restarts in the shared registry (callers keep
    /// their handles), so its stop does not empty it: a config without a breakers child has
    /// no breakers (their stored state stays, for a config that brings them back).
    fn removed(services: &Services) {
        for name in services.breakers.names() {
            services.breakers.remove(&name);
        }
    }
}

/// The breakers kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum BreakersCommands {
    /// Circuit breakers: state, counts, current wait, and the latest transitions;
    /// `breakers reset|open|disable|half-open NAME`.
    Breakers {
        #[command(subcommand)]
        action: Option<BreakersAction>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum BreakersAction {
    /// Close the breaker and clear its counts.
    Reset { name: String },
    /// Force it open: every call is rejected until `reset`.
    Open { name: String },
    /// Disable it: every call is allowed and nothing opens it, until `reset`.
    Disable { name: String },
    /// Let the next calls through as trials now.
    HalfOpen { name: String },
}

impl super::KindCli for BreakersCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            BreakersCommands::Breakers { action: None } => R::Breakers {}.into(),
            BreakersCommands::Breakers {
                action: Some(action),
            } => {
                use crate::control::protocol::BreakerAction as A;
                let (name, op) = match action {
                    BreakersAction::Reset { name } => (name, A::Reset),
                    BreakersAction::Open { name } => (name, A::Open),
                    BreakersAction::Disable { name } => (name, A::Disable),
                    BreakersAction::HalfOpen { name } => (name, A::HalfOpen),
                };
                R::BreakerOp {
                    name: name.clone(),
                    op,
                }
                .into()
            }
        })
    }
}
