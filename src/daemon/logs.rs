//! `logs PATH [-n N] [-f]`: a managed process's output, from its log files (read on the
//! blocking pool), then, when following, as its pump reads it (through the process's channel
//! in the registry, which outlives its incarnations: a follower keeps following across
//! restarts, and rotation of the files does not concern it).

use super::handle::Answer;
use crate::control::protocol::Failure;
use crate::control::request::Logs;
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use metasystem_actors::process::log_paths;
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::Daemon;
use crate::control::protocol::{code, LogsResult, Response, StreamItem, Topic};
use crate::control::server::write_line;
use crate::control::slots::{Activity, Slot};

/// Lines shown when the request does not say.
const DEFAULT_LINES: usize = 10;
/// At most this many lines...
pub const MAX_LINES: usize = 100_000;
/// ...and this many bytes in one answer (the most recent are kept).
const MAX_BYTES: usize = 4 * 1024 * 1024;

impl Daemon {
    /// The log file of the process at `path`: an error response when `path` is not a
    /// process or has no such log.
    async fn log_file(&self, req: &Logs) -> Answer<(PathBuf, usize)> {
        let lines = req.lines.unwrap_or(DEFAULT_LINES);
        if lines > MAX_LINES {
            return Err(Failure::new(
                code::BAD_REQUEST,
                format!("`lines` is {lines}: it must be at most {MAX_LINES}"),
            ));
        }
        let kind = self.tree.kind_of(&req.path).await?;
        if kind != "process" {
            return Err(Failure::new(
                code::BAD_REQUEST,
                format!(
                    "{} is a {kind}, not a process: only processes have logs",
                    req.path
                ),
            ));
        }
        let (out, err) = log_paths(&self.daemon.state_dir, &req.path);
        if !req.stderr {
            return Ok((out, lines));
        }
        let separate = tokio::task::spawn_blocking({
            let err = err.clone();
            move || err.exists()
        })
        .await
        .unwrap_or(false);
        if !separate {
            return Err(Failure::new(
                code::NOT_FOUND,
                format!(
                    "{} has no stderr log of its own: its stderr is in its output log (set `stderr = \"separate\"` to keep them apart)",
                    req.path
                ),
            ));
        }
        Ok((err, lines))
    }

    /// The last lines, read on the blocking pool.
    async fn tail(&self, file: PathBuf, lines: usize) -> Result<String, String> {
        let shown = file.display().to_string();
        let read = tokio::task::spawn_blocking(move || {
            metasystem_actors::logfile::tail(&file, lines, MAX_BYTES)
        })
        .await;
        match read {
            Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Err(e)) => Err(format!("cannot read {shown}: {e}")),
            Err(e) => Err(format!("cannot read {shown}: {e}")),
        }
    }

    /// `logs` without `follow`.
    pub async fn logs(&self, req: Logs) -> Answer<LogsResult> {
        let (file, lines) = self.log_file(&req).await?;
        match self.tail(file.clone(), lines).await {
            Ok(text) => Ok(LogsResult {
                path: req.path,
                file: file.display().to_string(),
                text,
            }),
            Err(message) => Err(Failure::new(code::INTERNAL, message)),
        }
    }

    /// `logs --follow`: the connection becomes a stream until either side ends it.
    pub async fn follow_logs<R, W>(
        &self,
        id: Option<u64>,
        req: Logs,
        reader: &mut R,
        writer: &mut W,
        slot: &Slot,
        mut stop: watch::Receiver<bool>,
    ) -> io::Result<()>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (file, lines) = match self.log_file(&req).await {
            Ok(found) => found,
            Err(failure) => {
                return write_line(writer, &Response::answer::<()>(id, Err(failure))).await
            }
        };
        // Subscribed before the files are read: output in between may show twice, never
        // not at all.
        let mut live = self.services.processes.follow(&req.path);
        let mut out = Out { writer, slot, id };
        out.send(StreamItem::Subscribed(Topic::Logs)).await?;
        if lines > 0 {
            match self.tail(file, lines).await {
                Ok(text) if !text.is_empty() => out.send(StreamItem::Log(text)).await?,
                Ok(_) => {}
                Err(message) => tracing::warn!(path = %req.path, "{message}"),
            }
        }
        let gone = super::stream::until_eof(reader);
        tokio::pin!(gone);
        loop {
            tokio::select! {
                biased;
                chunk = live.recv() => match chunk {
                    Ok(c) if c.stderr == req.stderr => {
                        out.send(StreamItem::Log(String::from_utf8_lossy(&c.data).into_owned())).await?;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => out.send(StreamItem::Dropped(n)).await?,
                    Err(RecvError::Closed) => {
                        return out.send(StreamItem::End("the process is gone".into())).await;
                    }
                },
                () = &mut gone => return Ok(()),
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    return out.send(StreamItem::End("the daemon is shutting down".into())).await;
                }
            }
        }
    }
}

/// The stream's side of the connection (as `subscribe`'s): each line marks the slot as
/// waiting on the client while it is written.
struct Out<'a, W> {
    writer: &'a mut W,
    slot: &'a Slot,
    id: Option<u64>,
}

impl<W: AsyncWrite + Unpin> Out<'_, W> {
    async fn send(&mut self, item: StreamItem) -> io::Result<()> {
        self.slot.set(Activity::Writing(Instant::now()));
        let written = write_line(self.writer, &Response::ok(self.id, json!(item))).await;
        self.slot.set(Activity::Streaming);
        written
    }
}
