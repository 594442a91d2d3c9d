//! An SQLite database, looked at read-only: `PRAGMA integrity_check`, the file's size with its
//! WAL, and the row counts of named tables.
//!
//! The database is opened read-only without creating it (a missing file is a Fail, never a new
//! empty database), with a busy timeout, and closed after each check. sqlx runs SQLite on its
//! own worker thread; an integrity check cannot be interrupted, so the check runs detached and
//! is not started again while the previous one runs (see [`super::CheckState::busy`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqliteConnection};
use tokio::sync::OwnedSemaphorePermit;

use super::check::{detached, unit, CheckOutcome, Health, Pending, SqliteSpec};
use super::fmt_bytes;
use crate::alerts::channel::text::one_line;

/// How long a statement waits for a lock another connection holds.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many problems `integrity_check` reports (in `details`); the message shows the first 3.
pub const MAX_PROBLEMS: usize = 10;
const INTEGRITY_CHECK: &str = "PRAGMA integrity_check(10)";
const PROBLEMS_IN_MESSAGE: usize = 3;
/// The longest table name accepted.
pub const MAX_TABLE_NAME: usize = 128;

/// Whether `name` can be counted: an identifier of ASCII letters, digits and `_`, not starting
/// with a digit, at most [`MAX_TABLE_NAME`] bytes. (It is quoted in the query all the same.)
pub fn valid_table_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= MAX_TABLE_NAME
        && (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `permit`: the slot the check holds until [`inspect`] ends, past a timeout too (its
/// connection's worker thread runs until then).
pub(crate) async fn check(
    spec: &SqliteSpec,
    pending: &mut Option<Pending<CheckOutcome>>,
    permit: Option<OwnedSemaphorePermit>,
) -> CheckOutcome {
    let owned = spec.clone();
    match detached(pending, move || {
        tokio::spawn(async move {
            let _slot = permit;
            inspect(&owned).await
        })
    })
    .await
    {
        Ok(outcome) => outcome,
        Err(message) => CheckOutcome::fail(message)
            .with_details(json!({ "path": spec.path.display().to_string() })),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// The check itself (not detached, not bounded: [`super::run`] bounds it).
pub async fn inspect(spec: &SqliteSpec) -> CheckOutcome {
    let shown = spec.path.display().to_string();
    let fail = |message: String| CheckOutcome::fail(message).with_details(json!({ "path": shown }));
    let file_bytes = match tokio::fs::metadata(&spec.path).await {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return fail(format!("{shown} is not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!("no database at {shown}: the file does not exist"))
        }
        Err(e) => return fail(format!("cannot read {shown}: {e}")),
    };
    let wal_bytes = tokio::fs::metadata(wal_path(&spec.path))
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let size = file_bytes.saturating_add(wal_bytes);

    let options = SqliteConnectOptions::new()
        .filename(&spec.path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = match options.connect().await {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot open {shown}: {}", db_error(&e))),
    };
    let looked = examine(&mut conn, &spec.tables).await;
    let _ = conn.close().await;

    let Examined {
        integrity,
        tables,
        missing,
    } = match looked {
        Ok(x) => x,
        Err(e) => return fail(format!("{shown}: {e}")),
    };
    let details = json!({
        "path": shown,
        "size_bytes": size,
        "file_bytes": file_bytes,
        "wal_bytes": wal_bytes,
        "integrity": if integrity.is_empty() { vec!["ok".to_string()] } else { integrity.clone() },
        "tables": serde_json::Value::Object(tables),
        "missing_tables": missing,
    });
    let outcome = |status, message| {
        CheckOutcome::new(status, message)
            .with_value(size as f64, unit::BYTES)
            .with_details(details.clone())
    };

    if !integrity.is_empty() {
        let mut shown_problems: Vec<&str> = integrity
            .iter()
            .take(PROBLEMS_IN_MESSAGE)
            .map(String::as_str)
            .collect();
        if integrity.len() > PROBLEMS_IN_MESSAGE {
            shown_problems.push("...");
        }
        return outcome(
            Health::Fail,
            format!("integrity check failed: {}", shown_problems.join("; ")),
        );
    }
    let mut status = Health::Pass;
    let mut message = format!("integrity ok, {}", fmt_bytes(size));
    if size > spec.warn_size_bytes {
        status = Health::Warn;
        message.push_str(&format!(", over {}", fmt_bytes(spec.warn_size_bytes)));
    }
    if !missing.is_empty() {
        status = Health::Warn;
        message.push_str(&format!("; missing tables: {}", missing.join(", ")));
    }
    outcome(status, message)
}

struct Examined {
    /// Empty when `integrity_check` said `ok`.
    integrity: Vec<String>,
    /// Table name → row count.
    tables: serde_json::Map<String, serde_json::Value>,
    /// Tables not found, or whose name is not an identifier.
    missing: Vec<String>,
}

async fn examine(conn: &mut SqliteConnection, names: &[String]) -> Result<Examined, String> {
    let rows: Vec<String> = sqlx::query_scalar(INTEGRITY_CHECK)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| format!("integrity check failed: {}", db_error(&e)))?;
    let integrity = if rows.len() == 1 && rows[0] == "ok" {
        Vec::new()
    } else {
        problems(&rows)
    };
    let mut tables = serde_json::Map::new();
    let mut missing = Vec::new();
    if !integrity.is_empty() {
        // A damaged database: counting rows could only add noise.
        return Ok(Examined {
            integrity,
            tables,
            missing,
        });
    }
    for name in names {
        if !valid_table_name(name) {
            missing.push(format!("{name:?} (not a table name)"));
            continue;
        }
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1 LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| format!("cannot read the schema: {}", db_error(&e)))?;
        if exists.is_none() {
            missing.push(name.clone());
            continue;
        }
        // An identifier (checked above), quoted.
        let count: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM \"{name}\"")))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| format!("cannot count the rows of {name}: {}", db_error(&e)))?;
        tables.insert(name.clone(), json!(count));
    }
    Ok(Examined {
        integrity,
        tables,
        missing,
    })
}

/// The problems `integrity_check` reported, one per line, without its `*** in database main
/// ***` headings; never empty (an answer that is not `ok` is a problem even when blank).
fn problems(rows: &[String]) -> Vec<String> {
    let found: Vec<String> = rows
        .iter()
        .flat_map(|r| r.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_heading(l))
        .map(one_line)
        .collect();
    if found.is_empty() {
        vec!["the integrity check did not answer ok".to_string()]
    } else {
        found
    }
}

/// `*** in database main ***`
fn is_heading(line: &str) -> bool {
    line.starts_with("*** in database") && line.ends_with("***")
}

/// SQLite's own message when there is one (`file is not a database`), else sqlx's.
fn db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for ok in ["events", "_x", "T1", "a_b_c", &"t".repeat(MAX_TABLE_NAME)] {
            assert!(valid_table_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a b",
            "a\"b",
            "a;drop",
            "main.events",
            "é",
            &"t".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(!valid_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn problems_are_listed_one_per_line_without_headings() {
        let rows = vec![
            "*** in database main ***\nTree 3 page 57 cell 19: invalid page number 7\nPage 9: never used".to_string(),
            "row 5 missing from index events_body".to_string(),
        ];
        assert_eq!(
            problems(&rows),
            [
                "Tree 3 page 57 cell 19: invalid page number 7",
                "Page 9: never used",
                "row 5 missing from index events_body"
            ]
        );
        assert_eq!(problems(&[]), ["the integrity check did not answer ok"]);
        assert!(INTEGRITY_CHECK.ends_with(&format!("({MAX_PROBLEMS})")));
    }

    #[test]
    fn the_wal_is_beside_the_database() {
        assert_eq!(wal_path(Path::new("/a/b.db")), PathBuf::from("/a/b.db-wal"));
    }
}
