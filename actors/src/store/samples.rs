//! The `samples`, `sample_rollups` (hourly) and `sample_daily` tables (telemetry lane).
//!
//! Samples are appended in batches by the writer, which in the same transaction folds each
//! batch into the hourly and the daily rollups ([`Rollups`]): exact counts, outcomes, sum, min
//! and max, and a quantile sketch per hour (day) and series (metric + subject). Summaries over a
//! window read the rollups only: the hours of the window's first, partial day, then one row per
//! day, so a month is about 50 rows per series whatever the sample rate.

use super::error::StoreError;
use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, SqliteConnection, SqlitePool};

use crate::metrics::stats::{Sketch, SketchMerger, Summary};
use crate::metrics::Sample;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Rows per INSERT statement at most (5 parameters each, far under SQLite's 32,766); rollup
/// upserts take half as many (10 each).
const ROWS_PER_STATEMENT: usize = 1_024;

/// The start of the hour `at_ms` falls in.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The start of the UTC day `at_ms` falls in.
pub fn day_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS) * DAY_MS
}

/// The rollup rows held in memory: per hour (day) start and metric name, per subject.
/// Two levels, so a lookup borrows the subject instead of allocating a key.
type Known = HashMap<(i64, &'static str), HashMap<String, Summary>>;

/// The two rollup tables; their SQL is spelled out per table (sqlx takes only static SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Hour,
    Day,
}

impl Grain {
    fn upsert(self) -> &'static str {
        match self {
            Grain::Hour => {
                "INSERT OR REPLACE INTO sample_rollups \
                 (hour_ms, name, subject, count, ok, failed, sum, min, max, sketch) "
            }
            Grain::Day => {
                "INSERT OR REPLACE INTO sample_daily \
                 (day_ms, name, subject, count, ok, failed, sum, min, max, sketch) "
            }
        }
    }

    fn select_one(self) -> &'static str {
        match self {
            Grain::Hour => {
                "SELECT count, ok, failed, sum, min, max, sketch FROM sample_rollups \
                 WHERE hour_ms = ? AND name = ? AND subject = ?"
            }
            Grain::Day => {
                "SELECT count, ok, failed, sum, min, max, sketch FROM sample_daily \
                 WHERE day_ms = ? AND name = ? AND subject = ?"
            }
        }
    }

    /// The hour or day `at_ms` falls in.
    fn start(self, at_ms: i64) -> i64 {
        match self {
            Grain::Hour => hour_of(at_ms),
            Grain::Day => day_of(at_ms),
        }
    }
}

/// How many rows the next statement of a multi-row write takes, of `left` rows: the largest
/// power of two up to `left` and `max`. Statements then come in a few fixed shapes, which
/// sqlx keeps prepared: a statement of any other row count is SQL never seen before, parsed
/// and planned by SQLite for that one use (about a third of the writer thread's time with a
/// thousand probes reporting, before this).
pub(super) fn statement_rows(left: usize, max: usize) -> usize {
    let cap = left.min(max).max(1);
    1 << (usize::BITS - 1 - cap.leading_zeros())
}

/// The writer's copy of recent rollup rows: a batch is merged into them without reading the
/// table back. Merged in place while the batch's transaction runs; if the transaction fails,
/// the writer forgets them all ([`Rollups::forget`]) and the next batch reads the committed
/// rows back, so what is held is never ahead of the table.
#[derive(Default)]
pub(super) struct Rollups {
    hours: Known,
    days: Known,
}

impl Rollups {
    /// Forgets hours older than the previous one, and days older than the previous one (a late
    /// sample for them is merged with the row read back from the table).
    pub(super) fn evict(&mut self, now_ms: i64) {
        let hour = hour_of(now_ms) - HOUR_MS;
        self.hours.retain(|(h, _), _| *h >= hour);
        let day = day_of(now_ms) - DAY_MS;
        self.days.retain(|(d, _), _| *d >= day);
    }

    /// Forgets every row: after a failed transaction, whose merges were rolled back.
    pub(super) fn forget(&mut self) {
        self.hours.clear();
        self.days.clear();
    }

    fn known(&mut self, grain: Grain) -> &mut Known {
        match grain {
            Grain::Hour => &mut self.hours,
            Grain::Day => &mut self.days,
        }
    }
}

/// Inserts `samples` and folds them into the hourly and daily rollups (held in `rollups`,
/// merged in place), inside the caller's transaction. On an error the caller must
/// [`Rollups::forget`] (the transaction is rolled back, the merges are not).
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    samples: &[Sample],
    rollups: &mut Rollups,
) -> Result<(), sqlx::Error> {
    let mut rest = samples;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(statement_rows(rest.len(), ROWS_PER_STATEMENT));
        rest = tail;
        let mut sql = QueryBuilder::new("INSERT INTO samples (at_ms, name, subject, value, ok) ");
        sql.push_values(chunk, |mut row, s| {
            row.push_bind(s.at_ms)
                .push_bind(s.metric.name())
                .push_bind(s.subject.as_str())
                .push_bind(if s.value.is_finite() { s.value } else { 0.0 })
                .push_bind(s.ok);
        });
        sql.build().execute(&mut *conn).await?;
    }
    for grain in [Grain::Hour, Grain::Day] {
        fold(conn, grain, samples, rollups.known(grain)).await?;
    }
    Ok(())
}

/// Adds `samples` to the rows of `grain` they fall in (read back from the table when not
/// held) and writes those rows.
async fn fold(
    conn: &mut SqliteConnection,
    grain: Grain,
    samples: &[Sample],
    known: &mut Known,
) -> Result<(), sqlx::Error> {
    let mut touched: Vec<(i64, &'static str, &str)> = Vec::new();
    for s in samples {
        let (at, name, subject) = (grain.start(s.at_ms), s.metric.name(), s.subject.as_str());
        let series = known.entry((at, name)).or_default();
        let summary = match series.get_mut(subject) {
            Some(summary) => summary,
            None => {
                let stored = read_one(&mut *conn, grain, at, name, subject)
                    .await?
                    .unwrap_or_default();
                series.entry(subject.to_string()).or_insert(stored)
            }
        };
        summary.add(s.value, s.ok);
        touched.push((at, name, subject));
    }
    // Each row once, in key order.
    touched.sort_unstable();
    touched.dedup();
    let mut rest = &touched[..];
    let mut sketches: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(statement_rows(rest.len(), ROWS_PER_STATEMENT / 2));
        rest = tail;
        // Each row's summary as it stands now, with its sketch serialized into one buffer.
        sketches.clear();
        ends.clear();
        let mut rows: Vec<(i64, &str, &str, &Summary)> = Vec::with_capacity(chunk.len());
        for &(at, name, subject) in chunk {
            let Some(summary) = known.get(&(at, name)).and_then(|s| s.get(subject)) else {
                continue;
            };
            summary.sketch.write_bytes(&mut sketches);
            ends.push(sketches.len());
            rows.push((at, name, subject, summary));
        }
        let mut sql = QueryBuilder::new(grain.upsert());
        let mut from = 0;
        sql.push_values(
            rows.iter().zip(&ends),
            |mut row, ((at, name, subject, s), &end)| {
                row.push_bind(*at)
                    .push_bind(*name)
                    .push_bind(*subject)
                    .push_bind(i64::try_from(s.count).unwrap_or(i64::MAX))
                    .push_bind(i64::try_from(s.ok).unwrap_or(i64::MAX))
                    .push_bind(i64::try_from(s.failed).unwrap_or(i64::MAX))
                    .push_bind(s.sum)
                    .push_bind(s.min().unwrap_or(0.0))
                    .push_bind(s.max().unwrap_or(0.0))
                    .push_bind(&sketches[from..end]);
                from = end;
            },
        );
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn read_one(
    conn: &mut SqliteConnection,
    grain: Grain,
    at: i64,
    name: &str,
    subject: &str,
) -> Result<Option<Summary>, sqlx::Error> {
    let row = sqlx::query(grain.select_one())
        .bind(at)
        .bind(name)
        .bind(subject)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|row| summary_of(&row)))
}

fn summary_of(row: &sqlx::sqlite::SqliteRow) -> Summary {
    let mut s = exact_of(row);
    // A damaged sketch loses the quantiles of that hour, not the exact aggregates.
    s.sketch = Sketch::from_bytes(row.get::<&[u8], _>("sketch")).unwrap_or_default();
    s
}

/// A rollup row's exact aggregates (count, outcomes, sum, min, max), without its sketch.
fn exact_of(row: &sqlx::sqlite::SqliteRow) -> Summary {
    let count: i64 = row.get("count");
    let mut s = Summary {
        count: u64::try_from(count).unwrap_or(0),
        ok: u64::try_from(row.get::<i64, _>("ok")).unwrap_or(0),
        failed: u64::try_from(row.get::<i64, _>("failed")).unwrap_or(0),
        sum: row.get("sum"),
        ..Summary::default()
    };
    if s.count > 0 {
        s.min = row.get("min");
        s.max = row.get("max");
    }
    s
}

/// Deletes up to `chunk` samples older than `cutoff_ms` (ids grow with time: found by
/// bisection on the primary key, no index needed) and the rollups older than
/// `rollup_cutoff_ms`; how many of each.
pub(super) async fn prune(
    conn: &mut SqliteConnection,
    cutoff_ms: i64,
    rollup_cutoff_ms: i64,
    chunk: i64,
) -> Result<(u64, u64), sqlx::Error> {
    let bounds: (Option<i64>, Option<i64>) = sqlx::query_as("SELECT min(id), max(id) FROM samples")
        .fetch_one(&mut *conn)
        .await?;
    let mut samples = 0;
    if let (Some(mut lo), Some(mut hi)) = bounds {
        // The last id whose row is older than the cutoff (rows are nearly in time order).
        let mut last_old = None;
        for _ in 0..64 {
            if lo > hi {
                break;
            }
            let mid = lo + (hi - lo) / 2;
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT id, at_ms FROM samples WHERE id >= ? ORDER BY id LIMIT 1")
                    .bind(mid)
                    .fetch_optional(&mut *conn)
                    .await?;
            match row {
                Some((id, at)) if at < cutoff_ms => {
                    last_old = Some(id);
                    lo = id + 1;
                }
                _ => hi = mid - 1,
            }
        }
        if let (Some(last), Some(first)) = (last_old, bounds.0) {
            samples = sqlx::query("DELETE FROM samples WHERE id <= ?")
                .bind(last.min(first.saturating_add(chunk - 1)))
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    let mut rollups = sqlx::query("DELETE FROM sample_rollups WHERE hour_ms < ?")
        .bind(rollup_cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    // A day goes once all of it is past the cutoff.
    rollups += sqlx::query("DELETE FROM sample_daily WHERE day_ms < ?")
        .bind(rollup_cutoff_ms.saturating_sub(DAY_MS))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok((samples, rollups))
}

/// One series' summary over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSummary {
    pub name: String,
    pub subject: String,
    pub summary: Summary,
}

/// The day from which daily rollups are complete (earlier days predate the table).
async fn daily_from(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT value FROM sample_meta WHERE key = 'daily_from_ms'")
            .fetch_optional(pool)
            .await?;
    Ok(row.map_or(i64::MIN, |(v,)| v))
}

/// Where a window starting at `since_ms` switches from hourly to daily rows: the first whole
/// day in it from which daily rows are complete.
fn switch_to_days(since_ms: i64, daily_from: i64) -> i64 {
    let first_hour = hour_of(since_ms);
    let first_whole_day = day_of(first_hour + DAY_MS - 1);
    first_whole_day.max(daily_from)
}

/// The rollups from the hour `since_ms` falls in onwards, merged per series, sorted by name and
/// subject; only metric `name` when given. Hourly rows up to the first whole day, daily rows
/// after it.
pub async fn summaries(
    pool: &SqlitePool,
    since_ms: i64,
    name: Option<&str>,
) -> Result<Vec<SeriesSummary>, StoreError> {
    type Rollup = (String, String, i64, i64, i64, f64, f64, f64, Vec<u8>);
    let days_from = switch_to_days(
        since_ms,
        daily_from(pool)
            .await
            .map_err(|e| StoreError::sqlx("cannot read metrics", e))?,
    );
    let mut sql = QueryBuilder::new(
        "SELECT name, subject, count, ok, failed, sum, min, max, sketch FROM sample_rollups \
         WHERE hour_ms >= ",
    );
    sql.push_bind(hour_of(since_ms));
    sql.push(" AND hour_ms < ").push_bind(days_from);
    if let Some(name) = name {
        sql.push(" AND name = ").push_bind(name.to_string());
    }
    sql.push(
        " UNION ALL SELECT name, subject, count, ok, failed, sum, min, max, sketch \
         FROM sample_daily WHERE day_ms >= ",
    );
    sql.push_bind(days_from);
    if let Some(name) = name {
        sql.push(" AND name = ").push_bind(name.to_string());
    }
    // A series' rows together: each is merged into the one before it, no lookups.
    sql.push(" ORDER BY name, subject");
    let rows: Vec<Rollup> = sql
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::sqlx("cannot read metrics", e))?;
    // Exact aggregates merged row by row; the sketches' buckets summed in dense arrays and
    // made into one sketch per series at the end.
    let mut out: Vec<SeriesSummary> = Vec::new();
    let mut merger = SketchMerger::new();
    for (name, subject, count, ok, failed, sum, min, max, sketch) in rows {
        let same = out
            .last()
            .is_some_and(|last| last.name == name && last.subject == subject);
        if !same {
            if let Some(last) = out.last_mut() {
                last.summary.sketch = std::mem::take(&mut merger).finish();
            }
            out.push(SeriesSummary {
                name,
                subject,
                summary: Summary::default(),
            });
        }
        let Some(last) = out.last_mut() else { continue };
        let count = u64::try_from(count).unwrap_or(0);
        let exact = Summary {
            count,
            ok: u64::try_from(ok).unwrap_or(0),
            failed: u64::try_from(failed).unwrap_or(0),
            sum,
            min: if count > 0 { min } else { f64::INFINITY },
            max: if count > 0 { max } else { f64::NEG_INFINITY },
            sketch: Sketch::default(),
        };
        last.summary.merge(&exact);
        // A damaged sketch loses the quantiles of that hour, not the exact aggregates.
        let _ = merger.add_bytes(&sketch);
    }
    if let Some(last) = out.last_mut() {
        last.summary.sketch = merger.finish();
    }
    Ok(out)
}

/// Raw samples of one metric (and subject) at or after `since_ms`, oldest first, at most
/// `limit` (for tests and `metrics NAME --raw`).
pub async fn raw(
    pool: &SqlitePool,
    name: &str,
    subject: Option<&str>,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<(i64, String, f64, Option<bool>)>, String> {
    let mut sql = QueryBuilder::new("SELECT at_ms, subject, value, ok FROM samples WHERE name = ");
    sql.push_bind(name.to_string());
    sql.push(" AND at_ms >= ").push_bind(since_ms);
    if let Some(subject) = subject {
        sql.push(" AND subject = ").push_bind(subject.to_string());
    }
    sql.push(" ORDER BY id LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = sql
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read samples: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_hours_until_its_first_whole_day_then_days() {
        let day = 20_000 * DAY_MS;
        // From midnight: days at once.
        assert_eq!(switch_to_days(day, i64::MIN), day);
        // From 10:30: hours from 10:00 until the next midnight.
        assert_eq!(
            switch_to_days(day + 10 * HOUR_MS + 1, i64::MIN),
            day + DAY_MS
        );
        // Days before the daily table existed are read by the hour.
        assert_eq!(switch_to_days(day, day + 3 * DAY_MS), day + 3 * DAY_MS);
        assert_eq!(day_of(day + DAY_MS - 1), day);
        assert_eq!(day_of(-1), -DAY_MS);
    }

    #[test]
    fn hours_floor_including_before_1970() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), HOUR_MS);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }
}
