//! The control socket server: a Unix socket in a 0700 directory, itself 0600; peers must be the
//! daemon's own user or root (SO_PEERCRED); connections are capped; lines are capped; anything
//! malformed gets an error response and the connection and the daemon go on.

use crate::control::request::{Logs, Subscribe};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::protocol::{code, parse_request, Command, Parsed, Response, MAX_LINE};
use super::slots::{Activity, Refusal, Slot, Slots, Throttle};
use crate::daemon::{Daemon, Subscription};

/// A request's deadline when it does not give one (`deadline_ms`), and the most it may ask.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
const MAX_DEADLINE: Duration = Duration::from_secs(600);
/// Refused connections are logged at most once per this, with a count of the others.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// A client that does not take its answer within this long is dropped (it must not hold a
/// connection slot forever by never reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket: its directory must be private (see [`private_dir`]); a stale
/// socket is replaced, but never a file that is not a socket and never a socket a daemon still
/// answers on; the socket is made 0600.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    crate::config::socket_path_fits(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    private_dir(dir, false)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{shown} exists and is not a socket; refusing to replace it"
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another metasystem daemon is already running on {shown}"
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the stale socket {shown}: {e}"))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {shown}: {e}")),
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot bind {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set permissions of {shown}: {e}"))?;
    Ok(listener)
}

/// Makes sure `dir` is private to this user: created 0700 when missing; an existing one must
/// belong to us. If it is open to others: the state dir (`ours`: everything in it is
/// metasystem's) is tightened to 0700, unless it is shared by nature (sticky, like /tmp) or is
/// $HOME or /; any other directory is refused, never chmodded.
pub fn private_dir(dir: &Path, ours: bool) -> Result<(), String> {
    let shown = dir.display();
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {shown}: {e}"));
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "{shown} belongs to uid {} (we are uid {me}); use a directory of your own",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let shared = mode & 0o1000 != 0 || dir == Path::new("/") || home.as_deref() == Some(dir);
    if !ours || shared {
        return Err(format!(
            "{shown} is mode {mode:04o}: the control socket's directory must be private (0700); \
             use a directory of its own (by default the socket lives in the state dir)"
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set permissions of {shown} to 0700: {e}"))?;
    tracing::info!(dir = %shown, "tightened the state dir's permissions to 0700");
    Ok(())
}

/// Holds `state_dir/daemon.lock` for the daemon's life: one daemon per state dir (one writer
/// of its database). The file holds the owner's pid, for people.
pub fn lock_state_dir(state_dir: &Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    let path = state_dir.join("daemon.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut owner = String::new();
        let _ = file.read_to_string(&mut owner);
        return Err(format!(
            "another metasystem daemon (pid {}) is using the state dir {}",
            owner.trim(),
            state_dir.display()
        ));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// How much the control socket takes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections at once (idle ones give way to new ones; half at most may stream).
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
}

/// How the server is run and stopped.
pub struct Control {
    pub limits: Limits,
    /// The connection slots (the daemon waits on them for streams to end).
    pub slots: Slots,
    /// Turns true: accept no more connections (and remove the socket file).
    pub stop_accepting: watch::Receiver<bool>,
    /// Turns true: end the streams (after the tree stopped and its last events were written).
    pub end_streams: watch::Receiver<bool>,
}

/// Accepts connections until told to stop; then removes the socket file. Connections already
/// open go on until they end (streams, when told).
pub async fn serve(listener: UnixListener, path: PathBuf, daemon: Arc<Daemon>, control: Control) {
    let Control {
        limits: Limits {
            max_connections,
            idle_timeout,
        },
        slots,
        stop_accepting: mut stop,
        end_streams,
    } = control;
    let me = rustix::process::geteuid().as_raw();
    let mut foreign = Throttle::new(REFUSAL_LOG_EVERY);
    let mut full = Throttle::new(REFUSAL_LOG_EVERY);
    let mut failed_accepts = Throttle::new(REFUSAL_LOG_EVERY);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors: free one by evicting the connection that has
                    // waited longest on its client, so the next accept can succeed.
                    let out_of_fds = matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error());
                    let freed = out_of_fds && slots.evict_one(Instant::now());
                    if let Some(suppressed) = failed_accepts.hit(Instant::now()) {
                        tracing::warn!(error = %e, freed_a_slot = freed, suppressed, "accept failed");
                    }
                    if !freed {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            // (the guard wait_for returns is not Send: drop it inside)
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let peer = match stream.peer_cred() {
            Ok(cred) => cred,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read peer credentials; closing");
                continue;
            }
        };
        if peer.uid() != me && peer.uid() != 0 {
            if let Some(suppressed) = foreign.hit(Instant::now()) {
                tracing::warn!(
                    peer_uid = peer.uid(),
                    peer_pid = ?peer.pid(),
                    suppressed,
                    "refused a control connection from another user"
                );
            }
            refuse(
                stream,
                code::FORBIDDEN,
                format!(
                    "uid {} may not control this daemon (only uid {me} and root may)",
                    peer.uid()
                ),
            );
            continue;
        }
        let slot = match slots.admit(Instant::now()) {
            Ok(slot) => slot,
            Err(Refusal::Full) => {
                if let Some(suppressed) = full.hit(Instant::now()) {
                    tracing::warn!(
                        max_connections,
                        suppressed,
                        "control connection refused: every connection is busy"
                    );
                }
                refuse(
                    stream,
                    code::TOO_MANY_CONNECTIONS,
                    format!(
                        "too many control connections (at most {max_connections}, all in use); try again"
                    ),
                );
                continue;
            }
        };
        let daemon = daemon.clone();
        let stop = end_streams.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, daemon, slot, idle_timeout, stop).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Answers one error line and closes, without holding up the accept loop.
fn refuse(mut stream: UnixStream, code: super::protocol::Code, message: String) {
    tokio::spawn(async move {
        let line = Response::error(None, code, message).to_line();
        let write = async {
            stream.write_all(line.as_bytes()).await?;
            stream.write_all(b"\n").await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
    });
}

/// What ended the wait for a request.
enum Next {
    Line(io::Result<Line>),
    /// No request for the idle timeout.
    Idle,
    /// The slot was given to a newer connection.
    Evicted,
}

async fn connection(
    stream: UnixStream,
    daemon: Arc<Daemon>,
    slot: Slot,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut buf = Vec::new();
    // Only a complete request counts as activity: blank lines and dribbled bytes do not keep
    // an idle connection alive.
    let mut last_request = Instant::now();
    // The last request's task, if it is still running past its deadline: the next request
    // waits for it, so one connection never piles up work.
    let mut previous: Option<JoinHandle<Response>> = None;
    loop {
        slot.set(Activity::Idle(last_request));
        let deadline = tokio::time::Instant::from_std(last_request + idle_timeout);
        let next = tokio::select! {
            line = next_line(&mut reader, &mut buf) => Next::Line(line),
            () = tokio::time::sleep_until(deadline) => Next::Idle,
            () = slot.evicted.notified() => Next::Evicted,
        };
        let line = match next {
            Next::Line(line) => line?,
            Next::Idle => return Ok(()),
            Next::Evicted => {
                let response = Response::error(
                    None,
                    code::EVICTED,
                    "closed: this connection was idle and its slot was needed",
                );
                let _ =
                    tokio::time::timeout(WRITE_TIMEOUT, write_line(&mut writer, &response)).await;
                return Ok(());
            }
        };
        slot.set(Activity::Busy);
        let response = match line {
            Line::Eof => return Ok(()),
            Line::TooLong => Response::error(
                None,
                code::LINE_TOO_LONG,
                format!("request line longer than {MAX_LINE} bytes; skipped"),
            ),
            Line::NotUtf8 => Response::error(None, code::BAD_REQUEST, "request is not UTF-8"),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => {
                last_request = Instant::now();
                match parse_request(&text) {
                    Ok(Parsed {
                        id,
                        command:
                            Command::Subscribe(Subscribe {
                                topic,
                                path,
                                kind,
                                after,
                            }),
                        ..
                    }) => {
                        if !slot.start_stream() {
                            let response = Response::error(
                                id,
                                code::TOO_MANY_STREAMS,
                                "too many streams are open (at most half the connections); try again",
                            );
                            slot.set(Activity::Writing(Instant::now()));
                            timed_write(&mut writer, &response).await?;
                            continue;
                        }
                        // The connection is a stream from now on, until either side ends it.
                        let sub = Subscription {
                            id,
                            topic,
                            path,
                            kind,
                            after,
                        };
                        return daemon
                            .stream(sub, &mut reader, &mut writer, &slot, stop)
                            .await;
                    }
                    Ok(Parsed {
                        id,
                        command: Command::Logs(req @ Logs { follow: true, .. }),
                        ..
                    }) => {
                        if !slot.start_stream() {
                            let response = Response::error(
                                id,
                                code::TOO_MANY_STREAMS,
                                "too many streams are open (at most half the connections); try again",
                            );
                            slot.set(Activity::Writing(Instant::now()));
                            timed_write(&mut writer, &response).await?;
                            continue;
                        }
                        return daemon
                            .follow_logs(id, req, &mut reader, &mut writer, &slot, stop)
                            .await;
                    }
                    Ok(request) => answer(&daemon, request, &mut previous).await,
                    Err(error) => *error,
                }
            }
        };
        slot.set(Activity::Writing(Instant::now()));
        timed_write(&mut writer, &response).await?;
    }
}

/// Runs one request under its deadline, in its own task: past the deadline the client is told
/// `timeout`; a request that changes something goes on (a reload or a stop is never cut in
/// half), one that only reads is abandoned. A panic in the handler becomes an `internal`
/// error instead of ending the connection. A connection's next request first waits for the
/// work of the previous one, so no client piles up work past its deadlines.
async fn answer(
    daemon: &Arc<Daemon>,
    request: Parsed,
    previous: &mut Option<JoinHandle<Response>>,
) -> Response {
    let Parsed {
        id,
        deadline,
        command,
    } = request;
    let deadline = deadline
        .unwrap_or(DEFAULT_DEADLINE)
        .clamp(Duration::from_millis(1), MAX_DEADLINE);
    let until = tokio::time::Instant::now() + deadline;
    let verb = command.name();
    if let Some(running) = previous.as_mut() {
        if tokio::time::timeout_at(until, running).await.is_err() {
            return Response::error(
                id,
                code::TIMEOUT,
                format!(
                    "the previous request on this connection is still running; `{verb}` was not started"
                ),
            );
        }
        *previous = None;
    }
    let read_only = command.is_read_only();
    let daemon = daemon.clone();
    let mut work = tokio::spawn(async move { daemon.handle(id, command).await });
    match tokio::time::timeout_at(until, &mut work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!(error = %e, command = verb, "a control request failed");
            Response::error(
                id,
                code::INTERNAL,
                format!("`{verb}` failed inside the daemon: {e}"),
            )
        }
        Err(_) => {
            let more = if read_only {
                work.abort();
                ""
            } else {
                *previous = Some(work);
                "; it may still complete (see `tree` and `events`)"
            };
            Response::error(
                id,
                code::TIMEOUT,
                format!(
                    "`{verb}` did not finish within {}{more}",
                    humantime::format_duration(deadline)
                ),
            )
        }
    }
}

/// One response line, flushed.
pub(crate) async fn write_line<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    response: &Response,
) -> io::Result<()> {
    let mut line = response.to_line();
    line.push('\n');
    writer.write_all(line.as_bytes()).await?;
    writer.flush().await
}

/// Writes an answer; a client that does not take it within WRITE_TIMEOUT is dropped (it must
/// not hold a connection slot forever by never reading).
async fn timed_write<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    response: &Response,
) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, write_line(writer, response)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read its answer",
        )),
    }
}

#[derive(Debug, PartialEq)]
enum Line {
    Text(String),
    NotUtf8,
    TooLong,
    Eof,
}

/// The next line (without its `\n` or `\r\n`). A line longer than MAX_LINE is skipped whole
/// and reported once; a last line without a newline is still a line.
async fn next_line<R: AsyncBufRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                text(buf)
            });
        }
        let (chunk, used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { text(buf) });
        }
    }
}

fn text(buf: &[u8]) -> Line {
    let trimmed = buf.strip_suffix(b"\r").unwrap_or(buf);
    match std::str::from_utf8(trimmed) {
        Ok(s) => Line::Text(s.to_string()),
        Err(_) => Line::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<Line> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for _ in 0..100 {
            match next_line(&mut reader, &mut buf).await {
                Ok(Line::Eof) => break,
                Ok(line) => out.push(line),
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_capped_and_checked() {
        let mut input = b"{\"id\":1}\r\nsecond\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 10]);
        input.extend(b"\n\xff\xfe\nhalf");
        assert_eq!(
            lines(&input).await,
            [
                Line::Text("{\"id\":1}".into()),
                Line::Text("second".into()),
                Line::TooLong,
                Line::NotUtf8,
                Line::Text("half".into()),
            ]
        );
        let exactly = vec![b'y'; MAX_LINE];
        assert_eq!(lines(&exactly).await, [Line::Text("y".repeat(MAX_LINE))]);
    }
}
