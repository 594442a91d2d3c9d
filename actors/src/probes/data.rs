//! Checks the probe actor evaluates from data it is given rather than by looking at the world:
//! how long since a sync target last succeeded, and which circuit breakers are open. Pure.

use std::time::Duration;

use serde_json::json;

use super::check::{unit, CheckOutcome, Health};
use super::{fmt_approx, fmt_limit};

/// How many breaker names the message lists (all are in `details`).
const NAMES_IN_MESSAGE: usize = 5;

/// How long since the last successful sync (`last_success_ms`, unix ms) at `now_ms`: Fail when
/// longer than `fail_after` (if set), Warn when longer than `warn_after`, else Pass. The value
/// is the age in seconds.
///
/// - No success recorded (`None`) is a Warn, never a Fail: a target just added has not had
///   its chance yet; the actor decides whether to hold it longer than that.
/// - A success in the future (clocks disagree) counts as just now, and says so in `details`.
pub fn sync_recency(
    last_success_ms: Option<i64>,
    now_ms: i64,
    warn_after: Duration,
    fail_after: Option<Duration>,
) -> CheckOutcome {
    let limits = json!({
        "warn_after_seconds": warn_after.as_secs(),
        "fail_after_seconds": fail_after.map(|d| d.as_secs()),
    });
    let Some(last) = last_success_ms else {
        return CheckOutcome::warn("no successful sync recorded").with_details(json!({
            "last_success_ms": null,
            "limits": limits,
        }));
    };
    let age_ms = now_ms.saturating_sub(last);
    let in_future = age_ms < 0;
    let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
    let (status, limit) = match fail_after {
        Some(f) if age > f => (Health::Fail, Some(f)),
        _ if age > warn_after => (Health::Warn, Some(warn_after)),
        _ => (Health::Pass, None),
    };
    let mut message = if age < Duration::from_secs(60) {
        "last successful sync less than a minute ago".to_string()
    } else {
        format!("last successful sync {} ago", fmt_approx(age))
    };
    if let Some(limit) = limit {
        message.push_str(&format!(", over {}", fmt_limit(limit)));
    }
    CheckOutcome::new(status, message)
        .with_value(age.as_secs_f64(), unit::SECONDS)
        .with_details(json!({
            "last_success_ms": last,
            "age_seconds": age.as_secs(),
            "clock_skew": in_future,
            "limits": limits,
        }))
}

/// The circuit breakers open now: none is a Pass, any is a Warn (a breaker is already
/// containing the failure; whatever sits behind it has its own checks). The value is the count.
pub fn breakers(open: &[String]) -> CheckOutcome {
    let count = open.len();
    let (status, message) = if count == 0 {
        (Health::Pass, "no circuit breaker open".to_string())
    } else {
        let mut names: Vec<&str> = open
            .iter()
            .take(NAMES_IN_MESSAGE)
            .map(String::as_str)
            .collect();
        let more = count.saturating_sub(NAMES_IN_MESSAGE);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        names.sort_unstable();
        let noun = if count == 1 { "breaker" } else { "breakers" };
        (
            Health::Warn,
            format!("{count} circuit {noun} open: {}{more}", names.join(", ")),
        )
    };
    CheckOutcome::new(status, message)
        .with_value(count as f64, unit::COUNT)
        .with_details(json!({ "open": open }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const SIX_H: Duration = Duration::from_secs(6 * 3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn recency_passes_then_warns_then_fails() {
        let now = 100 * H;
        let o = sync_recency(Some(now - H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.message, "last successful sync ~1 h ago");
        assert_eq!(o.value, Some(3600.0));
        assert_eq!(o.unit, "seconds");
        // Exactly at the limit is not over it.
        assert_eq!(
            sync_recency(Some(now - 6 * H), now, SIX_H, Some(DAY)).status,
            Health::Pass
        );
        let o = sync_recency(Some(now - 7 * H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "last successful sync ~7 h ago, over 6h");
        let o = sync_recency(Some(now - 30 * H), now, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Fail);
        assert_eq!(o.message, "last successful sync ~30 h ago, over 1day");
        // Without fail_after, it only ever warns.
        assert_eq!(
            sync_recency(Some(now - 300 * H), now, SIX_H, None).status,
            Health::Warn
        );
    }

    #[test]
    fn recency_without_a_success_warns() {
        let o = sync_recency(None, 5, SIX_H, Some(DAY));
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "no successful sync recorded");
        assert_eq!(o.value, None);
    }

    #[test]
    fn a_success_in_the_future_is_now() {
        let o = sync_recency(Some(10 * H), 9 * H, SIX_H, None);
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.value, Some(0.0));
        assert_eq!(o.details["clock_skew"], true);
        assert_eq!(o.message, "last successful sync less than a minute ago");
        // Extremes do not overflow.
        assert_eq!(
            sync_recency(Some(i64::MIN), i64::MAX, SIX_H, Some(DAY)).status,
            Health::Fail
        );
    }

    #[test]
    fn open_breakers_warn() {
        let o = breakers(&[]);
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.value, Some(0.0));
        assert_eq!(o.unit, "count");
        let o = breakers(&["smtp".into()]);
        assert_eq!(o.status, Health::Warn);
        assert_eq!(o.message, "1 circuit breaker open: smtp");
        let many: Vec<String> = (0..7).map(|i| format!("b{i}")).collect();
        let o = breakers(&many);
        assert_eq!(
            o.message,
            "7 circuit breakers open: b0, b1, b2, b3, b4 and 2 more"
        );
        assert_eq!(o.details["open"].as_array().unwrap().len(), 7);
    }
}
