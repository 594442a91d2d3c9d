//! How the CLI shows each command's answer: [`Show`] renders the command's typed answer
//! ([`Request::Response`]) for people; its exit code is the answer's [`Verdict`] (`exit`).
//! [`answer`] is generated from the command list (`control::request`), so a command the
//! CLI cannot show does not compile.

use std::io::{self, Write};

use serde_json::Value;

use super::client::{say, shown_names, typed};
use super::exit::{self, Verdict};
use super::{render, Global};
use crate::control::request::{self, Command, Request};

/// A command whose answer the CLI renders for people.
pub(super) trait Show: Request<Response: Verdict> {
    fn show(&self, answer: &Self::Response, out: &mut dyn Write) -> io::Result<()>;
}

/// Prints a command's answer (JSON under `--json`, else rendered) and says its exit code.
fn shown<R: Show>(
    request: &R,
    mut result: Value,
    global: &Global,
    out: &mut dyn Write,
) -> io::Result<u8> {
    shown_names(&mut result);
    if global.json {
        writeln!(out, "{result}")?;
    }
    let Some(answer) = typed::<R::Response>(result) else {
        return Ok(exit::USAGE);
    };
    if global.json {
        // The rendering says why; JSON does not.
        for why in answer.why() {
            say(&format!("metasystem: {why}"));
        }
    } else {
        request.show(&answer, out)?;
    }
    Ok(answer.code())
}

macro_rules! answer {
    ($($variant:ident ($ty:ty) = $name:literal => $response:ty, read_only: $ro:expr;)+) => {
        /// Prints the answer to `command` and picks the exit code.
        pub(super) fn answer(
            command: &Command,
            result: Value,
            global: &Global,
            out: &mut dyn Write,
        ) -> io::Result<u8> {
            match command {
                $(Command::$variant(r) => shown(r, result, global, out)),+
            }
        }
    };
}
crate::control::request::with_requests!(answer);

/// Implements [`Show`] with a renderer of the answer.
macro_rules! show_with {
    ($($ty:ty => $render:path),+ $(,)?) => {
        $(impl Show for $ty {
            fn show(&self, answer: &Self::Response, out: &mut dyn Write) -> io::Result<()> {
                $render(out, answer)
            }
        })+
    };
}

show_with!(
    request::Status => render::status,
    request::Tree => render::tree,
    request::Reload => render::reload,
    request::Metrics => render::metrics,
    request::Anomalies => render::anomalies,
    request::Alerts => render::alerts,
    request::AlertTest => render::alert_test,
    request::AlertSilence => render::silences,
    request::Breakers => render::breakers,
    request::Health => render::health,
    request::Probes => render::health,
    request::Sync => render::sync,
    request::SyncStatus => render::sync_status,
    request::Conflicts => render::conflicts,
    request::Hosts => crate::kinds::sync_hosts::render,
    request::Verify => render::verify,
    request::Backups => render::backups,
    request::BackupRestore => render::restored,
    request::BackupRestoreRun => render::restored_set,
    request::ConflictResolve => render::resolution,
    request::Heal => render::heal,
    request::Retries => render::retries,
    request::Chaos => render::chaos_started,
    request::ChaosStop => render::chaos_stop,
    request::ChaosStatus => render::chaos_status,
);

/// `start`, `stop`, `restart`, `kill`: what happened to the path.
fn done(out: &mut dyn Write, d: &request::Done, verb: &str) -> io::Result<()> {
    writeln!(out, "{}: {verb}", d.path)
}

impl Show for request::Start {
    fn show(&self, d: &request::Done, out: &mut dyn Write) -> io::Result<()> {
        done(
            out,
            d,
            if d.changed {
                "started"
            } else {
                "already running"
            },
        )
    }
}

impl Show for request::Stop {
    fn show(&self, d: &request::Done, out: &mut dyn Write) -> io::Result<()> {
        done(
            out,
            d,
            if d.changed {
                "stopped"
            } else {
                "already stopped"
            },
        )
    }
}

impl Show for request::Restart {
    fn show(&self, d: &request::Done, out: &mut dyn Write) -> io::Result<()> {
        done(out, d, "restarted")
    }
}

impl Show for request::Kill {
    fn show(&self, d: &request::Done, out: &mut dyn Write) -> io::Result<()> {
        done(
            out,
            d,
            "killed (its supervisor will restart it per its policy)",
        )
    }
}

impl Show for request::Shutdown {
    fn show(&self, _: &request::ShuttingDown, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "shutting down")
    }
}

impl Show for request::Call {
    fn show(&self, answer: &Value, out: &mut dyn Write) -> io::Result<()> {
        render::call(out, self.op.is_none(), answer)
    }
}

impl Show for request::BreakerOp {
    fn show(
        &self,
        row: &crate::control::protocol::BreakerRow,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        render::breaker_rows(out, std::slice::from_ref(row))
    }
}

impl Show for request::Logs {
    fn show(
        &self,
        r: &crate::control::protocol::LogsResult,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        out.write_all(r.text.as_bytes())
    }
}

/// One page (the CLI pages `events` itself: `client::events`).
impl Show for request::Events {
    fn show(
        &self,
        page: &crate::control::protocol::EventsResult,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        page.events.iter().try_for_each(|ev| render::event(out, ev))
    }
}

/// The subscription's answer (the CLI follows streams itself: `client::follow`).
impl Show for request::Subscribe {
    fn show(&self, _: &crate::control::protocol::StreamItem, _: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}
