//! The CLI's side of the socket: blocking std I/O, no async runtime, so a command costs little
//! more than process start.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::protocol::{Command, Envelope, Failure, Response, MAX_LINE, PROTOCOL_VERSION};
use super::request::Request;

/// One reply line larger than this is refused (the daemon pages large answers; a tree of
/// 10,000 nodes is ~3 MB).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum ClientError {
    /// Could not reach the daemon.
    Connect(String),
    /// The conversation broke off or the reply was unreadable.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(m) | ClientError::Protocol(m) => f.write_str(m),
        }
    }
}

/// A conversation with the daemon: requests answered in order, or one stream.
pub struct Connection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    shown: String,
    timeout: Option<Duration>,
    next_id: u64,
}

impl Connection {
    /// Connects; every read and write waits at most `timeout` (`None`: forever, for streams).
    pub fn open(socket: &Path, timeout: Option<Duration>) -> Result<Connection, ClientError> {
        let shown = socket.display().to_string();
        let stream = UnixStream::connect(socket).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    " (is the daemon running? `metasystem run` starts one; a daemon started \
                     before [daemon] socket or state_dir was edited still listens on the old \
                     socket: pass --socket)"
                }
                std::io::ErrorKind::PermissionDenied => " (the socket belongs to another user)",
                _ => "",
            };
            ClientError::Connect(format!("cannot connect to {shown}: {e}{hint}"))
        })?;
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let reader = stream
            .try_clone()
            .map(BufReader::new)
            .map_err(|e| ClientError::Connect(format!("cannot use {shown}: {e}")))?;
        Ok(Connection {
            stream,
            reader,
            shown,
            timeout,
            next_id: 1,
        })
    }

    /// From now on reads wait as long as it takes (a stream).
    pub fn wait_forever(&mut self) {
        let _ = self.stream.set_read_timeout(None);
        let _ = self.reader.get_ref().set_read_timeout(None);
        self.timeout = None;
    }

    /// Sends `request` and waits for its typed answer: the command's result, or why the
    /// daemon refused. An answer that does not read as the command's result is an error.
    pub fn call<R: Request>(
        &mut self,
        request: R,
    ) -> Result<Result<R::Response, Failure>, ClientError> {
        decode::<R::Response>(self.request(request.into())?)
    }

    /// Sends one request and waits for its response.
    pub fn request(&mut self, command: Command) -> Result<Response, ClientError> {
        let sent = self.send(command);
        // A daemon that refuses us (another user, too many connections) answers and closes at
        // once, possibly before our request is written: a failed write still reads its answer.
        let line = match (self.line(), sent) {
            (Ok(Some(line)), _) => line,
            (Ok(None), Err(e)) | (Err(_), Err(e)) => return Err(e),
            (Ok(None), Ok(())) => {
                return Err(ClientError::Protocol(
                    "the daemon closed the connection without answering".into(),
                ))
            }
            (Err(e), Ok(())) => return Err(e),
        };
        serde_json::from_str(&line)
            .map_err(|e| ClientError::Protocol(format!("unreadable answer from the daemon: {e}")))
    }

    /// Sends one request without waiting (a stream's answers follow as lines).
    pub fn send(&mut self, command: Command) -> Result<(), ClientError> {
        // The daemon answers `timeout` a little before we would give up, so its answer (and
        // not a broken read) is what the user sees.
        let deadline_ms = self.timeout.map(|t| {
            u64::try_from(t.as_millis() * 9 / 10)
                .unwrap_or(u64::MAX)
                .max(1)
        });
        let line = serde_json::to_string(&Envelope {
            v: PROTOCOL_VERSION,
            id: self.next_id,
            deadline_ms,
            command,
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.next_id += 1;
        if line.len() > MAX_LINE {
            return Err(ClientError::Protocol(format!(
                "the request is longer than {MAX_LINE} bytes"
            )));
        }
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| ClientError::Protocol(format!("cannot send to {}: {e}", self.shown)))
    }

    /// The next line from the daemon as JSON; `None` when it closed the connection.
    pub fn next_value(&mut self) -> Result<Option<Value>, ClientError> {
        match self.line()? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line).map(Some).map_err(|e| {
                ClientError::Protocol(format!("unreadable answer from the daemon: {e}"))
            }),
        }
    }

    fn line(&mut self) -> Result<Option<String>, ClientError> {
        let mut reply = String::new();
        let read = (&mut self.reader).take(MAX_REPLY).read_line(&mut reply);
        match read {
            Ok(0) => Ok(None),
            Ok(_) if !reply.ends_with('\n') => Err(ClientError::Protocol(
                "the daemon's answer was cut off".into(),
            )),
            Ok(_) => Ok(Some(reply)),
            Err(e) => Err(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    ClientError::Protocol(format!(
                        "no answer from the daemon within {}",
                        self.timeout
                            .map(|t| humantime::format_duration(t).to_string())
                            .unwrap_or_default()
                    ))
                }
                _ => ClientError::Protocol(format!("cannot read the answer: {e}")),
            }),
        }
    }
}

/// Sends one request on a new connection and waits (up to `timeout`) for its response.
pub fn request(
    socket: &Path,
    command: Command,
    timeout: Duration,
) -> Result<Response, ClientError> {
    Connection::open(socket, Some(timeout))?.request(command)
}

/// A response as its typed answer: the result, or why the daemon refused.
pub fn decode<T: serde::de::DeserializeOwned>(
    response: Response,
) -> Result<Result<T, Failure>, ClientError> {
    if !response.ok {
        return Ok(Err(response.error.unwrap_or_else(|| {
            Failure::new(
                super::protocol::code::INTERNAL,
                "the daemon refused without saying why",
            )
        })));
    }
    serde_json::from_value(response.result.unwrap_or(Value::Null))
        .map(Ok)
        .map_err(|e| ClientError::Protocol(format!("unreadable answer from the daemon: {e}")))
}
