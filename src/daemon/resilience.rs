//! Answering `breakers` and operators' breaker actions (straight from the shared registry, no
//! actor round trip, and the stored transitions), `health` (every probe checks now) and `heal`
//! (the stored actions).

use super::handle::Answer;
use crate::control::protocol::Failure;
use metasystem_actors::breakers::{Breaker, State};
use metasystem_actors::probes::actor::{ProbeMessage, ProbeReport, ProbeStatus};
use metasystem_actors::store::{format_ms, health};

use super::Daemon;
use crate::control::protocol::{
    code, BreakerAction, BreakerRow, BreakersResult, HealResult, HealView, HealthResult, ProbeView,
    TransitionView,
};

/// `breakers` shows this many transitions.
const TRANSITIONS: u32 = 50;

/// One breaker as shown.
pub(super) fn breaker_row(b: &Breaker) -> BreakerRow {
    let s = b.snapshot();
    let config = b.config();
    BreakerRow {
        name: b.name().to_string(),
        state: s.state.name(),
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
    pub(super) async fn breakers(&self) -> Answer<BreakersResult> {
        let breakers = self.breaker_rows();
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
            Err(e) => return Err(e.into()),
        };
        Ok(BreakersResult {
            breakers,
            transitions,
        })
    }

    /// Every breaker: the shared registry's and the probes' heal actions', by name.
    pub(super) fn all_breakers(&self) -> Vec<Breaker> {
        crate::kinds::breakers::every(&self.services)
    }

    pub(super) fn breaker_op(&self, name: &str, op: BreakerAction) -> Answer<BreakerRow> {
        let all = self.all_breakers();
        let Some(b) = all.into_iter().find(|b| b.name() == name) else {
            let names: Vec<String> = self
                .all_breakers()
                .iter()
                .map(|b| b.name().to_string())
                .collect();
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
            return Err(Failure::new(
                code::NOT_FOUND,
                format!("no breaker named `{name}`{hint}"),
            ));
        };
        // The transition (if any) goes through the breakers' notifier: persisted, sampled,
        // alerted like any other.
        let _ = match op {
            BreakerAction::Reset => b.reset(),
            BreakerAction::Open => b.force_open(),
            BreakerAction::Disable => b.disable(),
            BreakerAction::HalfOpen => b.half_open(),
        };
        Ok(breaker_row(&b))
    }
}

/// How long `health` waits for the probes' fresh checks (each is bounded by its own timeout);
/// a probe that has not answered by then (a long check, a heal action running) is shown with
/// its latest report. Well inside the request's deadline (30 s).
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// `heal` shows at most this many actions.
const HEAL_ROWS: u32 = 500;

/// One probe's report as shown.
pub(crate) fn probe_view(r: &ProbeReport) -> ProbeView {
    ProbeView {
        path: r.path.clone(),
        check: r.check.clone(),
        status: r.shown(),
        pending: r.pending(),
        last_status: r.last.as_ref().map(|o| o.status),
        value: r.last.as_ref().and_then(|o| o.value),
        unit: r.last.as_ref().map_or("", |o| o.unit).to_string(),
        message: r
            .last
            .as_ref()
            .map(|o| o.message.clone())
            .unwrap_or_else(|| "not checked yet".into()),
        at: r.at_ms.map(format_ms),
        took_ms: r.took_ms,
        consecutive_failures: r.consecutive_failures,
        since: format_ms(r.since_ms),
    }
}

/// The worst of the reports as `health` shows it: fail, warn, then `pending` when one has not
/// checked yet and none is worse, else pass (with none too).
pub fn overall(reports: &[ProbeReport]) -> ProbeStatus {
    reports
        .iter()
        .map(ProbeReport::shown)
        .max()
        .unwrap_or(ProbeStatus::Pass)
}

impl Daemon {
    /// Every probe checks now; their reports (a probe that does not answer in time keeps its
    /// latest report).
    pub(super) async fn health_now(&self) -> Answer<HealthResult> {
        let asks = self
            .services
            .probes
            .actors()
            .into_iter()
            .map(|(path, actor)| async move {
                let asked = ractor::call_t!(
                    actor,
                    ProbeMessage::CheckNow,
                    HEALTH_WAIT.as_millis() as u64
                );
                (path, asked.ok())
            });
        let answered: std::collections::HashMap<String, ProbeReport> =
            futures_util::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(|(path, r)| r.map(|r| (path, r)))
                .collect();
        let mut reports = self.services.probes.reports();
        let mut late = std::collections::HashSet::new();
        for r in &mut reports {
            match answered.get(&r.path) {
                Some(fresh) => *r = fresh.clone(),
                None => {
                    late.insert(r.path.clone());
                }
            }
        }
        let probes = reports
            .iter()
            .map(|r| {
                let mut view = probe_view(r);
                if late.contains(&r.path) {
                    view.message = format!(
                        "no fresh result within {}s (a check or heal action is still running); latest: {}",
                        HEALTH_WAIT.as_secs(),
                        view.message
                    );
                }
                view
            })
            .collect();
        let result = HealthResult {
            status: overall(&reports),
            probes,
        };
        Ok(result)
    }

    /// Every probe's latest report, no check run (the dashboard reads this on each refresh).
    pub(super) fn probes_latest(&self) -> Answer<HealthResult> {
        let reports = self.services.probes.reports();
        let result = HealthResult {
            status: overall(&reports),
            probes: reports.iter().map(probe_view).collect(),
        };
        Ok(result)
    }

    pub(super) async fn heal_history(&self, since_s: Option<u64>) -> Answer<HealResult> {
        let day = std::time::Duration::from_secs(24 * 3600);
        let since = super::queries::window_start_ms(since_s, day);
        match health::heals(self.store.reader(), since, HEAL_ROWS).await {
            Ok(rows) => {
                let actions = rows
                    .into_iter()
                    .map(|h| HealView {
                        probe: h.probe,
                        action: h.action,
                        target: h.target,
                        at: format_ms(h.started_ms),
                        took_ms: h.took_ms,
                        outcome: h.outcome,
                        detail: h.detail,
                        recheck: h.recheck,
                    })
                    .collect();
                Ok(HealResult { actions })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every breaker as shown (`breakers`, `/health`): the shared registry's and the probes'
    /// heal actions' (`heal:PROBE:ACTION:TARGET`), by name.
    pub(crate) fn breaker_rows(&self) -> Vec<BreakerRow> {
        self.all_breakers().iter().map(breaker_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metasystem_actors::probes::CheckOutcome;
    use metasystem_actors::probes::Health;
    use serde_json::json;

    fn report(path: &str, last: Option<Health>, status: Health) -> ProbeReport {
        ProbeReport {
            path: path.into(),
            check: "tcp".into(),
            status,
            last: last.map(|h| CheckOutcome::new(h, "x")),
            at_ms: None,
            took_ms: None,
            consecutive_failures: 0,
            since_ms: 0,
        }
    }

    #[test]
    fn a_probe_not_checked_yet_is_pending_and_a_warning_for_pass_warn_fail() {
        let fresh = report("root/a", None, Health::Pass);
        assert!(fresh.pending());
        assert_eq!(fresh.status_str(), "pending");
        assert_eq!(fresh.health(), Health::Warn);
        let v = serde_json::to_value(&fresh).unwrap();
        assert_eq!(
            (&v["status"], &v["pending"]),
            (&json!("pending"), &json!(true))
        );
        assert_eq!(probe_view(&fresh).status, ProbeStatus::Pending);
        assert_eq!(probe_view(&fresh).message, "not checked yet");

        let passing = report("root/b", Some(Health::Pass), Health::Pass);
        let v = serde_json::to_value(&passing).unwrap();
        assert_eq!(
            (&v["status"], &v["pending"]),
            (&json!("pass"), &json!(false))
        );
        let warning = report("root/c", Some(Health::Warn), Health::Warn);

        assert_eq!(overall(&[]), ProbeStatus::Pass);
        assert_eq!(overall(std::slice::from_ref(&passing)), ProbeStatus::Pass);
        assert_eq!(
            overall(&[passing.clone(), fresh.clone()]),
            ProbeStatus::Pending
        );
        assert_eq!(
            overall(&[fresh.clone(), warning.clone()]),
            ProbeStatus::Warn
        );
    }
}
