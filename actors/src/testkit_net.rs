//! Loopback sinks for tests (feature `testkit`, exported as `metasystem_actors::sinks`): an
//! HTTP server and an SMTP server on 127.0.0.1 that record what they receive and answer from
//! a script. Every read is bounded in size and time; dropping a sink stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long a sink waits for the next bytes of a client before it hangs up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_LINE: usize = 64 * 1024;
const MAX_HEADERS: usize = 200;
const MAX_BODY: usize = 32 * 1024 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `127.0.0.1` port with nothing listening (bound, then released): connecting is refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}

/// Reads one line (up to `\n`, at most [`MAX_LINE`] bytes), without its line ending. `None`
/// at end of stream, on timeout, or on an overlong line.
async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<String> {
    let mut buf = Vec::new();
    let mut limited = r.take(MAX_LINE as u64);
    let n = tokio::time::timeout(IO_TIMEOUT, limited.read_until(b'\n', &mut buf))
        .await
        .ok()?
        .ok()?;
    if n == 0 || buf.last() != Some(&b'\n') {
        return None;
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

// ------------------------------------------------------------------------------------------
// HTTP

/// One request the HTTP sink received.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/hook?wait=true`).
    pub target: String,
    /// In order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it had arrived whole.
    pub at: std::time::Instant,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query string (empty for none).
    pub fn query(&self) -> &str {
        self.target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
    }
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Option<Duration>,
    /// Close the connection without answering.
    pub hang_up: bool,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: None,
            hang_up: false,
        }
    }

    /// Closes the connection after reading the request, answering nothing.
    pub fn hang_up() -> Self {
        Reply {
            hang_up: true,
            ..Reply::new(0, "")
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

struct HttpState {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// An HTTP/1.1 server on 127.0.0.1: records each request, answers with the next scripted
/// reply (then the default: `200 ok`), and closes the connection after each answer.
/// Accepts connections until the task is aborted, serving each in its own task.
fn accept_loop<S, F, Fut>(
    listener: TcpListener,
    state: Arc<S>,
    arrived: Arc<Notify>,
    serve: F,
) -> JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: Fn(TcpStream, Arc<S>, Arc<Notify>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&state), Arc::clone(&arrived)));
        }
    })
}

pub struct HttpSink {
    addr: SocketAddr,
    state: Arc<Mutex<HttpState>>,
    arrived: Arc<Notify>,
    task: JoinHandle<()>,
}

impl HttpSink {
    pub async fn start() -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(HttpState {
            requests: Vec::new(),
            script: VecDeque::new(),
            default: Reply::new(200, "ok"),
        }));
        let arrived = Arc::new(Notify::new());
        let task = accept_loop(
            listener,
            Arc::clone(&state),
            Arc::clone(&arrived),
            serve_http,
        );
        HttpSink {
            addr,
            state,
            arrived,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Queues the answer to the next request not yet answered from the queue.
    pub fn push(&self, reply: Reply) {
        lock(&self.state).script.push_back(reply);
    }

    /// The answer once the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        lock(&self.state).default = reply;
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Waits until at least `n` requests arrived (or `within` passed) and returns them all.
    pub async fn wait_requests(&self, n: usize, within: Duration) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_http(stream: TcpStream, state: Arc<Mutex<HttpState>>, arrived: Arc<Notify>) {
    let mut reader = BufReader::new(stream);
    let Some(request_line) = read_line(&mut reader).await else {
        return;
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(&mut reader).await else {
            return;
        };
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return;
    }
    let mut body = vec![0; length];
    match tokio::time::timeout(IO_TIMEOUT, reader.read_exact(&mut body)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let reply = {
        let mut s = lock(&state);
        s.requests.push(Request {
            at: std::time::Instant::now(),
            method,
            target,
            headers,
            body,
        });
        s.script.pop_front().unwrap_or_else(|| s.default.clone())
    };
    arrived.notify_waiters();
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    if reply.hang_up {
        return;
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.push_str(&reply.body);
    let mut stream = reader.into_inner();
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        let _ = stream.write_all(out.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// SMTP

/// One message the SMTP sink accepted (or was given before it refused the DATA).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mail {
    /// The EHLO/HELO argument.
    pub helo: String,
    /// `MAIL FROM` address, without the angle brackets.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line endings, without the final `.` line.
    pub data: String,
    /// The credentials of the session's AUTH, decoded.
    pub auth: Option<(String, String)>,
}

impl Mail {
    /// The header section (before the first empty line), unfolded: `(name, value)`.
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        out
    }

    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The body as sent (after the first empty line; not transfer-decoded).
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

/// What the SMTP sink answers where a script can change it.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpScript {
    /// AUTH mechanisms advertised in the EHLO reply (`""`: no AUTH).
    pub auth_mechanisms: String,
    /// Advertise STARTTLS (the sink cannot do TLS: it answers `454` to the command).
    pub offer_starttls: bool,
    /// Answer to `MAIL FROM` instead of `250` (e.g. `(451, "try later")`).
    pub mail_reply: Option<(u16, String)>,
    /// Answer to `RCPT TO` instead of `250`.
    pub rcpt_reply: Option<(u16, String)>,
    /// Recipients answered `550 no such user` (the others as usual).
    pub refuse_rcpt: Vec<String>,
    /// Recipients answered `450 mailbox busy` (try again later; the others as usual).
    pub defer_rcpt: Vec<String>,
    /// Answer after the message data instead of `250`.
    pub data_reply: Option<(u16, String)>,
    /// Answer to AUTH instead of `235` (e.g. `(535, "bad credentials")`).
    pub auth_reply: Option<(u16, String)>,
}

impl Default for SmtpScript {
    fn default() -> Self {
        SmtpScript {
            auth_mechanisms: "PLAIN LOGIN".to_string(),
            offer_starttls: false,
            mail_reply: None,
            rcpt_reply: None,
            refuse_rcpt: Vec::new(),
            defer_rcpt: Vec::new(),
            data_reply: None,
            auth_reply: None,
        }
    }
}

struct SmtpState {
    script: SmtpScript,
    /// Messages whose DATA completed (accepted or refused after the data).
    mails: Vec<Mail>,
    /// Every command line received, in order (AUTH payloads included, as sent).
    commands: Vec<String>,
    sessions: usize,
}

/// An SMTP server on 127.0.0.1, plain text only: a 220 greeting, EHLO/HELO, AUTH PLAIN and
/// LOGIN (any credentials accepted and recorded), MAIL, RCPT, DATA (dot-unstuffed), RSET,
/// NOOP, QUIT; STARTTLS answered `454` when offered.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<SmtpState>>,
    arrived: Arc<Notify>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        SmtpSink::start_with(SmtpScript::default()).await
    }

    pub async fn start_with(script: SmtpScript) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(SmtpState {
            script,
            mails: Vec::new(),
            commands: Vec::new(),
            sessions: 0,
        }));
        let arrived = Arc::new(Notify::new());
        let task = accept_loop(
            listener,
            Arc::clone(&state),
            Arc::clone(&arrived),
            serve_smtp,
        );
        SmtpSink {
            addr,
            state,
            arrived,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, for an email channel's `smtp`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Changes the script for the next commands.
    pub fn script(&self, f: impl FnOnce(&mut SmtpScript)) {
        f(&mut lock(&self.state).script);
    }

    pub fn mails(&self) -> Vec<Mail> {
        lock(&self.state).mails.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        lock(&self.state).commands.clone()
    }

    /// Connections accepted so far.
    pub fn sessions(&self) -> usize {
        lock(&self.state).sessions
    }

    /// Waits until at least `n` messages arrived (or `within` passed) and returns them all.
    pub async fn wait_mails(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let got = self.mails();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.mails();
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Standard base64 (padding optional, whitespace ignored); `None` on a bad character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn b64_text(s: &str) -> String {
    String::from_utf8_lossy(&base64_decode(s.trim()).unwrap_or_default()).into_owned()
}

/// `\0user\0pass` (authzid, authcid, password) to `(user, pass)`.
fn decode_plain(s: &str) -> (String, String) {
    let raw = b64_text(s);
    let mut parts = raw.split('\0');
    let _authzid = parts.next();
    let user = parts.next().unwrap_or_default().to_string();
    let pass = parts.next().unwrap_or_default().to_string();
    (user, pass)
}

fn strip_angles(s: &str) -> String {
    let s = s.trim();
    let s = s.split_whitespace().next().unwrap_or_default(); // drop SIZE=.. and friends
    s.trim_start_matches('<').trim_end_matches('>').to_string()
}

async fn serve_smtp(stream: TcpStream, state: Arc<Mutex<SmtpState>>, arrived: Arc<Notify>) {
    lock(&state).sessions += 1;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    macro_rules! say {
        ($($arg:tt)*) => {{
            let line = format!($($arg)*);
            let sent = tokio::time::timeout(IO_TIMEOUT, write.write_all(line.as_bytes())).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }};
    }
    say!("220 sink.test ESMTP metasystem test sink\r\n");
    let mut mail = Mail::default();
    let mut auth: Option<(String, String)> = None;
    // Bounded: a session ends after this many commands.
    for _ in 0..10_000 {
        let Some(line) = read_line(&mut reader).await else {
            return;
        };
        let script = {
            let mut s = lock(&state);
            s.commands.push(line.clone());
            s.script.clone()
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                mail = Mail {
                    helo: arg,
                    auth: auth.clone(),
                    ..Mail::default()
                };
                let mut lines = vec!["sink.test".to_string(), "8BITMIME".to_string()];
                if !script.auth_mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", script.auth_mechanisms));
                }
                if script.offer_starttls {
                    lines.push("STARTTLS".to_string());
                }
                lines.push("SMTPUTF8".to_string());
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    say!("250{sep}{l}\r\n");
                }
            }
            "HELO" => {
                mail = Mail {
                    helo: arg,
                    auth: auth.clone(),
                    ..Mail::default()
                };
                say!("250 sink.test\r\n");
            }
            "STARTTLS" => say!("454 4.7.0 TLS not available\r\n"),
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mech = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let creds = match mech.as_str() {
                    "PLAIN" => {
                        let payload = match initial {
                            Some(p) => p,
                            None => {
                                say!("334 \r\n");
                                let Some(p) = read_line(&mut reader).await else {
                                    return;
                                };
                                p
                            }
                        };
                        Some(decode_plain(&payload))
                    }
                    "LOGIN" => {
                        let user = match initial {
                            Some(u) => b64_text(&u),
                            None => {
                                say!("334 VXNlcm5hbWU6\r\n");
                                let Some(u) = read_line(&mut reader).await else {
                                    return;
                                };
                                b64_text(&u)
                            }
                        };
                        say!("334 UGFzc3dvcmQ6\r\n");
                        let Some(p) = read_line(&mut reader).await else {
                            return;
                        };
                        Some((user, b64_text(&p)))
                    }
                    _ => None,
                };
                match (creds, &script.auth_reply) {
                    (None, _) => say!("504 5.5.4 mechanism not supported\r\n"),
                    (Some(_), Some((code, text))) => say!("{code} {text}\r\n"),
                    (Some(c), None) => {
                        auth = Some(c);
                        mail.auth = auth.clone();
                        say!("235 2.7.0 Authentication successful\r\n");
                    }
                }
            }
            "MAIL" => {
                if let Some((code, text)) = &script.mail_reply {
                    say!("{code} {text}\r\n");
                } else {
                    let from = arg.split_once(':').map(|(_, a)| a).unwrap_or_default();
                    mail.from = strip_angles(from);
                    mail.to.clear();
                    say!("250 2.1.0 Ok\r\n");
                }
            }
            "RCPT" => {
                let to = strip_angles(arg.split_once(':').map(|(_, a)| a).unwrap_or_default());
                if let Some((code, text)) = &script.rcpt_reply {
                    say!("{code} {text}\r\n");
                } else if script.refuse_rcpt.contains(&to) {
                    say!("550 5.1.1 <{to}>: no such user\r\n");
                } else if script.defer_rcpt.contains(&to) {
                    say!("450 4.2.1 <{to}>: mailbox busy, try again later\r\n");
                } else {
                    mail.to.push(to);
                    say!("250 2.1.5 Ok\r\n");
                }
            }
            "DATA" => {
                if mail.to.is_empty() {
                    say!("554 5.5.1 no valid recipients\r\n");
                    continue;
                }
                say!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = String::new();
                loop {
                    let Some(line) = read_line(&mut reader).await else {
                        return;
                    };
                    if line == "." {
                        break;
                    }
                    if data.len() + line.len() > MAX_BODY {
                        return;
                    }
                    let line = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(line);
                    data.push_str("\r\n");
                }
                mail.data = data;
                lock(&state).mails.push(mail.clone());
                arrived.notify_waiters();
                match &script.data_reply {
                    Some((code, text)) => say!("{code} {text}\r\n"),
                    None => say!(
                        "250 2.0.0 Ok: queued as SINK{}\r\n",
                        lock(&state).mails.len()
                    ),
                }
                mail.from.clear();
                mail.to.clear();
                mail.data.clear();
            }
            "RSET" => {
                mail.from.clear();
                mail.to.clear();
                mail.data.clear();
                say!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => say!("250 2.0.0 Ok\r\n"),
            "QUIT" => {
                say!("221 2.0.0 Bye\r\n");
                return;
            }
            _ => say!("502 5.5.2 command not recognized\r\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(
            base64_decode("AHVzZXIAcGFzcw==").as_deref(),
            Some(&b"\0user\0pass"[..])
        );
        assert_eq!(
            base64_decode("VXNlcm5hbWU6").as_deref(),
            Some(&b"Username:"[..])
        );
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("a*b"), None);
        assert_eq!(
            decode_plain("AHVzZXIAcGFzcw=="),
            ("user".into(), "pass".into())
        );
    }

    #[test]
    fn mail_headers_unfold() {
        let m = Mail {
            data: "Subject: a\r\n b\r\nTo: x@y\r\n\r\nhello\r\n".into(),
            ..Mail::default()
        };
        assert_eq!(m.header("subject").as_deref(), Some("a b"));
        assert_eq!(m.header("To").as_deref(), Some("x@y"));
        assert_eq!(m.body(), "hello\r\n");
    }
}
