//! Why the store could not be read: typed from SQLite's answer, so the daemon can tell a
//! busy database from a disk that refuses and from a store that is not there.

/// What kind of failure a store error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database is locked by a writer (SQLITE_BUSY, SQLITE_LOCKED) or every reader is
    /// in use: trying again later may do it.
    Busy,
    /// The disk refused: an I/O error, a full disk, a file that cannot be opened.
    Io,
    /// The database file is damaged or is not a database.
    Corrupt,
    /// Anything else (the pool closed at shutdown, a row that does not decode).
    Other,
}

/// A store operation that failed: what it was doing, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    /// `what` (`cannot read the alert outbox`) failed with `e`.
    pub fn sqlx(what: &str, e: sqlx::Error) -> StoreError {
        StoreError {
            kind: kind_of(&e),
            message: format!("{what}: {e}"),
        }
    }

    /// A failure that is not SQLite's (a row that does not decode).
    pub fn other(message: impl Into<String>) -> StoreError {
        StoreError {
            kind: StoreErrorKind::Other,
            message: message.into(),
        }
    }
}

/// Callers that keep errors as text (most of the actors) take a store error as its message.
impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.message
    }
}

/// SQLite's primary result code (the low byte of an extended one) says which kind.
fn kind_of(e: &sqlx::Error) -> StoreErrorKind {
    match e {
        sqlx::Error::Io(_) => StoreErrorKind::Io,
        sqlx::Error::PoolTimedOut => StoreErrorKind::Busy,
        sqlx::Error::Database(db) => {
            let code = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match code {
                // SQLITE_BUSY, SQLITE_LOCKED
                Some(5) | Some(6) => StoreErrorKind::Busy,
                // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM
                Some(10) | Some(13) | Some(14) | Some(8) | Some(3) => StoreErrorKind::Io,
                // SQLITE_CORRUPT, SQLITE_NOTADB
                Some(11) | Some(26) => StoreErrorKind::Corrupt,
                _ => StoreErrorKind::Other,
            }
        }
        _ => StoreErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A locked database is busy, a full disk is an I/O error: read from SQLite's codes.
    #[tokio::test]
    async fn sqlites_answers_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        std::fs::write(
            &path,
            b"this is not a database, it is long enough to be read as one",
        )
        .unwrap();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await;
        let e = match pool {
            Ok(pool) => sqlx::query("SELECT * FROM sqlite_master")
                .fetch_all(&pool)
                .await
                .err()
                .unwrap(),
            Err(e) => e,
        };
        let e = StoreError::sqlx("cannot read", e);
        assert_eq!(e.kind, StoreErrorKind::Corrupt, "{e}");
        assert!(e.message.starts_with("cannot read: "), "{e}");
        assert_eq!(
            StoreError::sqlx("x", sqlx::Error::PoolTimedOut).kind,
            StoreErrorKind::Busy
        );
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            StoreError::sqlx("x", sqlx::Error::Io(io)).kind,
            StoreErrorKind::Io
        );
    }
}
