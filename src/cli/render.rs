//! Human output of the client commands. Every writer returns the write's error, so a reader
//! that went away (`metasystem tree | head -1`) ends the command quietly instead of panicking.

use std::io::{self, Write};
use std::time::Duration;

use crate::control::protocol::{
    AlertsResult, AnomaliesResult, BackupsResult, BreakerRow, BreakersResult, ChaosKill, ChaosRun,
    ChaosStatusResult, ChaosStopResult, ConflictsResult, Event, HealResult, HealthResult,
    MetricsResult, OpsResult, ReloadResult, RetriesResult, RetryOpView, SeriesRow, Status,
    SyncResult, SyncStatusResult, TreeResult,
};

/// Paths wider than this are not padded further (a deep tree must not make every line huge).
const MAX_PATH_COLUMN: usize = 60;

pub fn short(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
}

pub fn status(out: &mut dyn Write, s: &Status) -> io::Result<()> {
    writeln!(
        out,
        "metasystem {} {} (pid {}, up {})",
        s.version,
        if s.healthy { "healthy" } else { "UNHEALTHY" },
        s.pid,
        short(s.uptime_s as f64)
    )?;
    writeln!(out, "config:    {}", s.config)?;
    writeln!(out, "state dir: {}", s.state_dir)?;
    writeln!(out, "socket:    {}", s.socket)?;
    writeln!(
        out,
        "actors:    {} running, {} restarting, {} stopped, {} failed",
        s.running, s.restarting, s.stopped, s.failed
    )?;
    if s.unresponsive > 0 {
        writeln!(
            out,
            "           {} supervisor(s) did not answer: their children are not counted",
            s.unresponsive
        )?;
    }
    let st = &s.store;
    writeln!(
        out,
        "store:     {} written, {} waiting, {} dropped",
        st.written,
        st.queued + st.inflight + st.durable_waiting,
        st.dropped
    )?;
    if let Some(since) = st.failing_since_ms {
        writeln!(
            out,
            "           WRITES FAILING since {}: {}",
            metasystem_actors::store::format_ms(since),
            st.last_error.as_deref().unwrap_or("unknown error")
        )?;
    }
    if s.alerts_undelivered > 0 {
        writeln!(
            out,
            "alerts:    {} notification(s) not yet delivered (`metasystem alerts`)",
            s.alerts_undelivered
        )?;
    }
    crate::kinds::Kind::render_status(&s.kinds, out)?;
    if s.log_lines_dropped > 0 {
        writeln!(
            out,
            "log:       {} lines dropped (the log writer or stderr did not keep up)",
            s.log_lines_dropped
        )?;
    }
    if let Some(file) = &s.log_file {
        match &file.error {
            Some(error) => writeln!(
                out,
                "log file:  {} refuses lines ({error}): {} so far, on stderr instead",
                file.path, file.lines_refused
            )?,
            None if file.lines_refused > 0 => writeln!(
                out,
                "log file:  {} refused {} lines (on stderr instead); it takes them again",
                file.path, file.lines_refused
            )?,
            None => {}
        }
    }
    if let Some(run) = &s.previous_run {
        match (&run.stopped, run.exit_code) {
            (Some(stopped), _) if run.clean => {
                writeln!(out, "previous run: stopped in order at {stopped}")?
            }
            (Some(stopped), code) => writeln!(
                out,
                "previous run: stopped at {stopped} with exit {} ({})",
                code.unwrap_or(-1),
                match code {
                    Some(3) => "the tree failed",
                    Some(75) => "the environment was not ready: some events were not written",
                    _ => "see its log",
                }
            )?,
            (None, _) => writeln!(
                out,
                "previous run: started {} (pid {}), ended WITHOUT a clean shutdown (killed or crashed)",
                run.started, run.pid
            )?,
        }
    }
    Ok(())
}

pub fn tree(out: &mut dyn Write, t: &TreeResult) -> io::Result<()> {
    let width = t
        .nodes
        .iter()
        .map(|n| n.path.chars().count() + 2 * n.depth)
        .max()
        .unwrap_or(4)
        .clamp(4, MAX_PATH_COLUMN);
    writeln!(
        out,
        "{:<width$}  {:<12} {:<11} {:>8} {:>4}  {:<10} LAST EXIT",
        "PATH", "KIND", "STATE", "RESTARTS", "INC", "UPTIME"
    )?;
    for n in &t.nodes {
        let label = format!("{}{}", "  ".repeat(n.depth.min(MAX_PATH_COLUMN)), n.path);
        let time = match (n.uptime_s, n.restart_in_s) {
            (Some(up), _) => short(up),
            (None, Some(wait)) => format!("in {}", short(wait.ceil())),
            _ => "-".into(),
        };
        let mut last = n.last_exit.clone().unwrap_or_default();
        if let Some(e) = &n.error {
            last = format!("start failed: {e}");
        }
        if n.unresponsive {
            last = format!("(did not answer) {last}");
        }
        writeln!(
            out,
            "{label:<width$}  {:<12} {:<11} {:>8} {:>4}  {:<10} {last}",
            n.kind, n.state, n.restarts, n.incarnation, time
        )?;
    }
    Ok(())
}

pub fn event(out: &mut dyn Write, ev: &Event) -> io::Result<()> {
    writeln!(
        out,
        "{}  {:<24} {:<18} {}",
        ev.at, ev.path, ev.kind, ev.message
    )
}

pub fn reload(out: &mut dyn Write, r: &ReloadResult) -> io::Result<()> {
    if r.changes.is_empty() {
        writeln!(out, "{}: no changes", r.config)?;
    } else {
        if r.dry_run {
            // The plan, as the JSON has it: what would be added, changed, removed, reordered.
            writeln!(
                out,
                "{}: {} change(s) would be made (dry run: nothing applied)",
                r.config,
                r.changes.len()
            )?;
        } else {
            writeln!(out, "{}: {} change(s)", r.config, r.changes.len())?;
        }
        for c in &r.changes {
            match (&c.error, &c.note) {
                (Some(e), _) => writeln!(out, "  {:<24} {}  FAILED: {e}", c.action, c.path)?,
                (None, Some(note)) => writeln!(out, "  {:<24} {}  ({note})", c.action, c.path)?,
                (None, None) => writeln!(out, "  {:<24} {}", c.action, c.path)?,
            }
        }
    }
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// `call PATH` (the operations) or `call PATH OP` (its reply: `key  value` lines when flat,
/// pretty JSON otherwise).
pub fn call(out: &mut dyn Write, listing: bool, result: &serde_json::Value) -> io::Result<()> {
    if listing {
        if let Ok(ops) = serde_json::from_value::<OpsResult>(result.clone()) {
            writeln!(out, "{} ({}): operations", ops.path, ops.kind)?;
            for op in ops.ops {
                let usage = if op.args.is_empty() {
                    op.name.clone()
                } else {
                    format!("{} {}", op.name, op.args)
                };
                writeln!(out, "  {usage:<24} {}", op.summary)?;
            }
            return Ok(());
        }
    }
    match result {
        serde_json::Value::Object(fields)
            if fields.values().all(|v| !v.is_object() && !v.is_array()) =>
        {
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in fields {
                let shown = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".into(),
                    other => other.to_string(),
                };
                writeln!(out, "{key:<width$}  {shown}")?;
            }
            Ok(())
        }
        other => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())
        ),
    }
}

/// A value in its unit, short: `12ms`, `3.4s`, `1.2 MiB`, `0.95`.
fn value(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "-".into();
    };
    match unit {
        "seconds" if v.abs() < 1e-3 => format!("{:.0}us", v * 1e6),
        "seconds" if v.abs() < 1.0 => format!("{:.1}ms", v * 1e3),
        "seconds" => format!("{v:.2}s"),
        "bytes" if v.abs() >= 1024.0 * 1024.0 * 1024.0 => {
            format!("{:.1}GiB", v / (1024.0 * 1024.0 * 1024.0))
        }
        "bytes" if v.abs() >= 1024.0 * 1024.0 => format!("{:.1}MiB", v / (1024.0 * 1024.0)),
        "bytes" if v.abs() >= 1024.0 => format!("{:.1}KiB", v / 1024.0),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

fn series_line(out: &mut dyn Write, r: &SeriesRow, label: &str) -> io::Result<()> {
    let rate = r
        .success_rate
        .map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    let u = r.unit.as_str();
    writeln!(
        out,
        "{label:<44} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        r.count,
        rate,
        value(r.min, u),
        value(r.avg, u),
        value(r.max, u),
        value(r.p50, u),
        value(r.p95, u),
        value(r.p99, u),
    )
}

pub fn metrics(out: &mut dyn Write, m: &MetricsResult) -> io::Result<()> {
    writeln!(out, "from {} to {}", m.from, m.to)?;
    let s = &m.system;
    let rate = s
        .success_rate
        .map_or("-".to_string(), |x| format!("{:.2}%", x * 100.0));
    writeln!(
        out,
        "system: {} samples in {} series; {} operations, {} failed, success {rate}",
        s.samples, s.series, s.operations, s.failed
    )?;
    if m.series.is_empty() {
        return writeln!(out, "no samples in this window");
    }
    writeln!(
        out,
        "\n{:<44} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "METRIC / SUBJECT", "COUNT", "OK", "MIN", "AVG", "MAX", "P50", "P95", "P99"
    )?;
    for metric in &m.metrics {
        series_line(out, metric, &metric.name)?;
        for r in m.series.iter().filter(|r| r.name == metric.name) {
            let subject = if r.subject.is_empty() {
                "(daemon)"
            } else {
                &r.subject
            };
            series_line(out, r, &format!("  {subject}"))?;
        }
    }
    Ok(())
}

pub fn anomalies(out: &mut dyn Write, a: &AnomaliesResult) -> io::Result<()> {
    if a.anomalies.is_empty() {
        return writeln!(out, "no anomalies");
    }
    if a.truncated {
        writeln!(out, "(the {} most recent)", a.anomalies.len())?;
    }
    for x in &a.anomalies {
        writeln!(out, "{}  {}", x.at, x.message)?;
    }
    Ok(())
}

pub fn alerts(out: &mut dyn Write, a: &AlertsResult) -> io::Result<()> {
    writeln!(out, "undelivered: {}", a.undelivered)?;
    for s in &a.silences {
        writeln!(out, "silenced until {}: {}", s.until, s.pattern)?;
    }
    if a.alerts.is_empty() {
        return writeln!(out, "no alerts");
    }
    for r in &a.alerts {
        let state = match r.state.as_str() {
            "pending" => match &r.next_attempt {
                Some(at) if r.attempts > 0 => {
                    format!("PENDING (attempt {} failed; next {at})", r.attempts)
                }
                None if r.attempts > 0 => {
                    format!("PENDING (attempt {} failed; retrying now)", r.attempts)
                }
                _ => "PENDING".to_string(),
            },
            "sent" => "sent".to_string(),
            other => other.to_uppercase(),
        };
        writeln!(
            out,
            "{}  {:<8} {:<8} {:<12} {}  [{}]",
            r.created, r.severity, r.status, r.channel, r.title, state
        )?;
        if let Some(e) = r.last_error.as_ref().filter(|_| r.state != "sent") {
            writeln!(out, "    last error: {e}")?;
        }
        for to in r.recipients.iter().filter(|to| to.state != "sent") {
            writeln!(out, "    {} {}: {}", to.state, to.recipient, to.detail)?;
        }
    }
    Ok(())
}

pub fn alert_test(
    out: &mut dyn Write,
    r: &metasystem_actors::alerts::actor::TestReport,
) -> io::Result<()> {
    let code = r.code.map(|c| format!(" {c}")).unwrap_or_default();
    writeln!(
        out,
        "{} ({}): {}{code} in {} ms",
        r.channel, r.kind, r.outcome, r.duration_ms
    )?;
    if let Some(after) = r.retry_after_s {
        writeln!(out, "retry after: {after}s")?;
    }
    writeln!(out, "{}", r.detail)?;
    for each in &r.recipients {
        let code = each.code.map(|c| format!(" {c}")).unwrap_or_default();
        writeln!(
            out,
            "  {}: {}{code}: {}",
            each.recipient, each.outcome, each.detail
        )?;
    }
    Ok(())
}

pub fn silences(out: &mut dyn Write, r: &crate::control::request::Silences) -> io::Result<()> {
    if r.silences.is_empty() {
        return writeln!(out, "no silences");
    }
    for s in &r.silences {
        writeln!(out, "silenced until {}: {}", s.until, s.pattern)?;
    }
    Ok(())
}

/// `breakers`: one line per breaker, then the latest transitions.
pub fn breakers(out: &mut dyn Write, b: &BreakersResult) -> io::Result<()> {
    if b.breakers.is_empty() {
        writeln!(out, "no breakers (add a `kind = \"breakers\"` child)")?;
    }
    breaker_rows(out, &b.breakers)?;
    if !b.transitions.is_empty() {
        writeln!(out, "transitions (newest first):")?;
        for t in b.transitions.iter().take(20) {
            writeln!(
                out,
                "  {} {}: {} -> {} ({})",
                t.at, t.name, t.from, t.to, t.reason
            )?;
        }
    }
    Ok(())
}

pub fn breaker_rows(out: &mut dyn Write, rows: &[BreakerRow]) -> io::Result<()> {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in rows {
        let state = match &r.open_until {
            Some(until) => format!("{} until {until}", r.state.as_str()),
            None => r.state.as_str().to_string(),
        };
        writeln!(
            out,
            "{:width$}  {state:<12} since {}  calls {} failed {} rejected {}  failures in a row {}/{}",
            r.name,
            r.since,
            r.calls,
            r.failures,
            r.rejections,
            r.consecutive_failures,
            r.failure_threshold,
        )?;
    }
    Ok(())
}

fn ms_span(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn recovery(ms: Option<f64>) -> String {
    ms.map_or("-".to_string(), |m| format!("{m} ms"))
}

/// The line `chaos` prints when its run starts.
pub fn chaos_started(out: &mut dyn Write, r: &ChaosRun) -> io::Result<()> {
    writeln!(
        out,
        "chaos run {} started under {}: for {}, every {}..{}, seed {} (--seed {} repeats it)",
        r.run,
        r.path,
        ms_span(r.for_ms),
        ms_span(r.every_min_ms),
        ms_span(r.every_max_ms),
        r.seed,
        r.seed
    )
}

fn kill_outcome(k: &ChaosKill) -> String {
    match (&k.recovered_after_ms, &k.not_recovered) {
        (Some(ms), _) => format!("back after {ms} ms"),
        (None, Some(why)) => format!("NOT RECOVERED: {why}"),
        (None, None) => "recovering...".to_string(),
    }
}

/// A kill as it happens (with its outcome if already known).
pub fn chaos_kill(out: &mut dyn Write, k: &ChaosKill) -> io::Result<()> {
    writeln!(
        out,
        "{}  kill #{:<5} {:<24} incarnation {:<5} {}",
        k.at,
        k.n,
        k.path,
        k.incarnation,
        kill_outcome(k)
    )
}

/// The outcome of a kill printed before it was known.
pub fn chaos_settled(out: &mut dyn Write, k: &ChaosKill) -> io::Result<()> {
    writeln!(
        out,
        "{:<24}  kill #{:<5} {:<24} {}",
        "",
        k.n,
        k.path,
        kill_outcome(k)
    )
}

/// A run's summary: what it is, its counts, median and max recovery, and the kills that did
/// not recover.
pub fn chaos_report(out: &mut dyn Write, r: &ChaosRun) -> io::Result<()> {
    let state = match (r.state.as_str(), r.ended_by.as_deref()) {
        ("ended", Some("stopped")) => "ended early: stopped by `chaos stop`".to_string(),
        ("ended", Some("duration")) => "ended (its --for elapsed)".to_string(),
        ("ended", Some("shutdown")) => "ended early: the daemon shut down".to_string(),
        ("ended", Some("kill_limit")) => "ended early: it reached its kill limit".to_string(),
        ("ended", other) => format!("ended ({})", other.unwrap_or("?")),
        ("ending", _) => "no more kills; measuring the last recoveries".to_string(),
        (other, _) => other.to_string(),
    };
    writeln!(out, "chaos run {} under {}: {state}", r.run, r.path)?;
    writeln!(
        out,
        "  started {}{}; for {}, every {}..{}, seed {}",
        r.started,
        r.ended
            .as_ref()
            .map(|e| format!(", ended {e}"))
            .unwrap_or_default(),
        ms_span(r.for_ms),
        ms_span(r.every_min_ms),
        ms_span(r.every_max_ms),
        r.seed
    )?;
    write!(
        out,
        "  kills: {}: {} recovered, {} not recovered",
        r.kill_count, r.recovered, r.not_recovered
    )?;
    if r.pending > 0 {
        write!(out, ", {} being measured", r.pending)?;
    }
    if r.skipped > 0 {
        write!(out, "; {} step(s) killed nothing", r.skipped)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  recovery: median {}, max {}",
        recovery(r.median_recovery_ms),
        recovery(r.max_recovery_ms)
    )?;
    for k in r.kills.iter().filter(|k| k.not_recovered.is_some()) {
        writeln!(
            out,
            "  NOT RECOVERED: kill #{} {} at {}: {}",
            k.n,
            k.path,
            k.at,
            k.not_recovered.as_deref().unwrap_or("")
        )?;
    }
    if r.kills.len() < r.kill_count as usize && r.not_recovered > 0 {
        writeln!(
            out,
            "  (only the last {} kills are listed; `metasystem events --kind chaos` has them all)",
            r.kills.len()
        )?;
    }
    Ok(())
}

/// `chaos status`: the run and its last kills.
pub fn chaos_status(out: &mut dyn Write, s: &ChaosStatusResult) -> io::Result<()> {
    let Some(r) = &s.run else {
        return writeln!(
            out,
            "no chaos run since the daemon started (`metasystem events --kind chaos` has earlier ones)"
        );
    };
    chaos_report(out, r)?;
    const LAST: usize = 20;
    if !r.kills.is_empty() {
        writeln!(out, "  last kills:")?;
    }
    for k in r.kills.iter().skip(r.kills.len().saturating_sub(LAST)) {
        write!(out, "  ")?;
        chaos_kill(out, k)?;
    }
    Ok(())
}

/// `chaos stop`.
pub fn chaos_stop(out: &mut dyn Write, s: &ChaosStopResult) -> io::Result<()> {
    if !s.stopped {
        writeln!(out, "no chaos run is running")?;
        if let Some(r) = &s.run {
            writeln!(out, "the last one:")?;
            chaos_report(out, r)?;
        }
        return Ok(());
    }
    match &s.run {
        Some(r) => chaos_report(out, r),
        None => writeln!(out, "stopped"),
    }
}

/// `health`: one line per probe, worst first.
pub fn health(out: &mut dyn Write, h: &HealthResult) -> io::Result<()> {
    if h.probes.is_empty() {
        writeln!(out, "no probes (add `kind = \"probe\"` children)")?;
        return Ok(());
    }
    let width = h
        .probes
        .iter()
        .map(|p| p.path.len())
        .max()
        .unwrap_or(0)
        .min(MAX_PATH_COLUMN);
    // The worst first.
    let mut probes: Vec<_> = h.probes.iter().collect();
    probes.sort_by_key(|p| (std::cmp::Reverse(p.status), p.path.clone()));
    // PASS, WARN, FAIL; wider only when a probe is PENDING.
    let status_width = probes
        .iter()
        .map(|p| p.status.as_str().len())
        .max()
        .unwrap_or(0)
        .max(4);
    for p in probes {
        let took = p.took_ms.map_or(String::new(), |t| format!(" ({t} ms)"));
        writeln!(
            out,
            "{:<status_width$}  {:width$}  {:<12} {}{took}",
            p.status.as_str().to_uppercase(),
            p.path,
            p.check,
            p.message
        )?;
    }
    writeln!(out, "overall: {}", h.status)
}

/// `heal`: one line per action, newest first.
pub fn heal(out: &mut dyn Write, h: &HealResult) -> io::Result<()> {
    if h.actions.is_empty() {
        writeln!(out, "no heal actions in this window")?;
    }
    for a in &h.actions {
        let recheck = a
            .recheck
            .as_deref()
            .map_or(String::new(), |r| format!("; then the probe said {r}"));
        writeln!(
            out,
            "{} {} {} {}: {} in {} ms: {}{recheck}",
            a.at, a.probe, a.action, a.target, a.outcome, a.took_ms, a.detail
        )?;
    }
    Ok(())
}

/// `retries`: per operation, its runs, failures, recovery, policy and recommendation.
pub fn retries(out: &mut dyn Write, r: &RetriesResult) -> io::Result<()> {
    let truncated = if r.truncated {
        " (the latest; the window holds more)"
    } else {
        ""
    };
    writeln!(
        out,
        "retried operations since {}: {} run(s){truncated}",
        r.since, r.runs
    )?;
    if r.ops.is_empty() {
        writeln!(out, "no runs in this window")?;
    }
    for op in &r.ops {
        retry_op(out, op)?;
    }
    Ok(())
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn retry_op(out: &mut dyn Write, op: &RetryOpView) -> io::Result<()> {
    let outcomes: Vec<String> = op
        .outcomes
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    writeln!(out)?;
    if op.runs == 0 {
        writeln!(out, "{}: no runs", op.op)?;
    } else {
        writeln!(
            out,
            "{}: {} run(s), {} succeeded ({})",
            op.op,
            op.runs,
            percent(op.success_rate),
            outcomes.join(", ")
        )?;
    }
    if op.failed_attempts > 0 {
        let errors: Vec<String> = op
            .commonest_errors
            .iter()
            .map(|e| format!("{} ({})", e.label, e.count))
            .collect();
        writeln!(
            out,
            "  failed attempts: {} ({} transient, {} permanent); commonest: {}",
            op.failed_attempts,
            percent(op.transient_share),
            percent(op.permanent_share),
            errors.join(", ")
        )?;
    }
    match (op.median_recovery_ms, op.p90_recovery_ms) {
        (Some(median), Some(p90)) => writeln!(
            out,
            "  recovery: median {}, p90 {} ({} run(s) recovered)",
            ms_span(median),
            ms_span(p90),
            op.recovered_runs
        )?,
        _ => writeln!(out, "  recovery: no run recovered after failing")?,
    }
    let p = &op.policy;
    let attempts = match p.max_attempts {
        Some(1) => "one attempt per run".to_string(),
        Some(n) => format!("first retry within {}, {n} attempts", ms_span(p.initial_ms)),
        None => format!(
            "first retry within {}, retried until it succeeds",
            ms_span(p.initial_ms)
        ),
    };
    let adaptive = if p.adaptive { ", adaptive" } else { "" };
    writeln!(
        out,
        "  policy ({}): {attempts}, waits up to {}{adaptive}",
        p.source,
        ms_span(p.max_ms)
    )?;
    writeln!(out, "  recommendation: {}", op.recommendation.text)?;
    if let Some(last) = &op.last_run {
        writeln!(out, "  last run: {last}")?;
    }
    Ok(())
}

/// `sync`: one block per target run.
pub fn sync(out: &mut dyn Write, s: &SyncResult) -> io::Result<()> {
    use metasystem_actors::probes::fmt_bytes;
    use metasystem_actors::sync::Outcome;
    if s.reports.is_empty() {
        return writeln!(out, "no sync targets");
    }
    for r in &s.reports {
        let dry = if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        };
        // A run let through the guard on mass deletion: its plan (the deletions) first.
        if !r.dry_run && !r.planned.is_empty() {
            writeln!(
                out,
                "{}: planned, {} deletion(s):",
                r.target,
                r.planned.len()
            )?;
            for p in &r.planned {
                writeln!(out, "  {}: {}", p.action, p.path)?;
            }
        }
        let took = short(r.took_ms as f64 / 1000.0);
        match (r.outcome, super::exit::sync_run(r)) {
            (Outcome::Success, (_, None)) => {
                writeln!(out, "{}: {} in {took}{dry}", r.target, r.outcome.name())?
            }
            // Done, in part: what is left (the deferred paths and conflicts follow).
            (Outcome::Success, (_, Some(why))) => {
                writeln!(out, "{}: partial in {took}{dry}: {why}", r.target)?
            }
            (o, _) => writeln!(
                out,
                "{}: {}: {}{dry}",
                r.target,
                o.name(),
                r.reason.as_deref().unwrap_or("")
            )?,
        }
        if r.outcome == Outcome::Skipped && r.local_files == 0 && r.remote_files == 0 {
            continue;
        }
        writeln!(
            out,
            "  {} file(s) here, {} there ({} {})",
            r.local_files,
            r.remote_files,
            r.direction.name(),
            r.strategy.name()
        )?;
        if !r.dry_run {
            writeln!(
                out,
                "  copied: {} to the target, {} to the primary ({}); deleted: {} there, {} here; \
                 {} backup(s)",
                r.copied_to_remote,
                r.copied_to_local,
                fmt_bytes(r.bytes),
                r.deleted_remote,
                r.deleted_local,
                r.backups
            )?;
        }
        if let Some(id) = &r.run_id {
            if r.backups > 0 {
                writeln!(
                    out,
                    "  run {id}: `metasystem backups restore --run {id} --target {}` puts back \
                     what it replaced or deleted",
                    r.target
                )?;
            } else {
                writeln!(out, "  run {id} (no backups taken)")?;
            }
        }
        if r.dry_run {
            for p in &r.planned {
                writeln!(out, "  would {}: {}", p.action, p.path)?;
            }
        }
        for c in &r.conflicts {
            match &c.copy {
                Some(copy) => writeln!(out, "  conflict: {} (kept both: {copy})", c.path)?,
                None => writeln!(out, "  conflict: {} (kept the {} version)", c.path, c.kept)?,
            }
        }
        for p in &r.unresolved {
            writeln!(out, "  unresolved conflict: {p}")?;
        }
        for p in &r.pending {
            writeln!(
                out,
                "  pending: {} ({} here, {} there)",
                p.path, p.local, p.remote
            )?;
        }
        for (p, why) in &r.deferred {
            writeln!(out, "  deferred: {p}: {why}")?;
        }
        for g in &r.collisions {
            writeln!(
                out,
                "  not synced, names differ only by case or normalisation: {}",
                g.join(", ")
            )?;
        }
        for (p, why) in r.skipped.iter().take(20) {
            writeln!(out, "  skipped: {p}: {why}")?;
        }
        for (p, why) in r.errors.iter().take(20) {
            writeln!(out, "  error: {p}: {why}")?;
        }
        if r.errors.len() > 20 {
            writeln!(out, "  ... and {} more errors", r.errors.len() - 20)?;
        }
        for (db, what) in &r.snapshots {
            writeln!(out, "  snapshot of {db}: {what}")?;
        }
    }
    Ok(())
}

/// `sync status`: one line per target, then its last run.
pub fn sync_status(out: &mut dyn Write, s: &SyncStatusResult) -> io::Result<()> {
    use metasystem_actors::probes::fmt_bytes;
    use metasystem_actors::store::format_ms;
    if s.targets.is_empty() {
        return writeln!(out, "no sync targets");
    }
    for t in &s.targets {
        writeln!(
            out,
            "{} ({}): {} -> {}, {}, {} {}, every {}",
            t.name,
            if t.online { "online" } else { "offline" },
            t.primary,
            t.target,
            t.path,
            t.direction,
            t.strategy,
            short(t.every_s as f64)
        )?;
        if let Some(w) = &t.watch {
            writeln!(out, "  watch: {}", w.describe())?;
        }
        if let Some(who) = &t.waiting {
            writeln!(out, "  waiting for the lock: {who}")?;
        }
        if !t.hashed_every_run.is_empty() {
            writeln!(
                out,
                "  change detection: no stable inode numbers on the {} (FAT, exFAT, FUSE or \
                 SMB): every file there is hashed on every run",
                t.hashed_every_run.join(" and the ")
            )?;
        }
        if let Some((fd, ft, bd, bt)) = t.progress {
            writeln!(
                out,
                "  running: {fd}/{ft} files, {} of {}",
                fmt_bytes(bd),
                fmt_bytes(bt)
            )?;
        }
        match &t.last {
            Some(l) => writeln!(
                out,
                "  last run {}{}: {}{}; {} file(s), {}, {} conflict(s), {}",
                format_ms(l.at_ms),
                l.run_id
                    .as_deref()
                    .map(|id| format!(" (run {id})"))
                    .unwrap_or_default(),
                l.outcome.name(),
                l.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                l.files,
                fmt_bytes(l.bytes),
                l.conflicts,
                short(l.took_ms as f64 / 1000.0)
            )?,
            None => writeln!(out, "  no run since the daemon started")?,
        }
        writeln!(
            out,
            "  last success: {}; {} path(s) tracked",
            t.last_success_ms
                .map(format_ms)
                .unwrap_or_else(|| "never".into()),
            t.tracked
        )?;
    }
    Ok(())
}

/// `verify`: each location, then each database in it.
pub fn verify(
    out: &mut dyn Write,
    v: &metasystem_actors::sync::verify::VerifyReport,
) -> io::Result<()> {
    use metasystem_actors::probes::fmt_bytes;
    if v.locations.is_empty() {
        return writeln!(out, "no sync targets: nothing to verify");
    }
    for l in &v.locations {
        let what = match l.kind.as_str() {
            "primary" => format!("primary of {}", l.target),
            "snapshots" => format!("snapshots in {}", l.target),
            _ => format!("target {}", l.target),
        };
        match (&l.note, l.online) {
            (Some(note), false) => writeln!(out, "{what} ({}): {note}", l.root)?,
            (Some(note), true) => writeln!(out, "{what} ({}): FAILED: {note}", l.root)?,
            (None, _) => writeln!(
                out,
                "{what} ({}): {} database(s)",
                l.root,
                l.databases.len()
            )?,
        }
        for d in &l.databases {
            if d.ok {
                let rows: i64 = d.tables.iter().map(|(_, n)| n).sum();
                let tables: Vec<String> =
                    d.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
                writeln!(
                    out,
                    "  ok      {} ({}): {} table(s), {rows} row(s){}",
                    d.path,
                    fmt_bytes(d.size),
                    d.tables.len(),
                    if tables.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tables.join(", "))
                    }
                )?;
            } else {
                writeln!(
                    out,
                    "  FAILED  {} ({}): {}",
                    d.path,
                    fmt_bytes(d.size),
                    d.error.as_deref().unwrap_or("unknown error")
                )?;
            }
        }
    }
    writeln!(
        out,
        "{} database(s) checked, {} failed",
        v.checked, v.failed
    )
}

/// `backups`: newest first, a run's together under its ID (target, when, how many), one line
/// per backup; folders that could not be read.
pub fn backups(out: &mut dyn Write, b: &BackupsResult) -> io::Result<()> {
    use metasystem_actors::probes::fmt_bytes;
    for d in &b.dirs {
        if let Some(e) = &d.error {
            writeln!(out, "{}: cannot list {}: {e}", d.target, d.dir)?;
        }
    }
    if b.backups.is_empty() {
        writeln!(out, "no backups")?;
    }
    let mut rest = b.backups.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|e| e.target == first.target && e.run == first.run)
            .count();
        let (group, after) = rest.split_at(n.max(1));
        writeln!(
            out,
            "run {}  {}  {}: {} backup(s)",
            first.run,
            first.taken,
            first.target,
            group.len()
        )?;
        for e in group {
            writeln!(out, "  {} ({}): {}", e.original, fmt_bytes(e.size), e.name)?;
        }
        rest = after;
    }
    if b.truncated {
        writeln!(
            out,
            "... and older ones (the newest {} are listed)",
            b.backups.len()
        )?;
    }
    if !b.backups.is_empty() {
        writeln!(
            out,
            "restore one with `metasystem backups restore NAME [--target T]` (NAME as after the \
             colon), a whole run's with `metasystem backups restore --run ID [--target T]`"
        )?;
    }
    Ok(())
}

/// `backups restore`: where it went and what it replaced.
pub fn restored(
    out: &mut dyn Write,
    r: &metasystem_actors::sync::backups::Restored,
) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} restored to {} ({} bytes)",
        r.target, r.name, r.restored_to, r.size
    )?;
    if let Some(p) = &r.previous_backup {
        writeln!(out, "  the file it replaced was backed up to {p}")?;
    }
    writeln!(
        out,
        "  it goes out with the next run (`metasystem sync {}`)",
        r.target
    )
}

/// `backups restore --run ID | --since D`: each path's result, then what to do next.
pub fn restored_set(
    out: &mut dyn Write,
    r: &metasystem_actors::sync::backups::RestoredSet,
) -> io::Result<()> {
    let what = match (&r.run, &r.since) {
        (Some(id), _) => format!("run {id}"),
        (None, Some(t)) => format!("backups since {t}"),
        (None, None) => "backups".to_string(),
    };
    writeln!(
        out,
        "{}: {what}: {} path(s) restored, {} failed",
        r.target, r.restored, r.failed
    )?;
    for p in &r.paths {
        match (&p.restored, &p.error) {
            (Some(done), _) => {
                write!(out, "  restored {} from {}", p.original, p.name)?;
                match &done.previous_backup {
                    Some(prev) => writeln!(out, " (the file it replaced: {prev})")?,
                    None => writeln!(out)?,
                }
            }
            (None, Some(why)) => writeln!(out, "  FAILED {}: {why}", p.original)?,
            (None, None) => writeln!(out, "  {}: no result", p.original)?,
        }
    }
    if r.restored > 0 {
        writeln!(
            out,
            "  they go out with the next run (`metasystem sync {}`)",
            r.target
        )?;
    }
    let replaced = r.paths.iter().any(|p| {
        p.restored
            .as_ref()
            .is_some_and(|d| d.previous_backup.is_some())
    });
    if replaced {
        writeln!(
            out,
            "  the files it replaced were backed up as run {id}: `metasystem backups restore \
             --run {id} --target {}` puts them back",
            r.target,
            id = r.restore_id
        )?;
    }
    Ok(())
}

/// `conflicts`: one line per conflict, newest first.
pub fn conflicts(out: &mut dyn Write, c: &ConflictsResult) -> io::Result<()> {
    if c.conflicts.is_empty() {
        return writeln!(out, "no open conflicts");
    }
    for v in &c.conflicts {
        let state = match (&v.resolved, &v.resolution) {
            (Some(at), Some(how)) => match how.as_str() {
                "edited" => format!("settled {at} by an edit of one side"),
                "superseded" => format!("superseded {at} by a newer conflict"),
                "gone" => format!("closed {at}: gone from both sides"),
                _ => format!("resolved {at} keeping {how}"),
            },
            (Some(at), None) => format!("resolved {at}"),
            _ => "open".to_string(),
        };
        writeln!(
            out,
            "{}: {} ({}), kept both at {}; the target's version: {}",
            v.target,
            v.path,
            state,
            v.detected,
            v.copy_path.as_deref().unwrap_or(&v.copy)
        )?;
    }
    if c.conflicts.iter().any(|v| v.resolved.is_none()) {
        writeln!(
            out,
            "settle one with `metasystem conflicts resolve PATH --keep local|remote|both`"
        )?;
    }
    Ok(())
}

/// `conflicts resolve`: what was kept and where the rest went.
pub fn resolution(out: &mut dyn Write, r: &metasystem_actors::sync::Resolution) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} resolved keeping {}",
        r.target,
        r.path,
        r.keep.name()
    )?;
    if let Some(b) = &r.backup {
        writeln!(out, "  replaced version backed up to {b}")?;
    }
    writeln!(out, "  conflict copy {}: {}", r.copy, r.copy_now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{ErrorCount, RecommendationView, RetryPolicyView};

    #[test]
    fn retries_say_what_each_operation_did_and_what_to_do() {
        let op = RetryOpView {
            op: "alert:hook".into(),
            runs: 4,
            outcomes: [("success".to_string(), 3), ("permanent".to_string(), 1)]
                .into_iter()
                .collect(),
            success_rate: 0.75,
            failed_attempts: 3,
            transient_share: 2.0 / 3.0,
            permanent_share: 1.0 / 3.0,
            commonest_errors: vec![
                ErrorCount {
                    label: "http_503".into(),
                    count: 2,
                },
                ErrorCount {
                    label: "http_400".into(),
                    count: 1,
                },
            ],
            recovered_runs: 2,
            median_recovery_ms: Some(1500),
            p90_recovery_ms: Some(3000),
            last_run: Some("2026-11-27T10:00:00.000Z".into()),
            policy: RetryPolicyView {
                source: "configured".into(),
                initial_ms: 1000,
                max_ms: 300_000,
                max_attempts: None,
                adaptive: true,
            },
            recommendation: RecommendationView {
                initial_ms: 1000,
                max_attempts: 5,
                text: "transient failures (http_503) recovered in only 2 runs".into(),
            },
        };
        let r = RetriesResult {
            since: "2026-11-20T10:00:00.000Z".into(),
            runs: 4,
            truncated: false,
            ops: vec![op],
        };
        let mut out = Vec::new();
        retries(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "retried operations since 2026-11-20T10:00:00.000Z: 4 run(s)",
            "alert:hook: 4 run(s), 75% succeeded (1 permanent, 3 success)",
            "failed attempts: 3 (67% transient, 33% permanent); commonest: http_503 (2), http_400 (1)",
            "recovery: median 1s 500ms, p90 3s (2 run(s) recovered)",
            "policy (configured): first retry within 1s, retried until it succeeds, waits up to 5m, adaptive",
            "recommendation: transient failures (http_503) recovered in only 2 runs",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let mut out = Vec::new();
        retries(
            &mut out,
            &RetriesResult {
                ops: vec![],
                runs: 0,
                ..r
            },
        )
        .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("no runs in this window"));
    }
}
