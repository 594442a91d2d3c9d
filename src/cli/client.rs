//! The client commands: build the request, send it over the socket, render the answer, and
//! choose the exit code.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    exit, render, AlertsAction, BackupsAction, BreakersAction, ChaosAction, Cli, Cmd,
    ConflictsAction, Global, SyncAction,
};
use crate::config;
use crate::control::client::{ClientError, Connection};
use crate::control::protocol::{
    code, AlertsResult, AnomaliesResult, BackupsResult, BreakerRow, BreakersResult,
    ChaosStatusResult, ChaosStopResult, Command, ConflictsResult, EventsResult, HealResult,
    HealthResult, MetricsResult, ReloadResult, Response, RetriesResult, Status, SyncResult,
    SyncStatusResult, TreeResult,
};

/// How long `sync` waits for its runs at least.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// How long `verify` waits at least.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs a client command; its exit code.
pub fn run(cli: &Cli) -> u8 {
    let global = &cli.global;
    let mut command = match request(&cli.command) {
        Ok(c) => c,
        Err(message) => return failed(global, "usage", &message, exit::USAGE),
    };
    // A forced run waits for a target's lock held by another run (of this host or another)
    // up to `--timeout`, the progress line saying whose it is; then it is skipped (exit 75).
    if let Command::Sync {
        dry_run: false,
        lock_wait_ms,
        ..
    } = &mut command
    {
        *lock_wait_ms = Some(u64::try_from(global.timeout.as_millis()).unwrap_or(u64::MAX));
    }
    let socket = match socket(global) {
        Ok(s) => s,
        Err(message) => return failed(global, "connection", &message, exit::USAGE),
    };
    // A forced sync waits for the run, which can take long (a first copy of a big tree).
    let timeout = match &command {
        Command::Sync { dry_run: false, .. }
        | Command::ConflictResolve { .. }
        | Command::BackupRestore { .. }
        | Command::BackupRestoreRun { .. } => global.timeout.max(SYNC_WAIT),
        // Checking big databases takes a while (the daemon gives it at most 10 minutes).
        Command::Verify => global.timeout.max(VERIFY_WAIT),
        _ => global.timeout,
    };
    // On a terminal, a long sync shows its progress while the command waits.
    let watch = super::progress::watch(&cli.command, global, &socket);
    let opened = open(&socket, timeout, &command);
    drop(watch); // the bar is cleared before anything else is printed
    let (mut conn, first) = match opened {
        Ok(opened) => opened,
        Err(e) => return failed(global, "connection", &e.to_string(), exit::USAGE),
    };
    let mut out = io::stdout().lock();
    let outcome = match &cli.command {
        Cmd::Events { follow: true, .. } => follow(global, &mut conn, command, first, &mut out),
        Cmd::Events { .. } => events(global, &mut conn, command, first, &mut out),
        Cmd::Logs { follow: true, .. } => follow_logs(global, &mut conn, first, &mut out),
        Cmd::Chaos { action: None, .. } => {
            super::chaos::follow(global, &socket, &mut conn, first, &mut out)
        }
        _ => single(cli, first, &mut out),
    };
    let written = outcome.and_then(|code| out.flush().map(|()| code));
    match written {
        Ok(code) => code,
        // The reader went away (`| head -1`): stop quietly, as a filter should.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            say(&format!("metasystem: cannot write the output: {e}"));
            exit::USAGE
        }
    }
}

/// Connects and sends the first request. A daemon whose connections are all in use refuses
/// before reading it: try again, with a growing pause, until `timeout` (a burst of clients
/// then waits its turn instead of failing).
pub(super) fn open(
    socket: &std::path::Path,
    timeout: std::time::Duration,
    command: &Command,
) -> Result<(Connection, Response), ClientError> {
    let give_up = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let mut conn = Connection::open(socket, Some(timeout))?;
        let response = conn.request(command.clone())?;
        let refused = !response.ok
            && response
                .error
                .as_ref()
                .is_some_and(|e| e.code == code::TOO_MANY_CONNECTIONS);
        if !refused || std::time::Instant::now() + pause >= give_up {
            return Ok((conn, response));
        }
        std::thread::sleep(pause.mul_f64(0.5 + fastrand::f64()));
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
    }
}

/// One request, one answer.
fn single(cli: &Cli, response: Response, out: &mut dyn Write) -> io::Result<u8> {
    let global = &cli.global;
    if !response.ok {
        return Ok(refused(global, &response));
    }
    answer(cli, response.result.unwrap_or(Value::Null), out)
}

/// The pages of an `events` request over one connection: the first answer, then the next
/// page for as long as the daemon says there is more.
struct Pages<'a> {
    conn: &'a mut Connection,
    /// The request, its cursor moved to the next page as pages come.
    command: Command,
    first: Option<Response>,
    done: bool,
}

/// Why paging stopped early.
enum PageError {
    Connection(ClientError),
    Refused(Response),
    Unreadable,
}

impl PageError {
    /// Says it (stderr, and JSON on stdout under --json); the exit code.
    fn report(&self, global: &Global) -> u8 {
        match self {
            PageError::Connection(e) => failed(global, "connection", &e.to_string(), exit::USAGE),
            PageError::Refused(response) => refused(global, response),
            PageError::Unreadable => exit::USAGE,
        }
    }
}

impl<'a> Pages<'a> {
    fn new(conn: &'a mut Connection, command: Command, first: Response) -> Self {
        Pages {
            conn,
            command,
            first: Some(first),
            done: false,
        }
    }

    fn next_page(&mut self) -> Option<Result<EventsResult, PageError>> {
        if self.done {
            return None;
        }
        let response = match self.first.take() {
            Some(r) => Ok(r),
            None => self.conn.request(self.command.clone()),
        };
        let page = match response {
            Err(e) => Err(PageError::Connection(e)),
            Ok(r) if !r.ok => Err(PageError::Refused(r)),
            Ok(r) => {
                typed::<EventsResult>(r.result.unwrap_or(Value::Null)).ok_or(PageError::Unreadable)
            }
        };
        match (&page, &mut self.command) {
            (
                Ok(EventsResult {
                    next: Some(next), ..
                }),
                Command::Events { limit, after, .. },
            ) => {
                *limit = Some(next.remaining);
                *after = Some(next.after);
            }
            _ => self.done = true,
        }
        Some(page)
    }
}

/// `events -f`: the last events, then every new one as it is written, until the daemon ends
/// the stream or the reader goes away. One JSON object per line under `--json`.
fn follow(
    global: &Global,
    conn: &mut Connection,
    command: Command,
    first: Response,
    out: &mut dyn Write,
) -> io::Result<u8> {
    use crate::control::protocol::{StreamItem, Topic};
    let mut last = 0i64;
    let mut pages = Pages::new(conn, command, first);
    while let Some(page) = pages.next_page() {
        let page = match page {
            Ok(page) => page,
            Err(e) => return Ok(e.report(global)),
        };
        // Nothing older than the first page's high water is followed, even when the history
        // printed is empty (`--since 5s` with nothing in it must not replay the past).
        last = last.max(page.high_water.unwrap_or(0));
        for ev in &page.events {
            print_event(global, out, ev)?;
            last = last.max(ev.id);
        }
        out.flush()?;
    }
    let Command::Events { path, kind, .. } = pages.command else {
        return Ok(exit::USAGE);
    };
    let subscribe = Command::Subscribe {
        topic: Topic::Events,
        path,
        kind,
        after: Some(last),
    };
    let answered = conn.request(subscribe);
    match answered {
        Ok(r) if r.ok => {}
        Ok(r) => return Ok(refused(global, &r)),
        Err(e) => return Ok(failed(global, "connection", &e.to_string(), exit::USAGE)),
    }
    // From here on the daemon writes when something happens: no read timeout.
    conn.wait_forever();
    loop {
        let line = match conn.next_value() {
            Ok(Some(v)) => v,
            Ok(None) => {
                say("metasystem: the daemon closed the stream");
                return Ok(exit::USAGE);
            }
            Err(e) => return Ok(failed(global, "connection", &e.to_string(), exit::USAGE)),
        };
        let item = serde_json::from_value::<Response>(line)
            .ok()
            .and_then(|r| r.result)
            .and_then(|v| serde_json::from_value::<StreamItem>(v).ok());
        match item {
            Some(StreamItem::Event(ev)) => {
                print_event(global, out, &ev)?;
                out.flush()?;
            }
            Some(StreamItem::Dropped(n)) => say(&format!(
                "metasystem: {n} events dropped here (this reader fell behind)"
            )),
            Some(StreamItem::End(why)) => {
                say(&format!("metasystem: the stream ended: {why}"));
                return Ok(exit::OK);
            }
            Some(StreamItem::Subscribed(_)) | Some(StreamItem::Log(_)) => {}
            None => say("metasystem: skipped an unreadable line from the daemon"),
        }
    }
}

/// `logs -f`: the stream's output pieces, printed as they come (under `--json`, one JSON
/// object per line: `{"log": TEXT}`).
fn follow_logs(
    global: &Global,
    conn: &mut Connection,
    first: Response,
    out: &mut dyn Write,
) -> io::Result<u8> {
    use crate::control::protocol::StreamItem;
    if !first.ok {
        return Ok(refused(global, &first));
    }
    conn.wait_forever();
    loop {
        let line = match conn.next_value() {
            Ok(Some(v)) => v,
            Ok(None) => {
                say("metasystem: the daemon closed the stream");
                return Ok(exit::USAGE);
            }
            Err(e) => return Ok(failed(global, "connection", &e.to_string(), exit::USAGE)),
        };
        let item = serde_json::from_value::<Response>(line)
            .ok()
            .and_then(|r| r.result)
            .and_then(|v| serde_json::from_value::<StreamItem>(v).ok());
        match item {
            Some(StreamItem::Log(text)) => {
                if global.json {
                    writeln!(out, "{}", serde_json::json!({ "log": text }))?;
                } else {
                    out.write_all(text.as_bytes())?;
                }
                out.flush()?;
            }
            Some(StreamItem::Dropped(n)) => say(&format!(
                "metasystem: {n} pieces of output dropped here (this reader fell behind)"
            )),
            Some(StreamItem::End(why)) => {
                say(&format!("metasystem: the stream ended: {why}"));
                return Ok(exit::OK);
            }
            Some(StreamItem::Subscribed(_)) | Some(StreamItem::Event(_)) => {}
            None => say("metasystem: skipped an unreadable line from the daemon"),
        }
    }
}

fn print_event(
    global: &Global,
    out: &mut dyn Write,
    ev: &crate::control::protocol::Event,
) -> io::Result<()> {
    if global.json {
        writeln!(out, "{}", serde_json::to_string(ev).unwrap_or_default())
    } else {
        render::event(out, ev)
    }
}

/// `events`: page after page over one connection, printed as they come (under `--json`, one
/// JSON object `{"events":[...]}` written incrementally), so neither side holds them all.
fn events(
    global: &Global,
    conn: &mut Connection,
    command: Command,
    first: Response,
    out: &mut dyn Write,
) -> io::Result<u8> {
    let mut printed = 0usize;
    // Under --json the array is opened with the first answer: an error before it is printed
    // alone (as for any command); an error after it closes the array and is added beside it,
    // so stdout stays one JSON object.
    let mut opened = false;
    let mut failure: Option<Value> = None;
    let mut code = exit::OK;
    let mut pages = Pages::new(conn, command, first);
    while let Some(page) = pages.next_page() {
        let page = match page {
            Ok(page) => page,
            Err(e) if opened => {
                let (error, message, exit_code) = match &e {
                    PageError::Connection(c) => (
                        serde_json::json!({ "code": "connection", "message": c.to_string() }),
                        c.to_string(),
                        exit::USAGE,
                    ),
                    PageError::Refused(r) => (
                        r.error
                            .as_ref()
                            .map(|e| serde_json::json!(e))
                            .unwrap_or(Value::Null),
                        r.error
                            .as_ref()
                            .map(|e| e.message.clone())
                            .unwrap_or_else(|| "refused".into()),
                        exit::UNHEALTHY,
                    ),
                    PageError::Unreadable => (Value::Null, "unreadable page".into(), exit::USAGE),
                };
                failure = Some(error);
                say(&format!("metasystem: {message}"));
                code = exit_code;
                break;
            }
            Err(e) => {
                code = e.report(global);
                break;
            }
        };
        if global.json && !opened {
            write!(out, "{{\"events\":[")?;
        }
        opened = true;
        for ev in &page.events {
            if global.json {
                let sep = if printed == 0 { "" } else { "," };
                write!(
                    out,
                    "{sep}{}",
                    serde_json::to_string(ev).unwrap_or_default()
                )?;
            } else {
                render::event(out, ev)?;
            }
            printed += 1;
        }
    }
    if global.json && opened {
        match failure {
            Some(error) => writeln!(out, "],\"error\":{error}}}")?,
            None => writeln!(out, "]}}")?,
        }
    } else if !global.json && printed == 0 && code == exit::OK {
        writeln!(out, "no events")?;
    }
    Ok(code)
}

/// The request a subcommand sends.
fn request(cmd: &Cmd) -> Result<Command, String> {
    Ok(match cmd {
        Cmd::Status => Command::Status,
        Cmd::Tree => Command::Tree,
        Cmd::Start { path } => Command::Start { path: path.clone() },
        Cmd::Stop { path } => Command::Stop { path: path.clone() },
        Cmd::Restart { path } => Command::Restart { path: path.clone() },
        Cmd::Kill { path } => Command::Kill { path: path.clone() },
        Cmd::Chaos {
            action: Some(ChaosAction::Stop),
            ..
        } => Command::ChaosStop,
        Cmd::Chaos {
            action: Some(ChaosAction::Status),
            ..
        } => Command::ChaosStatus { from: None },
        Cmd::Chaos {
            action: None,
            path,
            duration,
            every,
            seed,
        } => Command::Chaos {
            path: path.clone(),
            for_ms: duration
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .ok_or("chaos needs --for DURATION (e.g. --for 2m)")?,
            every_min_ms: Some(every.min_ms()),
            every_max_ms: Some(every.max_ms()),
            seed: *seed,
        },
        Cmd::Reload { dry_run } => Command::Reload { dry_run: *dry_run },
        Cmd::Events {
            since,
            path,
            kind,
            limit,
            follow,
        } => Command::Events {
            since_s: since.map(|d| d.as_secs().max(1)),
            path: path.clone(),
            kind: kind.clone(),
            limit: Some(limit.unwrap_or(if *follow { 10 } else { 1000 }) as usize),
            after: None,
        },
        Cmd::Shutdown => Command::Shutdown,
        Cmd::Logs {
            path,
            follow,
            lines,
            stderr,
        } => Command::Logs {
            path: path.clone(),
            lines: Some(*lines as usize),
            follow: *follow,
            stderr: *stderr,
        },
        Cmd::Metrics { name, since } => Command::Metrics {
            name: name.clone(),
            since_s: Some(since.as_secs().max(1)),
        },
        Cmd::Anomalies { since } => Command::Anomalies {
            since_s: Some(since.as_secs().max(1)),
        },
        Cmd::Alerts { action, limit } => match action {
            None => Command::Alerts {
                limit: Some(*limit as usize),
            },
            Some(AlertsAction::Test { channel }) => Command::AlertTest {
                channel: channel.clone(),
            },
            Some(AlertsAction::Silence { key, duration }) => Command::AlertSilence {
                pattern: key.clone(),
                for_s: duration.as_secs().max(1),
            },
            Some(AlertsAction::Unsilence { key }) => Command::AlertSilence {
                pattern: key.clone(),
                for_s: 0,
            },
        },
        Cmd::Call { path, op, args } => Command::Call {
            path: path.clone(),
            op: op.clone(),
            args: call_args(args)?,
        },
        Cmd::Health => Command::Health,
        Cmd::Heal { since } => Command::Heal {
            since_s: Some(since.as_secs().max(1)),
        },
        Cmd::Retries { since, op } => Command::Retries {
            since_s: Some(since.as_secs().max(1)),
            op: op.clone(),
        },
        Cmd::Breakers { action: None } => Command::Breakers,
        Cmd::Breakers {
            action: Some(action),
        } => {
            use crate::control::protocol::BreakerAction as A;
            let (name, op) = match action {
                BreakersAction::Reset { name } => (name, A::Reset),
                BreakersAction::Open { name } => (name, A::Open),
                BreakersAction::Disable { name } => (name, A::Disable),
                BreakersAction::HalfOpen { name } => (name, A::HalfOpen),
            };
            Command::BreakerOp {
                name: name.clone(),
                op,
            }
        }
        Cmd::Sync {
            action: Some(SyncAction::Status),
            ..
        } => Command::SyncStatus,
        Cmd::Sync {
            action: None,
            target,
            push,
            pull,
            strategy,
            dry_run,
            allow_deletes,
        } => Command::Sync {
            target: target.clone(),
            direction: if *push {
                Some("push".into())
            } else if *pull {
                Some("pull".into())
            } else {
                None
            },
            strategy: strategy.clone(),
            dry_run: *dry_run,
            lock_wait_ms: None,
            allow_deletes: *allow_deletes,
        },
        Cmd::Conflicts {
            action: None,
            all,
            target,
        } => Command::Conflicts {
            all: *all,
            target: target.clone(),
        },
        Cmd::Conflicts {
            action: Some(ConflictsAction::Resolve { path, target, keep }),
            ..
        } => Command::ConflictResolve {
            path: path.clone(),
            target: target.clone(),
            keep: keep.clone(),
        },
        Cmd::Verify => Command::Verify,
        Cmd::Backups {
            action: None,
            target,
        } => Command::Backups {
            target: target.clone(),
        },
        Cmd::Backups {
            action:
                Some(BackupsAction::Restore {
                    name: Some(name),
                    target,
                    ..
                }),
            ..
        } => Command::BackupRestore {
            name: name.clone(),
            target: target.clone(),
        },
        Cmd::Backups {
            action:
                Some(BackupsAction::Restore {
                    name: None,
                    run,
                    since,
                    target,
                }),
            ..
        } => Command::BackupRestoreRun {
            run: run.clone(),
            since_unix_ms: since.map(metasystem_actors::store::unix_ms),
            target: target.clone(),
        },
        Cmd::Run | Cmd::Check { .. } | Cmd::Top { .. } => return Err("not a client command".into()),
    })
}

/// The socket: --socket / METASYSTEM_SOCKET, else the config's.
pub(super) fn socket(global: &Global) -> Result<PathBuf, String> {
    if let Some(s) = &global.socket {
        return Ok(s.clone());
    }
    let origin = config::locate(global.config.as_deref());
    config::socket_of(&origin)
        .map_err(|e| format!("cannot find the control socket: {e} (pass --socket PATH)"))
}

/// Every string of `v` with the bytes of names that are not UTF-8 written as `\xNN` (the
/// daemon holds them as private-use characters: see `sync::names`).
fn shown_names(v: &mut Value) {
    match v {
        Value::String(s) if metasystem_actors::sync::names::has_bytes(s) => {
            *s = metasystem_actors::sync::names::shown(s).into_owned();
        }
        Value::Array(a) => a.iter_mut().for_each(shown_names),
        Value::Object(o) => o.values_mut().for_each(shown_names),
        _ => {}
    }
}

/// Prints the answer (JSON or human) and picks the exit code.
fn answer(cli: &Cli, mut result: Value, out: &mut dyn Write) -> io::Result<u8> {
    shown_names(&mut result);
    let global = &cli.global;
    if global.json {
        writeln!(out, "{result}")?;
    }
    let human = !global.json;
    Ok(match &cli.command {
        Cmd::Status => {
            let Some(s) = typed::<Status>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::status(out, &s)?;
            }
            if s.healthy {
                exit::OK
            } else {
                exit::UNHEALTHY
            }
        }
        Cmd::Tree => {
            let Some(t) = typed::<TreeResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::tree(out, &t)?;
            }
            if t.healthy {
                exit::OK
            } else {
                exit::UNHEALTHY
            }
        }
        Cmd::Logs { .. } => {
            let Some(r) = typed::<crate::control::protocol::LogsResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                out.write_all(r.text.as_bytes())?;
            }
            exit::OK
        }
        Cmd::Reload { .. } => {
            let Some(r) = typed::<ReloadResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::reload(out, &r)?;
            }
            if r.changes.iter().any(|c| c.error.is_some()) {
                exit::UNHEALTHY
            } else {
                exit::OK
            }
        }
        Cmd::Start { path } | Cmd::Stop { path } | Cmd::Restart { path } | Cmd::Kill { path } => {
            if human {
                let unchanged = result["changed"] == false;
                let verb = match (&cli.command, unchanged) {
                    (Cmd::Start { .. }, true) => "already running",
                    (Cmd::Stop { .. }, true) => "already stopped",
                    (Cmd::Start { .. }, false) => "started",
                    (Cmd::Stop { .. }, false) => "stopped",
                    (Cmd::Restart { .. }, _) => "restarted",
                    _ => "killed (its supervisor will restart it per its policy)",
                };
                writeln!(out, "{path}: {verb}")?;
            }
            exit::OK
        }
        Cmd::Shutdown => {
            if human {
                writeln!(out, "shutting down")?;
            }
            exit::OK
        }
        Cmd::Call { op, .. } => {
            if human {
                render::call(out, op.is_none(), &result)?;
            }
            exit::OK
        }
        Cmd::Metrics { .. } => listing::<MetricsResult>(result, human, out, render::metrics)?,
        Cmd::Anomalies { .. } => listing::<AnomaliesResult>(result, human, out, render::anomalies)?,
        Cmd::Alerts { action: None, .. } => {
            listing::<AlertsResult>(result, human, out, render::alerts)?
        }
        Cmd::Alerts {
            action: Some(AlertsAction::Test { .. }),
            ..
        } => {
            let accepted = result["outcome"] == "accepted";
            if human {
                render::alert_test(out, &result)?;
            }
            if accepted {
                exit::OK
            } else {
                exit::UNHEALTHY
            }
        }
        Cmd::Alerts { .. } => {
            if human {
                render::silences(out, &result)?;
            }
            exit::OK
        }
        Cmd::Sync {
            action: Some(SyncAction::Status),
            ..
        } => {
            let Some(s) = typed::<SyncStatusResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::sync_status(out, &s)?;
            }
            exit::OK
        }
        Cmd::Sync { .. } => {
            let Some(s) = typed::<SyncResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                // The summary says why a run is not 0.
                render::sync(out, &s)?;
            } else {
                for r in &s.reports {
                    if let (_, Some(why)) = exit::sync_run(r) {
                        say(&format!("metasystem: sync {}: {why}", r.target));
                    }
                }
            }
            exit::worst(s.reports.iter().map(|r| exit::sync_run(r).0))
        }
        Cmd::Breakers { action: None } => {
            let Some(b) = typed::<BreakersResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::breakers(out, &b)?;
            }
            // Like `status`: something is not closed, the exit code says so.
            if b.breakers
                .iter()
                .all(|b| b.state == "closed" || b.state == "disabled")
            {
                exit::OK
            } else {
                exit::UNHEALTHY
            }
        }
        Cmd::Health => {
            let Some(h) = typed::<HealthResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::health(out, &h)?;
            }
            if h.status == "fail" {
                exit::UNHEALTHY
            } else {
                exit::OK
            }
        }
        Cmd::Heal { .. } => listing::<HealResult>(result, human, out, render::heal)?,
        Cmd::Verify => {
            let Some(v) = typed::<metasystem_actors::sync::verify::VerifyReport>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::verify(out, &v)?;
            }
            if v.failed > 0 {
                exit::UNHEALTHY
            } else {
                exit::OK
            }
        }
        Cmd::Backups { action: None, .. } => {
            listing::<BackupsResult>(result, human, out, render::backups)?
        }
        Cmd::Backups {
            action: Some(BackupsAction::Restore { name: Some(_), .. }),
            ..
        } => listing::<metasystem_actors::sync::backups::Restored>(
            result,
            human,
            out,
            render::restored,
        )?,
        Cmd::Backups {
            action: Some(BackupsAction::Restore { name: None, .. }),
            ..
        } => {
            let Some(set) = typed::<metasystem_actors::sync::backups::RestoredSet>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::restored_set(out, &set)?;
            } else if set.failed > 0 {
                say(&format!(
                    "metasystem: backups restore: {} of {} path(s) not restored",
                    set.failed,
                    set.paths.len()
                ));
            }
            if set.failed > 0 {
                exit::UNHEALTHY
            } else {
                exit::OK
            }
        }
        Cmd::Conflicts { action: None, .. } => {
            listing::<ConflictsResult>(result, human, out, render::conflicts)?
        }
        Cmd::Conflicts {
            action: Some(ConflictsAction::Resolve { .. }),
            ..
        } => {
            listing::<metasystem_actors::sync::Resolution>(result, human, out, render::resolution)?
        }
        Cmd::Retries { .. } => listing::<RetriesResult>(result, human, out, render::retries)?,
        Cmd::Breakers { action: Some(_) } => {
            let Some(b) = typed::<BreakerRow>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::breaker_rows(out, std::slice::from_ref(&b))?;
            }
            exit::OK
        }
        Cmd::Chaos {
            action: Some(ChaosAction::Status),
            ..
        } => {
            let Some(s) = typed::<ChaosStatusResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::chaos_status(out, &s)?;
            }
            match &s.run {
                Some(run) if run.not_recovered > 0 => exit::UNHEALTHY,
                _ => exit::OK,
            }
        }
        Cmd::Chaos {
            action: Some(ChaosAction::Stop),
            ..
        } => {
            let Some(s) = typed::<ChaosStopResult>(result) else {
                return Ok(exit::USAGE);
            };
            if human {
                render::chaos_stop(out, &s)?;
            }
            exit::OK
        }
        Cmd::Chaos { action: None, .. }
        | Cmd::Events { .. }
        | Cmd::Run
        | Cmd::Check { .. }
        | Cmd::Top { .. } => exit::USAGE,
    })
}

/// A typed answer rendered for people (unless `--json`): exit 0, or 2 when unreadable.
fn listing<T: DeserializeOwned>(
    result: Value,
    human: bool,
    out: &mut dyn Write,
    render: fn(&mut dyn Write, &T) -> io::Result<()>,
) -> io::Result<u8> {
    let Some(t) = typed::<T>(result) else {
        return Ok(exit::USAGE);
    };
    if human {
        render(out, &t)?;
    }
    Ok(exit::OK)
}

pub(super) fn typed<T: DeserializeOwned>(result: Value) -> Option<T> {
    match serde_json::from_value(result) {
        Ok(t) => Some(t),
        Err(e) => {
            say(&format!(
                "metasystem: unreadable answer from the daemon: {e}"
            ));
            None
        }
    }
}

/// `KEY=VALUE` arguments as a JSON object; a VALUE that parses as JSON is taken as such.
fn call_args(args: &[String]) -> Result<Value, String> {
    let mut object = serde_json::Map::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("argument {arg:?} is not KEY=VALUE"));
        };
        if key.is_empty() {
            return Err(format!("argument {arg:?} has no key"));
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        if object.insert(key.to_string(), value).is_some() {
            return Err(format!("argument {key:?} is given twice"));
        }
    }
    Ok(if object.is_empty() {
        Value::Null
    } else {
        Value::Object(object)
    })
}

/// A line on stderr; a closed stderr is not worth a panic.
pub(super) fn say(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// A failure before any answer (usage, connection): the message on stderr and, under
/// `--json`, as JSON on stdout too.
pub(super) fn failed(global: &Global, kind: &str, message: &str, code: u8) -> u8 {
    if global.json {
        let _ = writeln!(
            io::stdout(),
            "{}",
            serde_json::json!({ "error": { "code": kind, "message": message } })
        );
    }
    say(&format!("metasystem: {message}"));
    code
}

/// The daemon refused: its message (and details) on stderr and, under `--json`, the error
/// as JSON on stdout too.
pub(super) fn refused(global: &Global, response: &Response) -> u8 {
    let Some(error) = &response.error else {
        say("metasystem: the daemon refused without saying why");
        return exit::UNHEALTHY;
    };
    if global.json {
        let _ = writeln!(io::stdout(), "{}", serde_json::json!({ "error": error }));
    }
    say(&format!("metasystem: {}", error.message));
    for line in &error.details {
        say(line);
    }
    // Usage errors, and refusals to talk at all (connection errors, not answers).
    if error.code.is_usage() {
        exit::USAGE
    } else {
        exit::UNHEALTHY
    }
}
