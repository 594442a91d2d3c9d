//! The probe checks against real things: loopback TCP and HTTP servers, SQLite files made
//! here (sound, corrupted, not databases at all), the temp dir's filesystem, real programs.
//! Real clock; every wait is bounded.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use metasystem_actors::probes::{
    run, CheckOutcome, CheckSpec, CheckState, CommandSpec, DiskSpec, Health, HttpSpec, Slots,
    SqliteSpec, TcpSpec,
};
use metasystem_actors::sinks::{refused_addr, HttpSink, Reply};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn check(spec: CheckSpec) -> CheckOutcome {
    check_within(spec, TIMEOUT).await
}

async fn check_within(spec: CheckSpec, timeout: Duration) -> CheckOutcome {
    let mut state = CheckState::new();
    run(&spec, timeout, &mut state).await
}

#[track_caller]
fn assert_status(o: &CheckOutcome, status: Health) {
    assert_eq!(o.status, status, "{o:#?}");
}

// ------------------------------------------------------------------------------------------
// TCP

#[tokio::test]
async fn tcp_to_an_open_port_passes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let o = check(CheckSpec::Tcp(TcpSpec { addr: addr.clone() })).await;
    assert_status(&o, Health::Pass);
    assert!(
        o.message.starts_with(&format!("connected to {addr} in ")),
        "{}",
        o.message
    );
    assert_eq!(o.unit, "seconds");
    assert!(o.value.unwrap() > 0.0 && o.value.unwrap() < 10.0);
}

#[tokio::test]
async fn tcp_to_a_closed_port_fails() {
    let addr = refused_addr().await.to_string();
    let o = check(CheckSpec::Tcp(TcpSpec { addr: addr.clone() })).await;
    assert_status(&o, Health::Fail);
    assert!(
        o.message
            .starts_with(&format!("cannot connect to {addr}: ")),
        "{}",
        o.message
    );
    assert_eq!(o.value, None);
    let o = check(CheckSpec::Tcp(TcpSpec {
        addr: "nowhere".into(),
    }))
    .await;
    assert_status(&o, Health::Fail);
    assert!(o.message.contains("host:port"), "{}", o.message);
}

// ------------------------------------------------------------------------------------------
// HTTP

fn http(url: String, expect_status: Option<u16>, body_contains: Option<&str>) -> CheckSpec {
    CheckSpec::Http(HttpSpec {
        url,
        expect_status,
        body_contains: body_contains.map(str::to_string),
    })
}

#[tokio::test]
async fn http_200_with_the_body_text_passes() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "{\"status\":\"ok\",\"db\":\"up\"}"));
    let o = check(http(sink.url("/health"), None, Some("\"db\":\"up\""))).await;
    assert_status(&o, Health::Pass);
    assert!(o.message.starts_with("HTTP 200 OK in "), "{}", o.message);
    assert_eq!(o.unit, "seconds");
    assert!(o.value.unwrap() > 0.0);
    assert_eq!(o.details["status"], 200);
    let requests = sink.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/health");
    assert!(requests[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("metasystem-probe/")));
}

#[tokio::test]
async fn http_500_fails() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(500, "database unreachable"));
    let o = check(http(sink.url("/"), None, None)).await;
    assert_status(&o, Health::Fail);
    assert_eq!(
        o.message,
        "HTTP 500 Internal Server Error, expected 2xx: database unreachable"
    );
    // Unless 500 is what is expected.
    sink.push(Reply::new(500, ""));
    assert_status(
        &check(http(sink.url("/"), Some(500), None)).await,
        Health::Pass,
    );
}

#[tokio::test]
async fn http_body_mismatch_fails() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "{\"status\":\"degraded\"}"));
    let o = check(http(sink.url("/"), None, Some("\"status\":\"ok\""))).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.contains("does not contain"), "{}", o.message);
    assert!(!o.message.contains("64 KiB"), "{}", o.message);
}

#[tokio::test]
async fn http_text_past_the_first_64_kib_is_not_seen() {
    let sink = HttpSink::start().await;
    let body = format!("{}MARKER", "x".repeat(70 * 1024));
    sink.push(Reply::new(200, body.clone()));
    let o = check(http(sink.url("/"), None, Some("MARKER"))).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.ends_with("in its first 64 KiB"), "{}", o.message);
    assert_eq!(o.details["body_bytes"], 64 * 1024);
    assert_eq!(o.details["body_truncated"], true);
    // Without a text to find, a long body is fine.
    sink.push(Reply::new(200, body));
    assert_status(&check(http(sink.url("/"), None, None)).await, Health::Pass);
}

#[tokio::test]
async fn http_redirects_are_not_followed() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(302, "").header("Location", "/elsewhere"));
    let o = check(http(sink.url("/"), None, None)).await;
    assert_status(&o, Health::Fail);
    assert!(
        o.message.contains("(redirect to /elsewhere, not followed)"),
        "{}",
        o.message
    );
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn http_slower_than_the_timeout_fails() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "late").delay(Duration::from_secs(3)));
    let started = Instant::now();
    let o = check_within(http(sink.url("/"), None, None), Duration::from_millis(300)).await;
    assert_status(&o, Health::Fail);
    assert_eq!(o.message, "timed out after 300ms");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_to_nothing_fails() {
    let addr = refused_addr().await;
    let o = check(http(format!("http://{addr}/"), None, None)).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.starts_with("GET http://"), "{}", o.message);
    let o = check(http("ftp://example.org/".into(), None, None)).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.contains("not an http(s) URL"), "{}", o.message);
}

#[tokio::test]
async fn one_client_serves_every_run_of_a_check() {
    let sink = HttpSink::start().await;
    let spec = http(sink.url("/"), None, None);
    let mut state = CheckState::new();
    for _ in 0..3 {
        assert_status(&run(&spec, TIMEOUT, &mut state).await, Health::Pass);
    }
    assert_eq!(sink.requests().len(), 3);
}

// ------------------------------------------------------------------------------------------
// SQLite

async fn create_db(path: &Path, rows: usize) {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(path)
        .create_if_missing(true);
    let mut conn = options.connect().await.unwrap();
    sqlx::query("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX events_body ON events (body)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE samples (id INTEGER PRIMARY KEY, v REAL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO events (body) SELECT printf('event %06d %s', i, hex(randomblob(40))) FROM n",
    )
    .bind(rows as i64)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO samples (v) VALUES (1.5), (2.5)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

fn sqlite(path: &Path, tables: &[&str]) -> SqliteSpec {
    SqliteSpec {
        tables: tables.iter().map(|t| t.to_string()).collect(),
        ..SqliteSpec::new(path)
    }
}

#[tokio::test]
async fn a_sound_database_passes_with_its_row_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.db");
    create_db(&path, 500).await;
    let o = check(CheckSpec::Sqlite(sqlite(&path, &["events", "samples"]))).await;
    assert_status(&o, Health::Pass);
    assert!(o.message.starts_with("integrity ok, "), "{}", o.message);
    assert_eq!(o.details["tables"]["events"], 500);
    assert_eq!(o.details["tables"]["samples"], 2);
    assert_eq!(o.details["integrity"][0], "ok");
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(o.value, Some(size as f64));
    assert_eq!(o.unit, "bytes");
}

#[tokio::test]
async fn missing_tables_and_a_large_file_warn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.db");
    create_db(&path, 10).await;
    let o = check(CheckSpec::Sqlite(sqlite(
        &path,
        &["events", "gone", "x; DROP"],
    )))
    .await;
    assert_status(&o, Health::Warn);
    assert!(
        o.message
            .ends_with("; missing tables: gone, \"x; DROP\" (not a table name)"),
        "{}",
        o.message
    );
    assert_eq!(o.details["tables"]["events"], 10);
    let big = SqliteSpec {
        warn_size_bytes: 1000,
        ..sqlite(&path, &[])
    };
    let o = check(CheckSpec::Sqlite(big)).await;
    assert_status(&o, Health::Warn);
    assert!(o.message.contains(", over 1 kB"), "{}", o.message);
}

#[tokio::test]
async fn a_database_in_use_with_its_wal_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    create_db(&path, 10).await;
    // A writer in WAL mode, with uncheckpointed writes, stays open during the check.
    let mut writer = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(&path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut writer)
        .await
        .unwrap();
    sqlx::query("INSERT INTO samples (v) VALUES (3.5)")
        .execute(&mut writer)
        .await
        .unwrap();
    let o = check(CheckSpec::Sqlite(sqlite(&path, &["samples"]))).await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.details["tables"]["samples"], 3);
    let wal = o.details["wal_bytes"].as_u64().unwrap();
    assert!(wal > 0, "{o:#?}");
    assert_eq!(
        o.value,
        Some((std::fs::metadata(&path).unwrap().len() + wal) as f64)
    );
    writer.close().await.unwrap();
}

#[tokio::test]
async fn a_corrupted_database_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    create_db(&path, 2000).await;
    let page_size = 4096;
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 10 * page_size, "{} bytes", bytes.len());
    // Garbage over the middle of a page in the middle of the file, where the table's and
    // the index's leaves are full of cells (page 2, the table's root, is mostly free space,
    // which no check can find fault with).
    let page = bytes.len() / page_size / 2;
    let middle = page * page_size + page_size / 2;
    for b in &mut bytes[middle - 512..middle + 512] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let o = check(CheckSpec::Sqlite(sqlite(&path, &["events"]))).await;
    assert_status(&o, Health::Fail);
    assert!(
        o.message.starts_with("integrity check failed: ") || o.message.contains("malformed"),
        "{}",
        o.message
    );
    assert!(!o.message.contains('\n'), "{}", o.message);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are not the tables you are looking for\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let o = check(CheckSpec::Sqlite(sqlite(&path, &[]))).await;
    assert_status(&o, Health::Fail);
    assert!(
        o.message.contains("file is not a database"),
        "{}",
        o.message
    );
    // Untouched.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn a_missing_database_fails_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let o = check(CheckSpec::Sqlite(sqlite(&path, &[]))).await;
    assert_status(&o, Health::Fail);
    assert_eq!(
        o.message,
        format!("no database at {}: the file does not exist", path.display())
    );
    assert!(!path.exists());
    let o = check(CheckSpec::Sqlite(sqlite(dir.path(), &[]))).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.ends_with("is not a file"), "{}", o.message);
}

// ------------------------------------------------------------------------------------------
// Slots

/// A database under an EXCLUSIVE lock held by the returned connection (rollback journal):
/// a check of it waits out its busy timeout (2 s) on a thread of sqlx's.
async fn locked_db(path: &Path) -> sqlx::SqliteConnection {
    create_db(path, 10).await;
    let options = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete);
    let mut conn = options.connect().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO samples (v) VALUES (3.5)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn blocking_checks_wait_for_a_shared_slot_and_warn_when_none_comes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let lock = locked_db(&path).await;
    let slots = Slots::new(1);
    assert_eq!(slots.limit(), 1);
    // A slow SQLite check takes the only slot and keeps it past its timeout: its work goes on.
    let mut slow = CheckState::new().with_slots(slots.clone());
    let spec = CheckSpec::Sqlite(SqliteSpec::new(&path));
    let o = run(&spec, Duration::from_millis(100), &mut slow).await;
    assert_eq!(o.message, "timed out after 100ms", "{o:#?}");
    assert!(slow.busy());
    assert_eq!(slots.running(), 1);
    // Another probe's disk check gets no slot within its timeout: a Warn, nothing checked.
    let mut other = CheckState::new().with_slots(slots.clone());
    let disk = CheckSpec::Disk(DiskSpec {
        warn_below_bytes: 0,
        fail_below_bytes: 0,
        ..DiskSpec::new(dir.path())
    });
    let started = Instant::now();
    let o = run(&disk, Duration::from_millis(200), &mut other).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_status(&o, Health::Warn);
    assert_eq!(
        o.message,
        "not checked: timed out after 200ms waiting for a slot (1 blocking checks running, the most at once)"
    );
    assert_eq!(o.details["blocking_checks_limit"], 1);
    assert!(other.disk_trend().is_empty());
    // The slow probe's next run starts nothing while its check still runs (no second slot).
    let o = run(&spec, Duration::from_millis(100), &mut slow).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.contains("has not finished"), "{o:#?}");
    assert_eq!(slots.running(), 1);
    // Once the slow check ends (the busy timeout), its slot serves the disk check.
    let o = run(&disk, Duration::from_secs(10), &mut other).await;
    assert_status(&o, Health::Pass);
    assert_eq!(slots.running(), 0);
    drop(lock);
}

// ------------------------------------------------------------------------------------------
// Disk

#[tokio::test]
async fn disk_space_of_the_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let free_enough = DiskSpec {
        warn_below_bytes: 0,
        fail_below_bytes: 0,
        ..DiskSpec::new(dir.path())
    };
    let mut state = CheckState::new();
    let o = run(&CheckSpec::Disk(free_enough), TIMEOUT, &mut state).await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.unit, "bytes");
    assert!(o.value.unwrap() > 0.0, "{o:#?}");
    assert!(o.details["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(state.disk_trend().len(), 1);
    assert!(!state.busy());

    let never_enough = DiskSpec {
        warn_below_bytes: u64::MAX,
        fail_below_bytes: u64::MAX,
        ..DiskSpec::new(dir.path())
    };
    let o = check(CheckSpec::Disk(never_enough)).await;
    assert_status(&o, Health::Fail);
    assert!(o.message.contains(" free on "), "{}", o.message);
}

#[tokio::test]
async fn disk_on_a_missing_path_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/here");
    let o = check(CheckSpec::Disk(DiskSpec::new(&path))).await;
    assert_status(&o, Health::Fail);
    assert_eq!(o.message, format!("{} does not exist", path.display()));
}

// ------------------------------------------------------------------------------------------
// Commands

fn sh(script: &str) -> CheckSpec {
    CheckSpec::Command(CommandSpec::new(
        "/bin/sh",
        vec!["-c".to_string(), script.to_string()],
    ))
}

#[tokio::test]
async fn exit_codes_decide_the_status() {
    let o = check(sh("echo 'all good: 3 jobs'; echo second line")).await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.message, "exit 0: all good: 3 jobs");
    assert_eq!(o.details["stdout"], "all good: 3 jobs\nsecond line\n");
    assert_eq!(o.unit, "seconds");

    let o = check(sh("echo 'queue is long' >&2; exit 1")).await;
    assert_status(&o, Health::Warn);
    assert_eq!(o.message, "exit 1: queue is long");
    assert_eq!(o.details["stderr"], "queue is long\n");

    let o = check(sh("exit 2")).await;
    assert_status(&o, Health::Fail);
    assert_eq!(o.message, "exit 2, no output");
    assert_eq!(o.details["exit_code"], 2);

    let o = check(sh("kill -9 $$")).await;
    assert_status(&o, Health::Fail);
    assert_eq!(o.message, "killed by signal 9 (SIGKILL), no output");
    assert_eq!(o.details["signal"], 9);
}

#[tokio::test]
async fn env_and_working_directory_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let spec = CommandSpec {
        cwd: Some(dir_path.clone()),
        env: vec![("PROBE_GREETING".into(), "hello from env".into())],
        ..CommandSpec::new(
            "sh",
            vec!["-c".into(), "echo \"$PROBE_GREETING\"; pwd".into()],
        )
    };
    let o = check(CheckSpec::Command(spec)).await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.message, "exit 0: hello from env");
    assert_eq!(
        o.details["stdout"],
        format!("hello from env\n{}\n", dir_path.display())
    );
}

#[tokio::test]
async fn a_program_that_cannot_start_fails() {
    let o = check(CheckSpec::Command(CommandSpec::new(
        "/no/such/program",
        vec![],
    )))
    .await;
    assert_status(&o, Health::Fail);
    assert!(
        o.message.starts_with("cannot start /no/such/program: "),
        "{}",
        o.message
    );
}

#[tokio::test]
async fn chatty_output_is_capped_without_blocking_the_program() {
    // 1 MB on each stream: far more than a pipe holds.
    let o = check(sh(
        "head -c 1000000 /dev/zero | tr '\\0' o; head -c 1000000 /dev/zero | tr '\\0' e >&2",
    ))
    .await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.details["stdout_bytes"], 1_000_000);
    assert_eq!(o.details["stderr_bytes"], 1_000_000);
    assert_eq!(o.details["stdout_truncated"], true);
    assert_eq!(o.details["stdout"].as_str().unwrap().len(), 4096);
    assert_eq!(o.details["stderr"].as_str().unwrap().len(), 4096);
}

/// Whether `pid` is gone: no such process, or a zombie nobody reaped yet (killed, not running).
fn gone(pid: i32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return true;
    }
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

async fn read_pid(path: &PathBuf) -> i32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", path.display());
}

async fn wait_gone(pid: i32) {
    for _ in 0..500 {
        if gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {pid} is still running");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let script = format!("sleep 30 & echo $! > '{}'; wait", pidfile.display());
    let started = Instant::now();
    let o = check_within(sh(&script), Duration::from_millis(500)).await;
    assert_status(&o, Health::Fail);
    assert_eq!(o.message, "timed out after 500ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    let grandchild = read_pid(&pidfile).await;
    wait_gone(grandchild).await;
}

#[tokio::test]
async fn what_a_program_leaves_behind_is_killed_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("leftover.pid");
    // The background sleep keeps stdout open: without the group kill the read would wait.
    let script = format!("sleep 30 & echo $! > '{}'; echo started", pidfile.display());
    let started = Instant::now();
    let o = check(sh(&script)).await;
    assert_status(&o, Health::Pass);
    assert_eq!(o.message, "exit 0: started");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let leftover = read_pid(&pidfile).await;
    wait_gone(leftover).await;
}
