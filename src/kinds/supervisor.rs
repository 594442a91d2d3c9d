//! `kind = "supervisor"`: a nested restart tree (strategy, intensity, period, backoff,
//! children). The root is one too, read from `[root]`.
//!
//! Operations: `status` (its settings and how much of its restart intensity is used).

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use metasystem_actors::{
    Backoff, ChildSpec, Jitter, Shutdown, Strategy, SupervisorSettings, SupervisorSpec,
};
use serde::Serialize;
use serde_json::Value;

use super::{ActorKind, CallCx, CallError, Op, ParseCx, Services};
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};
use crate::config::{bounded, positive, ChildConfig, MAX_DURATION};
use crate::control::protocol::code;

const STRATEGIES: [&str; 4] = ["one_for_one", "one_for_all", "rest_for_one", "dynamic"];
const JITTERS: [&str; 2] = ["none", "full"];

/// OTP's defaults for a supervisor that does not say.
const DEFAULT_INTENSITY: u32 = 1;
const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// The root's backoff when `[root]` has no `backoff` (a nested supervisor without one
/// inherits its parent's): a child that exits at once is restarted after 0-100 ms, then
/// 0-200 ms, ... up to 0-30 s, never in a tight loop. `backoff = "none"` restarts at once, as
/// OTP does.
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(30),
    factor: 2.0,
    jitter: Jitter::Full,
    reset_after: Duration::from_secs(60),
};

/// Supervisors nest at most this deep (the root's children are at depth 1). The TOML reader
/// itself gives up somewhere past 78 levels; this is well inside it.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorConfig {
    pub settings: SupervisorSettings,
    pub children: Vec<ChildConfig>,
}

impl SupervisorConfig {
    /// The root's settings when `[root]` does not say.
    pub fn default_settings() -> SupervisorSettings {
        SupervisorSettings {
            strategy: Strategy::OneForOne,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            backoff: DEFAULT_BACKOFF,
        }
    }

    /// The engine spec of this supervisor and its whole subtree.
    pub fn spec(&self, services: &Services) -> SupervisorSpec {
        SupervisorSpec::default()
            .with_settings(self.settings)
            .children(
                self.children
                    .iter()
                    .map(|c| crate::wiring::child_spec(c, services)),
            )
    }

    /// Reads a supervisor's settings and children: `[root]` or a `kind = "supervisor"` child.
    pub fn read(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> SupervisorConfig {
        let d = &mut *cx.d;
        let strategy = match t.choice(d, "strategy", &STRATEGIES).map(|s| *s.get_ref()) {
            Some("one_for_all") => Strategy::OneForAll,
            Some("rest_for_one") => Strategy::RestForOne,
            Some("dynamic") => Strategy::Dynamic,
            _ => Strategy::OneForOne,
        };
        let intensity = match t.integer(d, "intensity") {
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(v) => v,
                Err(_) => {
                    d.error(
                        n.span(),
                        format!(
                            "`intensity` in {} must be between 0 and {}",
                            t.context,
                            u32::MAX
                        ),
                    );
                    DEFAULT_INTENSITY
                }
            },
            None => DEFAULT_INTENSITY,
        };
        let period = positive(d, t, "period").unwrap_or(DEFAULT_PERIOD);
        let backoff = if t.is_string("backoff") {
            let word = t.string(d, "backoff");
            match word {
                Some(w) if w.get_ref() == "none" => Backoff::none(),
                Some(w) => {
                    d.error(
                        w.span(),
                        format!(
                            "`backoff` in {} is {:?}: it must be a table such as {{ initial = \"100ms\", max = \"30s\" }}, or \"none\" (restart at once)",
                            t.context,
                            w.get_ref()
                        ),
                    );
                    cx.backoff
                }
                None => cx.backoff,
            }
        } else {
            match t.table(d, "backoff") {
                Some(mut b) => {
                    b.context = format!("the backoff of {}", t.context);
                    let backoff = backoff(d, &mut b);
                    b.finish(d);
                    backoff
                }
                // Not given: the parent's (the root's default for the root).
                None => cx.backoff,
            }
        };
        // What this supervisor's nested supervisors inherit.
        cx.backoff = backoff;
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let tables = t.tables(d, "children");
        let mut children = Vec::with_capacity(tables.len());
        for (table, span) in tables {
            if cx.depth + 1 > MAX_DEPTH {
                cx.d.error(
                    span,
                    format!(
                        "supervisors nest at most {MAX_DEPTH} levels below the root: these children of `{}` would be at level {}",
                        cx.path,
                        cx.depth + 1
                    ),
                );
                break;
            }
            if let Some(child) = crate::config::child(cx, table, span, &mut seen) {
                children.push(child);
            }
        }
        SupervisorConfig {
            settings: SupervisorSettings {
                strategy,
                intensity,
                period,
                backoff,
            },
            children,
        }
    }
}

impl SupervisorConfig {
    /// The keys [`SupervisorConfig::read`] reads: `[root]`'s and a supervisor child's.
    pub fn schema_keys() -> Obj {
        Obj::new(vec![
            key(
                "strategy",
                Ty::Choice(&STRATEGIES),
                "What a child's exit does to its siblings (OTP's strategies): one_for_one restarts it alone, one_for_all all children, rest_for_one it and those started after it; dynamic is one_for_one for children added at run time.",
            )
            .default("one_for_one"),
            key(
                "intensity",
                Ty::Int,
                "At most this many restarts within `period`; one more and the supervisor gives up (and its parent sees it fail).",
            )
            .default(DEFAULT_INTENSITY),
            key(
                "period",
                Ty::Duration,
                "The window `intensity` counts restarts in.",
            )
            .default("5s"),
            key(
                "backoff",
                Ty::AnyOf(vec![
                    Ty::Choice(&["none"]),
                    Ty::Table(Obj::new(vec![
                        key("initial", Ty::Duration, "The first restart delay (up to 1 day).")
                            .default("100ms"),
                        key("max", Ty::Duration, "The longest restart delay (up to 1 day; at least `initial`).")
                            .default("30s"),
                        key("factor", Ty::Num, "How much each delay grows (at least 1.0).")
                            .default(2.0),
                        key(
                            "jitter",
                            Ty::Choice(&JITTERS),
                            "full: each delay is random between 0 and its value; none: exactly its value.",
                        )
                        .default("full"),
                        key(
                            "reset_after",
                            Ty::Duration,
                            "A child that runs this long starts again from `initial`.",
                        )
                        .default("60s"),
                    ])),
                ]),
                "Delays between restarts: a table, or \"none\" to restart at once as OTP does. Not given: the parent's (the root's: 100ms to 30s, full jitter).",
            ),
            key(
                "children",
                Ty::List(Box::new(Ty::Ref("child"))),
                "The supervised children, started in order and stopped in reverse ([[...children]]).",
            ),
        ])
    }
}

fn backoff(d: &mut crate::config::reader::Diags, t: &mut Table<'_, '_>) -> Backoff {
    let day = Duration::from_secs(24 * 3600);
    let initial_given = t.has("initial");
    let initial = bounded(d, t, "initial", Duration::from_nanos(1), day);
    let initial_ok = initial.is_some() || !initial_given;
    let initial = initial.unwrap_or(Duration::from_millis(100));
    let max = bounded(d, t, "max", Duration::from_nanos(1), day);
    let factor = match t.number(d, "factor") {
        Some(f) if *f.get_ref() >= 1.0 => *f.get_ref(),
        Some(f) => {
            d.error(
                f.span(),
                format!("`factor` in {} must be at least 1.0", t.context),
            );
            2.0
        }
        None => 2.0,
    };
    let jitter = match t.choice(d, "jitter", &JITTERS).map(|s| *s.get_ref()) {
        Some("none") => Jitter::None,
        _ => Jitter::Full,
    };
    let reset_after = bounded(d, t, "reset_after", Duration::ZERO, MAX_DURATION)
        .unwrap_or(Duration::from_secs(60));
    let max = match max {
        // Compared only with a valid `initial`: a bad one is already reported.
        Some(m) if m < initial && initial_ok => {
            let span = t.take("max").map(|v| v.span()).unwrap_or(0..0);
            d.error(
                span,
                format!("`max` in {} must not be less than `initial`", t.context),
            );
            initial
        }
        Some(m) => m.max(initial),
        None => Duration::from_secs(30).max(initial),
    };
    Backoff {
        initial,
        max,
        factor,
        jitter,
        reset_after,
    }
}

/// `call PATH status` for a supervisor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisorStatus {
    pub strategy: String,
    pub intensity: u32,
    pub period_s: f64,
    /// Restart attempts inside the current period (it gives up past `intensity`).
    pub restarts_in_period: usize,
    pub backoff: Option<BackoffStatus>,
    pub children: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackoffStatus {
    pub initial_s: f64,
    pub max_s: f64,
    pub factor: f64,
    pub jitter: String,
    pub reset_after_s: f64,
}

impl ActorKind for SupervisorConfig {
    type Cli = super::NoCommands;
    const NAME: &'static str = "supervisor";
    const DEFAULT_SHUTDOWN: Shutdown = Shutdown::Infinity;
    const DEFAULT_START_TIMEOUT: Option<Duration> = None;
    const HAS_START_TIMEOUT: bool = false;
    const OPS: &'static [Op] = &[Op {
        name: "status",
        args: "",
        summary: "strategy, intensity and period, restarts inside the period, backoff, children",
    }];

    fn warnings(&self, path: &str) -> Vec<String> {
        self.children
            .iter()
            .flat_map(|c| c.kind.warnings(&format!("{path}/{}", c.name)))
            .collect()
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        Some(SupervisorConfig::read(cx, t))
    }

    fn schema() -> Obj {
        SupervisorConfig::schema_keys()
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        ChildSpec::supervisor(name, self.spec(services))
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        super::args::<super::NoArgs>(op, args)?;
        let report = cx
            .tree
            .supervisor_report(cx.path, cx.timeout)
            .await
            .map_err(|e| CallError::new(code::NOT_RUNNING, e.to_string()))?;
        let b = report.settings.backoff;
        super::reply(&SupervisorStatus {
            strategy: report.settings.strategy.as_str().to_string(),
            intensity: report.settings.intensity,
            period_s: report.settings.period.as_secs_f64(),
            restarts_in_period: report.restarts_in_period,
            backoff: (b != Backoff::none()).then(|| BackoffStatus {
                initial_s: b.initial.as_secs_f64(),
                max_s: b.max.as_secs_f64(),
                factor: b.factor,
                jitter: match b.jitter {
                    Jitter::None => "none".into(),
                    Jitter::Full => "full".into(),
                },
                reset_after_s: b.reset_after.as_secs_f64(),
            }),
            children: report.children,
        })
    }
}
