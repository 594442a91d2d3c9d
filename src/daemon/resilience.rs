//! Answering `breakers` and operators' breaker actions: straight from the shared registry
//! (no actor round trip) and the stored transitions.

use metasystem_actors::breakers::{Breaker, State};
use metasystem_actors::store::{format_ms, health};
use serde_json::json;

use super::Daemon;
use crate::control::protocol::{
    code, BreakerAction, BreakerRow, BreakersResult, Response, TransitionView,
};

/// `breakers` shows this many transitions.
const TRANSITIONS: u32 = 50;

/// One breaker as shown.
pub(super) fn breaker_row(b: &Breaker) -> BreakerRow {
    let s = b.snapshot();
    let config = b.config();
    BreakerRow {
        name: b.name().to_string(),
        state: s.state.name().as_str().to_string(),
        since: format_ms(s.since_ms),
        open_until: match s.state {
            State::Open { until_ms, .. } => Some(format_ms(until_ms)),
            _ => None,
        },
        wait_s: s.wait_ms.max(0) as f64 / 1000.0,
        consecutive_failures: s.consecutive_failures,
        calls: s.counters.calls,
        failures: s.counters.failures,
        rejections: s.counters.rejections,
        failure_threshold: config.failure_threshold,
        success_threshold: config.success_threshold,
    }
}

impl Daemon {
    pub(super) async fn breakers(&self, id: Option<u64>) -> Response {
        let breakers = self
            .services
            .breakers
            .all()
            .iter()
            .map(breaker_row)
            .collect();
        let transitions = match health::transitions(self.store.reader(), None, TRANSITIONS).await {
            Ok(rows) => rows
                .into_iter()
                .map(|t| TransitionView {
                    name: t.name,
                    at: format_ms(t.at_ms),
                    from: t.from,
                    to: t.to,
                    reason: t.reason,
                })
                .collect(),
            Err(e) => return Response::error(id, code::UNAVAILABLE, e),
        };
        Response::ok(
            id,
            json!(BreakersResult {
                breakers,
                transitions
            }),
        )
    }

    pub(super) fn breaker_op(&self, id: Option<u64>, name: &str, op: BreakerAction) -> Response {
        let Some(b) = self.services.breakers.get(name) else {
            let names = self.services.breakers.names();
            let hint = match crate::config::reader::suggest(
                name,
                &names.iter().map(String::as_str).collect::<Vec<_>>(),
            ) {
                Some(close) => format!("; did you mean `{close}`?"),
                None if names.is_empty() => {
                    "; none is configured (add a `kind = \"breakers\"` child)".to_string()
                }
                None => format!("; the breakers are {}", names.join(", ")),
            };
            return Response::error(
                id,
                code::NOT_FOUND,
                format!("no breaker named `{name}`{hint}"),
            );
        };
        // The transition (if any) goes through the breakers' notifier: persisted, sampled,
        // alerted like any other.
        let _ = match op {
            BreakerAction::Reset => b.reset(),
            BreakerAction::Open => b.force_open(),
            BreakerAction::Disable => b.disable(),
            BreakerAction::HalfOpen => b.half_open(),
        };
        Response::ok(id, json!(breaker_row(&b)))
    }
}
