//! `supervision.toml` → typed config. Every problem in a file is collected and reported as
//! `FILE:LINE:COL: message`; unknown keys suggest the nearest valid one; secrets are never
//! inline. The engine never sees TOML: `crate::wiring` turns this into engine specs.

pub mod diff;
pub mod reader;
pub mod refs;
pub mod schema;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metasystem_actors::{Restart, Shutdown};
use toml::de::DeTable;

pub use crate::kinds::supervisor::SupervisorConfig;
pub use crate::kinds::Kind;
use crate::kinds::ParseCx;
use reader::{one_of, resolve, suggest, Diags, Table};
pub use reader::{ConfigError, ConfigErrors};

/// The repository's own `supervision.toml`, compiled in: what `metasystem run` runs when no file
/// is given and none is at the default place.
pub const EMBEDDED: &str = include_str!("../../supervision.toml");

/// Name shown in messages about the embedded file.
pub const EMBEDDED_NAME: &str = "<embedded supervision.toml>";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub telemetry: TelemetryConfig,
    pub root: SupervisorConfig,
}

/// `[telemetry]`: OpenTelemetry metrics over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    /// `otlp_endpoint`: the collector's base URL (http or https); metrics are posted to
    /// `<endpoint>/v1/metrics`. `None`: no export.
    pub otlp_endpoint: Option<String>,
    /// `otlp_interval`: how often metrics are exported.
    pub otlp_interval: Duration,
}

pub const DEFAULT_OTLP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// metastore.db lives here (backups/, logs/ later).
    pub state_dir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// Concurrent control connections; more are refused with an error.
    pub max_connections: usize,
    /// A control connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// `http`: where the HTTP listener (`/metrics`, `/health`) binds; `None`: no listener.
    /// Loopback only unless `http_allow_remote = true`.
    pub http: Option<std::net::SocketAddr>,
    /// `blocking_checks`: how many probe checks that block a thread (disk, memory, sqlite)
    /// run at once, all probes together; default 2 x CPUs, at least 4, at most 32.
    pub blocking_checks: usize,
    /// `log_file` (relative to the state dir), rotated by `log_rotate` (a size, default
    /// 10MB, or "daily") keeping `log_keep` (5) old files: the daemon's log besides stderr.
    pub log_file: Option<metasystem_actors::logfile::LogSpec>,
    /// `log_format = "json"`: log lines as JSON objects (stderr and the file).
    pub log_json: bool,
    /// `log_stderr`: every log line also goes to stderr. Default: true without a `log_file`
    /// (stderr is the log), false with one (stderr then carries only what cannot go to the
    /// file: what is said before logging is up, and lines the file refuses), because a
    /// service manager that keeps stderr in a file of its own (launchd's StandardErrorPath)
    /// never rotates it.
    pub log_stderr: bool,
    /// `host_id`: this host's identity as given (`METASYSTEM_HOST_ID` overrides it); `None`:
    /// the hostname and the machine id ([`metasystem_actors::host`]).
    pub host_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChildConfig {
    pub name: String,
    pub restart: Restart,
    pub shutdown: Shutdown,
    /// How long a start may take before it counts as failed; `None`: as long as it takes
    /// (`"infinity"`, and always for a supervisor, whose start is its children's starts).
    pub start_timeout: Option<Duration>,
    pub kind: Kind,
}

const RESTARTS: [&str; 3] = ["permanent", "transient", "temporary"];
const DEFAULT_MAX_CONNECTIONS: usize = 32;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl Origin {
    pub fn display(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Embedded => EMBEDDED_NAME.to_string(),
        }
    }
}

/// `~/.metasystem/supervision.toml`.
pub fn default_path() -> Option<PathBuf> {
    home().map(|h| h.join(".metasystem").join("supervision.toml"))
}

/// A config file larger than this is refused (a tree of thousands of children is far smaller).
pub const MAX_FILE: u64 = 1024 * 1024;

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Which config `run` and the CLI use: the given file, else `$METASYSTEM_CONFIG` (both must
/// then exist: a typo is an error, never a silent fallback), else the file at the default place
/// if there is one, else the embedded default.
pub fn locate(explicit: Option<&Path>) -> Origin {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("METASYSTEM_CONFIG").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = named {
        // Absolute, so reloads and messages never depend on the working directory.
        return Origin::File(std::path::absolute(&p).unwrap_or(p));
    }
    match default_path() {
        Some(p) if p.exists() => Origin::File(p),
        _ => Origin::Embedded,
    }
}

/// Reads a config file: only a regular file (never a FIFO or a device, which could block or
/// never end), at most [`MAX_FILE`] bytes, UTF-8.
fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("cannot read: not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "cannot read: {} bytes is more than the {MAX_FILE}-byte limit",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("cannot read: more than {MAX_FILE} bytes"));
    }
    Ok(text)
}

fn base_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")))
}

/// The control socket a config names, read leniently: whatever else is wrong with the file
/// (it may be half-edited), the CLI can still reach the daemon. `[daemon] socket`, else
/// `[daemon] state_dir`/control.sock, else the default.
pub fn socket_of(origin: &Origin) -> Result<PathBuf, String> {
    let (source, base) = match origin {
        Origin::Embedded => (
            EMBEDDED.to_string(),
            std::env::current_dir().unwrap_or_default(),
        ),
        Origin::File(path) => (
            read_file(path).map_err(|e| format!("{}: {e}", path.display()))?,
            base_of(path),
        ),
    };
    let (doc, _) = DeTable::parse_recoverable(&source);
    let daemon = doc
        .get_ref()
        .get("daemon")
        .and_then(|v| v.get_ref().as_table());
    let text = |key: &str| {
        daemon
            .and_then(|t| t.get(key))
            .and_then(|v| v.get_ref().as_str())
            .map(str::to_string)
    };
    let mut d = Diags::default();
    let found = match (text("socket"), text("state_dir")) {
        (Some(socket), _) => expand(&mut d, &socket, 0..0, &base),
        (None, Some(state)) => expand(&mut d, &state, 0..0, &base).map(|s| s.join("control.sock")),
        (None, None) => default_state_dir(&mut d).map(|s| s.join("control.sock")),
    };
    found.ok_or_else(|| {
        d.0.first()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "no socket path".into())
    })
}

/// Reads and validates the config from `origin`.
pub fn load(origin: &Origin) -> Result<Config, ConfigErrors> {
    match origin {
        Origin::Embedded => {
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            parse(EMBEDDED, EMBEDDED_NAME, &base)
        }
        Origin::File(path) => {
            let name = path.display().to_string();
            let source = read_file(path).map_err(|e| ConfigErrors::whole_file(&name, e))?;
            parse(&source, &name, &base_of(path))
        }
    }
}

/// Parses and validates `source`; relative paths are taken from `base`.
pub fn parse(source: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let (doc, syntax) = DeTable::parse_recoverable(source);
    let mut d = Diags::default();
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            if e.message().contains("recursion limit") {
                // The reader gave up on nesting, with no position: say where and what.
                match too_deep(source) {
                    Some(at) => d.error(at, depth_message()),
                    None => d.error(span, format!("{}: {}", e.message(), depth_message())),
                }
            } else {
                d.error(span, e.message().to_string());
            }
        }
        return Err(resolve(file, source, d.0));
    }
    let mut top = Table::new(doc.get_ref(), 0..0, "the file");
    let daemon = {
        let table = top.table(&mut d, "daemon");
        daemon(&mut d, table, base)
    };
    let telemetry = {
        let table = top.table(&mut d, "telemetry");
        telemetry(&mut d, table)
    };
    let mut refs = refs::Refs::default();
    let host = crate::kinds::HostSlot::new(
        daemon.as_ref().and_then(|c| c.host_id.clone()),
        daemon
            .as_ref()
            .map_or_else(|| base.to_path_buf(), |c| c.state_dir.clone()),
    );
    let root = match top.table(&mut d, "root") {
        Some(mut t) => {
            t.context = "[root]".into();
            let mut cx = ParseCx {
                d: &mut d,
                refs: &mut refs,
                path: "root".into(),
                depth: 0,
                host: &host,
                backoff: crate::kinds::supervisor::DEFAULT_BACKOFF,
                state_dir: daemon
                    .as_ref()
                    .map_or_else(|| base.to_path_buf(), |c| c.state_dir.clone()),
            };
            let root = SupervisorConfig::read(&mut cx, &mut t);
            if root.children.is_empty() && !t.has("children") {
                d.error(
                    t.span.clone(),
                    "[root] has no children: add at least one [[root.children]] (a tree of nothing supervises nothing)",
                );
            }
            let root_span = t.span.clone();
            t.finish(&mut d);
            for kind in Kind::singletons() {
                let paths = crate::wiring::paths_of_kind(&root, "root", kind);
                if paths.len() > 1 {
                    d.error(
                        root_span.clone(),
                        format!(
                            "the tree may have one child of kind `{kind}` (it serves the whole daemon), not {}: {}",
                            paths.len(),
                            paths.join(", ")
                        ),
                    );
                }
            }
            refs::check(&mut d, &refs);
            root
        }
        None => {
            // An empty or truncated file must not read as "remove everything".
            d.error(
                0..0,
                "the file has no [root] table: a config needs [root] and at least one [[root.children]]",
            );
            SupervisorConfig {
                settings: SupervisorConfig::default_settings(),
                children: Vec::new(),
            }
        }
    };
    top.finish(&mut d);
    match (d.0.is_empty(), daemon, root) {
        (true, Some(daemon), root) => Ok(Config {
            daemon,
            telemetry,
            root,
        }),
        _ => Err(resolve(file, source, d.0)),
    }
}

/// `~/x` → `$HOME/x`; relative → under `base`.
pub(crate) fn expand(d: &mut Diags, raw: &str, span: Range<usize>, base: &Path) -> Option<PathBuf> {
    let path = if raw == "~" || raw.starts_with("~/") {
        match home() {
            Some(h) => h.join(raw.trim_start_matches('~').trim_start_matches('/')),
            None => {
                d.error(span, format!("cannot expand {raw:?}: HOME is not set"));
                return None;
            }
        }
    } else {
        PathBuf::from(raw)
    };
    if raw.is_empty() {
        d.error(span, "a path must not be empty");
        return None;
    }
    Some(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

/// The longest socket path: sun_path is 108 bytes on Linux and 104 on macOS.
pub const MAX_SOCKET_PATH: usize = 100;

/// Whether a Unix socket can be bound at `path` (its length; the directory is checked by
/// `run`, which needs the filesystem).
pub fn socket_path_fits(path: &Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "{} is too long for a Unix socket ({len} bytes, at most {MAX_SOCKET_PATH})",
            path.display()
        ));
    }
    Ok(())
}

fn depth_message() -> String {
    format!(
        "the file nests too deeply: supervisors nest at most {} levels below the root",
        crate::kinds::supervisor::MAX_DEPTH
    )
}

/// Where the first table header nests deeper than supervisors may (counting `.children`).
fn too_deep(source: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let depth = trimmed
                .split('.')
                .filter(|s| s.trim().starts_with("children"))
                .count();
            if depth > crate::kinds::supervisor::MAX_DEPTH {
                let start = offset + (line.len() - trimmed.len());
                return Some(start..start + 1);
            }
        }
        offset += line.len();
    }
    None
}

fn default_state_dir(d: &mut Diags) -> Option<PathBuf> {
    match home() {
        Some(h) => Some(h.join(".metasystem")),
        None => {
            d.error(
                0..0,
                "HOME is not set: give [daemon] state_dir and socket as absolute paths",
            );
            None
        }
    }
}

fn daemon(d: &mut Diags, table: Option<Table<'_, '_>>, base: &Path) -> Option<DaemonConfig> {
    let Some(mut t) = table else {
        let state_dir = default_state_dir(d)?;
        return Some(DaemonConfig {
            socket: state_dir.join("control.sock"),
            state_dir,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            http: None,
            blocking_checks: metasystem_actors::probes::Slots::default_limit(),
            log_file: None,
            log_json: false,
            log_stderr: true,
            host_id: None,
        });
    };
    t.context = "[daemon]".into();
    let state_dir = match t.string(d, "state_dir") {
        Some(s) => expand(d, s.get_ref(), s.span(), base),
        None => default_state_dir(d),
    };
    let socket = match t.string(d, "socket") {
        Some(s) => {
            let path = expand(d, s.get_ref(), s.span(), base);
            if let Some(p) = &path {
                if let Err(e) = socket_path_fits(p) {
                    d.error(s.span(), format!("`socket` in [daemon]: {e}"));
                }
            }
            path
        }
        None => {
            let path = state_dir.as_ref().map(|s| s.join("control.sock"));
            if let (Some(p), Some(dir)) = (&path, t.take("state_dir")) {
                if let Err(e) = socket_path_fits(p) {
                    d.error(
                        dir.span(),
                        format!("`state_dir` in [daemon] holds the control socket: {e}; set a shorter `socket`"),
                    );
                }
            }
            path
        }
    };
    let max_connections = match t.integer(d, "max_connections") {
        Some(n) if (2..=1024).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            d.error(
                n.span(),
                "`max_connections` in [daemon] must be between 2 and 1024 (half may stream, the rest always takes requests)",
            );
            DEFAULT_MAX_CONNECTIONS
        }
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let idle_timeout = bounded(
        d,
        &mut t,
        "idle_timeout",
        Duration::from_secs(1),
        Duration::from_secs(3600),
    )
    .unwrap_or(DEFAULT_IDLE_TIMEOUT);
    let http = http_address(d, &mut t);
    let max_slots = metasystem_actors::probes::Slots::MAX;
    let blocking_checks = match t.integer(d, "blocking_checks") {
        Some(n) if (1..=max_slots as i64).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            d.error(
                n.span(),
                format!("`blocking_checks` in [daemon] must be between 1 and {max_slots}"),
            );
            metasystem_actors::probes::Slots::default_limit()
        }
        None => metasystem_actors::probes::Slots::default_limit(),
    };
    let (log_file, log_json, log_stderr) = log_settings(d, &mut t, state_dir.as_deref());
    let host_id =
        t.string(d, "host_id")
            .and_then(|v| match metasystem_actors::host::validate(v.get_ref()) {
                Ok(()) => Some(v.get_ref().clone()),
                Err(e) => {
                    d.error(v.span(), format!("`host_id` in [daemon]: {e}"));
                    None
                }
            });
    t.finish(d);
    Some(DaemonConfig {
        state_dir: state_dir?,
        socket: socket?,
        max_connections,
        idle_timeout,
        http,
        blocking_checks,
        log_file,
        log_json,
        log_stderr,
        host_id,
    })
}

/// `log_file`, `log_rotate`, `log_keep`, `log_format`, `log_stderr` of `[daemon]`.
fn log_settings(
    d: &mut Diags,
    t: &mut Table<'_, '_>,
    state_dir: Option<&Path>,
) -> (Option<metasystem_actors::logfile::LogSpec>, bool, bool) {
    use metasystem_actors::logfile::{LogSpec, Rotation, MAX_KEEP};
    let json = t
        .choice(d, "log_format", &["text", "json"])
        .is_some_and(|v| *v.get_ref() == "json");
    let rotation = match t.string(d, "log_rotate") {
        None => Rotation::Size(10_000_000),
        Some(v) if v.get_ref() == "daily" => Rotation::Daily,
        Some(v) => match parse_bytes(v.get_ref()) {
            Ok(n) if n >= 1024 => Rotation::Size(n),
            Ok(_) => {
                d.error(
                    v.span(),
                    "`log_rotate` in [daemon] must be at least 1KiB, or \"daily\"",
                );
                Rotation::Size(10_000_000)
            }
            Err(why) => {
                d.error(
                    v.span(),
                    format!("`log_rotate` in [daemon] must be a size such as \"10MB\", or \"daily\": {why}"),
                );
                Rotation::Size(10_000_000)
            }
        },
    };
    let keep = match t.integer(d, "log_keep") {
        Some(n) if (0..=MAX_KEEP as i64).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            d.error(
                n.span(),
                format!("`log_keep` in [daemon] must be between 0 and {MAX_KEEP}"),
            );
            5
        }
        None => 5,
    };
    let file_given = t.has("log_file");
    let file = t.string(d, "log_file").and_then(|v| {
        let base = state_dir?;
        let path = expand(d, v.get_ref(), v.span(), base)?;
        if v.get_ref().ends_with('/') {
            d.error(
                v.span(),
                "`log_file` in [daemon] must name a file, not a directory",
            );
            return None;
        }
        // What can be known before the first line: a directory there refuses every line
        // (what else goes wrong, a parent that cannot be made, a full disk, is reported when
        // the file refuses lines: see crate::telemetry).
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            d.error(
                v.span(),
                format!(
                    "`log_file` in [daemon] is {}, which is a directory: it must name a file such as \"logs/daemon.log\"",
                    path.display()
                ),
            );
            return None;
        }
        Some(LogSpec {
            path,
            rotation,
            keep,
        })
    });
    let stderr = match t.boolean(d, "log_stderr") {
        Some(v) if !*v.get_ref() && !file_given => {
            d.error(
                v.span(),
                "`log_stderr = false` in [daemon] needs a `log_file`: without one the daemon would log nowhere",
            );
            true
        }
        Some(v) => *v.get_ref(),
        None => !file_given,
    };
    (file, json, stderr)
}

/// `http = "127.0.0.1:9464"`: an IP address and port, on a loopback address unless
/// `http_allow_remote = true` (the listener has no authentication and no TLS).
fn http_address(d: &mut Diags, t: &mut Table<'_, '_>) -> Option<std::net::SocketAddr> {
    let allow_remote = t
        .boolean(d, "http_allow_remote")
        .map(|b| *b.get_ref())
        .unwrap_or(false);
    let s = t.string(d, "http")?;
    let addr = match s.get_ref().parse::<std::net::SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            d.error(
                s.span(),
                format!(
                    "`http` in {} is {:?}: it must be an IP address and a port, such as \"127.0.0.1:9464\" or \"[::1]:9464\"",
                    t.context,
                    s.get_ref()
                ),
            );
            return None;
        }
    };
    if !addr.ip().is_loopback() && !allow_remote {
        d.error(
            s.span(),
            format!(
                "`http` in {} is {addr}, which is not a loopback address: the listener has no authentication or TLS, so it binds to 127.0.0.1 or [::1] only; to serve other hosts anyway, set `http_allow_remote = true` in {}",
                t.context, t.context
            ),
        );
        return None;
    }
    Some(addr)
}

/// `[telemetry]`.
fn telemetry(d: &mut Diags, table: Option<Table<'_, '_>>) -> TelemetryConfig {
    let Some(mut t) = table else {
        return TelemetryConfig {
            otlp_endpoint: None,
            otlp_interval: DEFAULT_OTLP_INTERVAL,
        };
    };
    t.context = "[telemetry]".into();
    let otlp_endpoint =
        t.string(d, "otlp_endpoint")
            .and_then(|s| match check_endpoint(s.get_ref()) {
                Ok(url) => Some(url),
                Err(problem) => {
                    d.error(
                        s.span(),
                        format!(
                            "`otlp_endpoint` in [telemetry] is {:?}: {problem}",
                            s.get_ref()
                        ),
                    );
                    None
                }
            });
    let otlp_interval = bounded(
        d,
        &mut t,
        "otlp_interval",
        Duration::from_secs(1),
        Duration::from_secs(3600),
    )
    .unwrap_or(DEFAULT_OTLP_INTERVAL);
    t.finish(d);
    TelemetryConfig {
        otlp_endpoint,
        otlp_interval,
    }
}

/// An OTLP/HTTP base URL: `http://` or `https://`, a host, no query or fragment; without a
/// trailing slash (the exporter appends `/v1/metrics`).
fn check_endpoint(raw: &str) -> Result<String, String> {
    const HINT: &str = "it must be an http or https URL such as \"http://127.0.0.1:4318\"";
    let rest = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"))
        .ok_or_else(|| HINT.to_string())?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("it has no host; {HINT}"));
    }
    if raw.contains(['?', '#']) || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "it must not hold a query, a fragment or spaces; {HINT}"
        ));
    }
    if host.contains('@') {
        return Err("it must not hold credentials (user:password@)".into());
    }
    if let Some(port) = host
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.ends_with(']'))
    {
        if !host.ends_with(']') && port.parse::<u16>().is_err() {
            return Err(format!(
                "its port {port:?} is not a number from 0 to 65535; {HINT}"
            ));
        }
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// A duration that must be more than zero.
pub(crate) fn positive(
    d: &mut Diags,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<Duration> {
    bounded(d, t, key, Duration::from_nanos(1), MAX_DURATION)
}

/// A size in bytes: an integer, or a string with a unit (`"10GB"`, `"512 MiB"`, `"1.5 TB"`;
/// k/M/G/T are powers of 1000, Ki/Mi/Gi/Ti powers of 1024).
pub(crate) fn bytes(d: &mut Diags, t: &mut Table<'_, '_>, key: &'static str) -> Option<u64> {
    spanned_bytes(d, t, key).map(|v| *v.get_ref())
}

/// [`bytes`], with where the value is written (for a check of its own on it).
pub(crate) fn spanned_bytes(
    d: &mut Diags,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<toml::Spanned<u64>> {
    let integer = matches!(
        t.take(key).map(|v| v.get_ref()),
        Some(toml::de::DeValue::Integer(_))
    );
    if integer {
        let v = t.integer(d, key)?;
        return match u64::try_from(*v.get_ref()) {
            Ok(n) => Some(toml::Spanned::new(v.span(), n)),
            Err(_) => {
                d.error(
                    v.span(),
                    format!("`{key}` in {} must not be negative", t.context),
                );
                None
            }
        };
    }
    let v = t.string(d, key)?;
    match parse_bytes(v.get_ref()) {
        Ok(n) => Some(toml::Spanned::new(v.span(), n)),
        Err(why) => {
            d.error(v.span(), format!("`{key}` in {}: {why}", t.context));
            None
        }
    }
}

/// `"10GB"` → 10,000,000,000.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!("{text:?} is not a size (write e.g. \"10GB\", \"512MiB\" or a number of bytes)")
    })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let n = number * factor;
    if !n.is_finite() || n >= 1.8e19 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(n.round() as u64)
}

/// No duration in the file may exceed this (a year): larger ones are typos, and would make
/// restart times meaningless.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration for people: whole days as days ("366d", where humantime says "1year 18h").
pub(crate) fn human(d: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    if d.as_secs() >= DAY && d.as_secs() % DAY == 0 && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// A duration within `[min, max]`.
pub(crate) fn bounded(
    d: &mut Diags,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: Duration,
    max: Duration,
) -> Option<Duration> {
    let v = t.duration(d, key)?;
    let value = *v.get_ref();
    if value < min || value > max {
        let range = if min.is_zero() {
            format!("at most {} (0 allowed)", human(max))
        } else if min <= Duration::from_nanos(1) {
            format!("more than zero and at most {}", human(max))
        } else {
            format!("between {} and {}", human(min), human(max))
        };
        d.error(
            v.span(),
            format!("`{key}` in {} must be {range}", t.context),
        );
        return None;
    }
    Some(value)
}

/// One `[[...children]]` table of the supervisor `up` is reading: the common keys here, the
/// kind's own through the kind list.
pub(crate) fn child(
    up: &mut ParseCx<'_>,
    table: &DeTable<'_>,
    span: Range<usize>,
    seen: &mut HashMap<String, Range<usize>>,
) -> Option<ChildConfig> {
    let (d, refs) = (&mut *up.d, &mut *up.refs);
    let parent = up.path.as_str();
    // The child's depth (the root's children are at 1).
    let depth = up.depth + 1;
    let mut t = Table::new(table, span, format!("a child of `{parent}`"));
    let raw_name = t.required_string(d, "name");
    // Messages name the child as written, even when the name itself is rejected.
    if let Some(n) = &raw_name {
        t.context = format!("child `{parent}/{}`", n.get_ref());
    }
    let name = raw_name.and_then(|n| {
        let value = n.get_ref();
        if let Err(problem) = metasystem_actors::supervision::check_name(value) {
            d.error(n.span(), problem);
            return None;
        }
        if seen.contains_key(value) {
            d.error(
                n.span(),
                format!("duplicate child name {value:?} under `{parent}`"),
            );
            return None;
        }
        seen.insert(value.clone(), n.span());
        Some(value.clone())
    });
    let path = match &name {
        Some(n) => format!("{parent}/{n}"),
        None => format!("{parent}/?"),
    };
    let kind_name = t.required_string(d, "kind").and_then(|k| {
        if Kind::NAMES.contains(&k.get_ref().as_str()) {
            return Some(k.get_ref().clone());
        }
        let hint = match suggest(k.get_ref(), Kind::NAMES) {
            Some(close) => format!("; did you mean `{close}`?"),
            None => String::new(),
        };
        d.error(
            k.span(),
            format!(
                "unknown kind {:?} for {}: it must be {}{hint}",
                k.get_ref(),
                t.context,
                one_of(Kind::NAMES)
            ),
        );
        None
    });
    let restart = match t.choice(d, "restart", &RESTARTS).map(|s| *s.get_ref()) {
        Some("transient") => Restart::Transient,
        Some("temporary") => Restart::Temporary,
        _ => Restart::Permanent,
    };
    let shutdown = shutdown(d, &mut t);
    let start_timeout = start_timeout(d, &mut t);
    // Unknown or missing kind: its keys cannot be checked, so they are not reported.
    if name.is_some() {
        refs.declared.insert(path.clone(), kind_name.clone());
    }
    let kind_name = kind_name?;
    let start_timeout = match start_timeout {
        Some((_, span)) if !Kind::has_start_timeout(&kind_name) => {
            d.error(
                span,
                format!(
                    "`start_timeout` does not apply to {} (a {kind_name}): its start is its children's starts; set it on them",
                    t.context
                ),
            );
            None
        }
        Some((value, _)) => value,
        None => Kind::default_start_timeout(&kind_name),
    };
    let mut cx = ParseCx {
        d: &mut *d,
        refs,
        path,
        depth,
        state_dir: up.state_dir.clone(),
        host: up.host,
        backoff: up.backoff,
    };
    let kind = Kind::parse(&kind_name, &mut cx, &mut t).flatten();
    if kind.is_some() {
        t.finish(d);
    }
    let kind = kind?;
    let shutdown = shutdown.unwrap_or_else(|| kind.shutdown_default());
    Some(ChildConfig {
        name: name?,
        restart,
        shutdown,
        start_timeout,
        kind,
    })
}

/// `start_timeout = "infinity" | "<duration>"`, with the key's position; `None` if not given.
fn start_timeout(d: &mut Diags, t: &mut Table<'_, '_>) -> Option<(Option<Duration>, Range<usize>)> {
    let s = t.string(d, "start_timeout")?;
    let span = s.span();
    if s.get_ref() == "infinity" {
        return Some((None, span));
    }
    match humantime::parse_duration(s.get_ref()) {
        Ok(limit) if limit >= Duration::from_millis(1) && limit <= MAX_DURATION => {
            Some((Some(limit), span))
        }
        _ => {
            d.error(
                span.clone(),
                format!(
                    "`start_timeout` in {} is {:?}: it must be `infinity` or a duration from 1ms to {} such as \"60s\"",
                    t.context,
                    s.get_ref(),
                    human(MAX_DURATION)
                ),
            );
            None
        }
    }
}

/// `shutdown = "brutal_kill" | "infinity" | "<duration>"`.
fn shutdown(d: &mut Diags, t: &mut Table<'_, '_>) -> Option<Shutdown> {
    let s = t.string(d, "shutdown")?;
    match s.get_ref().as_str() {
        "brutal_kill" => Some(Shutdown::BrutalKill),
        "infinity" => Some(Shutdown::Infinity),
        other => match humantime::parse_duration(other) {
            Ok(limit) if !limit.is_zero() && limit <= Duration::from_secs(3600) => {
                Some(Shutdown::Timeout(limit))
            }
            _ => {
                d.error(
                    s.span(),
                    format!(
                        "`shutdown` in {} is {other:?}: it must be `brutal_kill`, `infinity` or a duration from 1ns to 1h such as \"5s\"",
                        t.context
                    ),
                );
                None
            }
        },
    }
}

#[cfg(test)]
mod tests;

/// The keys of `[daemon]` ([`daemon`] reads them), for `metasystem schema`.
pub(crate) fn daemon_schema() -> schema::Obj {
    use schema::{key, Obj, Ty};
    Obj::new(vec![
        key(
            "state_dir",
            Ty::Str,
            "Where metastore.db, logs and backups live; `~` is home, relative paths are taken from the file's directory.",
        )
        .default("~/.metasystem"),
        key(
            "socket",
            Ty::Str,
            "The control socket the CLI talks to (at most 100 bytes).",
        )
        .default("STATE_DIR/control.sock"),
        key(
            "max_connections",
            Ty::Int,
            "Concurrent control connections (2 to 1024); more are refused.",
        )
        .default(DEFAULT_MAX_CONNECTIONS),
        key(
            "idle_timeout",
            Ty::Duration,
            "A control connection with no request for this long is closed (1s to 1h).",
        )
        .default("60s"),
        key(
            "http",
            Ty::Str,
            "Where the HTTP listener (/metrics, /health) binds: an IP address and a port, loopback only unless `http_allow_remote = true`. Not given: no listener.",
        )
        .example("127.0.0.1:9464"),
        key(
            "http_allow_remote",
            Ty::Bool,
            "Let `http` bind a non-loopback address (the listener has no authentication or TLS).",
        )
        .default(false),
        key(
            "blocking_checks",
            Ty::Int,
            "How many probe checks that block a thread (disk, memory, sqlite) run at once, all probes together (1 to 32; default 2 x CPUs, at least 4).",
        ),
        key(
            "log_format",
            Ty::Choice(&["text", "json"]),
            "Log lines as text or as JSON objects (stderr and the file).",
        )
        .default("text"),
        key(
            "log_file",
            Ty::Str,
            "The daemon's log file (relative to the state dir), rotated by `log_rotate`.",
        )
        .example("logs/daemon.log"),
        key(
            "log_rotate",
            Ty::Str,
            "When `log_file` is rotated: a size (\"10MB\", at least 1KiB) or \"daily\".",
        )
        .default("10MB"),
        key(
            "log_keep",
            Ty::Int,
            "How many rotated log files are kept.",
        )
        .default(5),
        key(
            "log_stderr",
            Ty::Bool,
            "Every log line also goes to stderr. Default: true without a `log_file`, false with one.",
        ),
        key(
            "host_id",
            Ty::Str,
            "This host's identity in sync targets (METASYSTEM_HOST_ID overrides it). Default: the hostname and a hash of the machine id.",
        ),
    ])
}

/// The keys of `[telemetry]` ([`telemetry`] reads them).
pub(crate) fn telemetry_schema() -> schema::Obj {
    use schema::{key, Obj, Ty};
    Obj::new(vec![
        key(
            "otlp_endpoint",
            Ty::Str,
            "The OTLP/HTTP collector's base URL (http or https); metrics are posted to <endpoint>/v1/metrics. Not given: no export.",
        )
        .example("http://127.0.0.1:4318"),
        key(
            "otlp_interval",
            Ty::Duration,
            "How often metrics are exported (1s to 1h).",
        )
        .default("60s"),
    ])
}

/// The keys every child has ([`child`] reads them; `start_timeout` is
/// [`start_timeout_key`], for the kinds that take it).
pub(crate) fn child_keys() -> Vec<schema::Key> {
    use schema::{key, Ty};
    vec![
        key(
            "name",
            Ty::Str,
            "The child's name under its supervisor (1 to 64 letters, digits, -, _, .); its tree path is PARENT/NAME.",
        )
        .required(),
        key(
            "restart",
            Ty::Choice(&RESTARTS),
            "When it is restarted: permanent (always), transient (after a failure only), temporary (never).",
        )
        .default("permanent"),
        key(
            "shutdown",
            Ty::Str,
            "How it is stopped: \"brutal_kill\", \"infinity\" or a duration up to 1h to wait for it.",
        )
        .example("5s"),
    ]
}

/// `start_timeout`, which a supervisor does not take.
pub(crate) fn start_timeout_key() -> schema::Key {
    schema::key(
        "start_timeout",
        schema::Ty::Str,
        "How long its start may take before it counts as failed: a duration (1ms up to a year) or \"infinity\".",
    )
    .example("60s")
}
