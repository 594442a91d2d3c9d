//! The CLI's side of the socket: blocking std I/O, no async runtime, so a command costs little
//! more than process start.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Command, Request, Response, MAX_LINE, PROTOCOL_VERSION};

/// Replies larger than this are refused (a tree of 10,000 nodes is ~3 MB).
const MAX_REPLY: u64 = 256 * 1024 * 1024;

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

/// Sends one request and waits (up to `timeout`) for its response.
pub fn request(
    socket: &Path,
    command: Command,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is the daemon running? start it with `metasystem run`)"
            }
            std::io::ErrorKind::PermissionDenied => " (the socket belongs to another user)",
            _ => "",
        };
        ClientError::Connect(format!("cannot connect to {shown}: {e}{hint}"))
    })?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let line = serde_json::to_string(&Request {
        v: PROTOCOL_VERSION,
        id: 1,
        command,
    })
    .map_err(|e| ClientError::Protocol(e.to_string()))?;
    if line.len() > MAX_LINE {
        return Err(ClientError::Protocol("request too long".into()));
    }
    // A daemon that refuses us (another user, too many connections) answers and closes at
    // once, possibly before our request is written: a failed write still reads its answer.
    let sent = stream.write_all(format!("{line}\n").as_bytes());
    let mut reply = String::new();
    let read = BufReader::new(std::io::Read::take(&stream, MAX_REPLY)).read_line(&mut reply);
    if let (Err(e), Err(_)) = (&sent, &read) {
        return Err(ClientError::Protocol(format!(
            "cannot send to {shown}: {e}"
        )));
    }
    read.map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ClientError::Protocol(format!(
                "no answer from the daemon within {}",
                humantime::format_duration(timeout)
            ))
        }
        _ => ClientError::Protocol(format!("cannot read the answer: {e}")),
    })?;
    if reply.is_empty() {
        return Err(ClientError::Protocol(match sent {
            Err(e) => format!("cannot send to {shown}: {e}"),
            Ok(()) => "the daemon closed the connection without answering".into(),
        }));
    }
    serde_json::from_str(&reply)
        .map_err(|e| ClientError::Protocol(format!("unreadable answer from the daemon: {e}")))
}
