//! `metasystem chaos`: starts a run in the daemon, then follows it by asking `chaos_status`
//! twice a second over the same connection (reconnecting if the daemon closed it), printing
//! each kill and its recovery as they come and the report at the end. The run lives in the
//! daemon: Ctrl-C ends only the following.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::client::{failed, open, refused, say, typed};
use super::{exit, render, Global};
use crate::control::client::Connection;
use crate::control::protocol::{code, ChaosRun, ChaosStatusResult, Command, Response};

/// How often the run is asked about.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Prints the started run, then its kills and report until it ends; the exit code: 0 when
/// every kill recovered, 1 when some did not.
pub(super) fn follow(
    global: &Global,
    socket: &Path,
    conn: &mut Connection,
    first: Response,
    out: &mut dyn Write,
) -> io::Result<u8> {
    if !first.ok {
        return Ok(refused(global, &first));
    }
    let Some(run) = first.result.and_then(typed::<ChaosRun>) else {
        return Ok(exit::USAGE);
    };
    if global.json {
        writeln!(out, "{}", json!({ "started": run }))?;
    } else {
        render::chaos_started(out, &run)?;
        writeln!(
            out,
            "(Ctrl-C stops following; the run goes on in the daemon: `metasystem chaos stop` ends it)"
        )?;
    }
    out.flush()?;
    // The highest kill number printed, and those printed before their outcome was known.
    let mut printed = 0u64;
    let mut unsettled = BTreeSet::new();
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let from = unsettled.first().copied().unwrap_or(printed + 1);
        let status = match ask(global, socket, conn, Some(from)) {
            Ok(status) => status,
            Err(code) => return Ok(code),
        };
        let Some(now) = status.run.filter(|r| r.run == run.run) else {
            say(&format!(
                "metasystem: chaos run {} is no longer known to the daemon (was it restarted?); see `metasystem events --kind chaos`",
                run.run
            ));
            return Ok(exit::UNHEALTHY);
        };
        for kill in &now.kills {
            let settled = !kill.pending();
            if kill.n > printed {
                printed = kill.n;
                if global.json {
                    if settled {
                        writeln!(out, "{}", json!({ "kill": kill }))?;
                    } else {
                        unsettled.insert(kill.n);
                    }
                } else {
                    render::chaos_kill(out, kill)?;
                    if !settled {
                        unsettled.insert(kill.n);
                    }
                }
            } else if settled && unsettled.remove(&kill.n) {
                if global.json {
                    writeln!(out, "{}", json!({ "kill": kill }))?;
                } else {
                    render::chaos_settled(out, kill)?;
                }
            }
        }
        out.flush()?;
        if now.ended() {
            // The report with its kills (the last 1,000), not just the ones after `from`.
            let now = match ask(global, socket, conn, None) {
                Ok(ChaosStatusResult { run: Some(r), .. }) if r.run == now.run => r,
                Ok(_) => now,
                Err(code) => return Ok(code),
            };
            if global.json {
                writeln!(out, "{}", json!({ "report": now }))?;
            } else {
                render::chaos_report(out, &now)?;
            }
            return Ok(if now.not_recovered > 0 {
                exit::UNHEALTHY
            } else {
                exit::OK
            });
        }
    }
}

/// One `chaos_status` from kill `from` on (the last ones without); a connection the daemon closed (evicted while
/// idle between polls) is opened again once.
fn ask(
    global: &Global,
    socket: &Path,
    conn: &mut Connection,
    from: Option<u64>,
) -> Result<ChaosStatusResult, u8> {
    let command: Command = crate::control::request::ChaosStatus { from }.into();
    let lost = |e: &dyn std::fmt::Display| {
        failed(
            global,
            "connection",
            &format!("lost the daemon while following the chaos run: {e}"),
            exit::USAGE,
        )
    };
    let response = match conn.request(command.clone()) {
        Ok(r) if !is_evicted(&r) => r,
        _ => match open(socket, global.timeout, &command) {
            Ok((fresh, r)) => {
                *conn = fresh;
                r
            }
            Err(e) => return Err(lost(&e)),
        },
    };
    if !response.ok {
        return Err(refused(global, &response));
    }
    response
        .result
        .and_then(typed::<ChaosStatusResult>)
        .ok_or(exit::USAGE)
}

fn is_evicted(response: &Response) -> bool {
    response
        .error
        .as_ref()
        .is_some_and(|e| e.code == code::EVICTED)
}
