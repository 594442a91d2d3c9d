//! The client commands: build the request, send it over the socket, render the answer, and
//! choose the exit code.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{exit, render, ChaosAction, Cli, Cmd, Global};
use crate::config;
use crate::control::client::{ClientError, Connection};
use crate::control::protocol::{code, Command, EventsResult, Response};
use crate::control::request;

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
    if let Command::Sync(request::Sync {
        dry_run: false,
        lock_wait_ms,
        ..
    }) = &mut command
    {
        *lock_wait_ms = Some(u64::try_from(global.timeout.as_millis()).unwrap_or(u64::MAX));
    }
    let socket = match socket(global) {
        Ok(s) => s,
        Err(message) => return failed(global, "connection", &message, exit::USAGE),
    };
    // A forced sync waits for the run, which can take long (a first copy of a big tree).
    let timeout = match &command {
        Command::Sync(request::Sync { dry_run: false, .. })
        | Command::ConflictResolve(_)
        | Command::BackupRestore(_)
        | Command::BackupRestoreRun(_) => global.timeout.max(SYNC_WAIT),
        // Checking big databases takes a while (the daemon gives it at most 10 minutes).
        Command::Verify(_) => global.timeout.max(VERIFY_WAIT),
        _ => global.timeout,
    };
    // On a terminal, a long sync shows its progress while the command waits.
    let watch = super::progress::watch(&command, global, &socket);
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
        _ if matches!(command, Command::Logs(request::Logs { follow: true, .. })) => {
            follow_logs(global, &mut conn, first, &mut out)
        }
        Cmd::Chaos { action: None, .. } => {
            super::chaos::follow(global, &socket, &mut conn, first, &mut out)
        }
        _ => single(global, &command, first, &mut out),
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
fn single(
    global: &Global,
    command: &Command,
    response: Response,
    out: &mut dyn Write,
) -> io::Result<u8> {
    if !response.ok {
        return Ok(refused(global, &response));
    }
    super::show::answer(command, response.result.unwrap_or(Value::Null), global, out)
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
                Command::Events(request::Events { limit, after, .. }),
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
    let Command::Events(request::Events { path, kind, .. }) = pages.command else {
        return Ok(exit::USAGE);
    };
    let subscribe = request::Subscribe {
        topic: Topic::Events,
        path,
        kind,
        after: Some(last),
    };
    let answered = conn.request(subscribe.into());
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
    use crate::control::request as R;
    Ok(match cmd {
        Cmd::Status => R::Status {}.into(),
        Cmd::Tree => R::Tree {}.into(),
        Cmd::Start { path } => R::Start { path: path.clone() }.into(),
        Cmd::Stop { path } => R::Stop { path: path.clone() }.into(),
        Cmd::Restart { path } => R::Restart { path: path.clone() }.into(),
        Cmd::Kill { path } => R::Kill { path: path.clone() }.into(),
        Cmd::Chaos {
            action: Some(ChaosAction::Stop),
            ..
        } => R::ChaosStop {}.into(),
        Cmd::Chaos {
            action: Some(ChaosAction::Status),
            ..
        } => R::ChaosStatus { from: None }.into(),
        Cmd::Chaos {
            action: None,
            path,
            duration,
            every,
            seed,
        } => R::Chaos {
            path: path.clone(),
            for_ms: duration
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .ok_or("chaos needs --for DURATION (e.g. --for 2m)")?,
            every_min_ms: Some(every.min_ms()),
            every_max_ms: Some(every.max_ms()),
            seed: *seed,
        }
        .into(),
        Cmd::Reload { dry_run } => R::Reload { dry_run: *dry_run }.into(),
        Cmd::Events {
            since,
            path,
            kind,
            limit,
            follow,
        } => R::Events {
            since_s: since.map(|d| d.as_secs().max(1)),
            path: path.clone(),
            kind: kind.clone(),
            limit: Some(limit.unwrap_or(if *follow { 10 } else { 1000 }) as usize),
            after: None,
        }
        .into(),
        Cmd::Shutdown => R::Shutdown {}.into(),
        Cmd::Call { path, op, args } => R::Call {
            path: path.clone(),
            op: op.clone(),
            args: call_args(args)?,
        }
        .into(),
        Cmd::Retries { since, op } => R::Retries {
            since_s: Some(since.as_secs().max(1)),
            op: op.clone(),
        }
        .into(),
        Cmd::Kind(command) => command.request()?,
        Cmd::Run | Cmd::Check { .. } | Cmd::Schema | Cmd::Top { .. } | Cmd::Docs(_) => {
            return Err("not a client command".into())
        }
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
pub(super) fn shown_names(v: &mut Value) {
    match v {
        Value::String(s) if metasystem_actors::sync::names::has_bytes(s) => {
            *s = metasystem_actors::sync::names::shown(s).into_owned();
        }
        Value::Array(a) => a.iter_mut().for_each(shown_names),
        Value::Object(o) => o.values_mut().for_each(shown_names),
        _ => {}
    }
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
    exit::refused(error.code)
}
