//! Available memory: the kernel's estimate of what can be allocated without swapping
//! (`MemAvailable` in `/proc/meminfo`, Linux 3.14 and later). Elsewhere the check is a Warn
//! saying it is not supported.

use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

#[cfg(target_os = "linux")]
use super::check::detached;
use super::check::{unit, CheckOutcome, Health, MemorySpec, Pending};
use super::fmt_bytes;

/// What the check reads from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub available: u64,
    pub total: Option<u64>,
}

/// Reads `MemAvailable` (and `MemTotal`, if there) from the text of `/proc/meminfo`: lines of
/// `Name:   value kB` (a value without a unit is in bytes).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut available = None;
    let mut total = None;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match name.trim() {
            "MemAvailable" => &mut available,
            "MemTotal" => &mut total,
            _ => continue,
        };
        let mut parts = rest.split_whitespace();
        let number = parts
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("unreadable {} line: {}", name.trim(), line.trim()))?;
        let factor = match parts.next() {
            None => 1,
            Some(u) if u.eq_ignore_ascii_case("kb") => 1024,
            Some(u) => return Err(format!("unknown unit {u:?} for {}", name.trim())),
        };
        *slot = Some(number.saturating_mul(factor));
    }
    let available = available.ok_or("no MemAvailable in /proc/meminfo")?;
    Ok(MemInfo { available, total })
}

/// The outcome for `info` under `spec`'s thresholds.
pub fn evaluate(spec: &MemorySpec, info: MemInfo) -> CheckOutcome {
    let free = info.available;
    let of = info
        .total
        .map(|t| format!(" of {}", fmt_bytes(t)))
        .unwrap_or_default();
    let (status, message) = if free < spec.fail_below_bytes {
        (
            Health::Fail,
            format!(
                "{} available{of}, below {}",
                fmt_bytes(free),
                fmt_bytes(spec.fail_below_bytes)
            ),
        )
    } else if free < spec.warn_below_bytes {
        (
            Health::Warn,
            format!(
                "{} available{of}, below {}",
                fmt_bytes(free),
                fmt_bytes(spec.warn_below_bytes)
            ),
        )
    } else {
        (Health::Pass, format!("{} available{of}", fmt_bytes(free)))
    };
    CheckOutcome::new(status, message)
        .with_value(free as f64, unit::BYTES)
        .with_details(json!({ "available_bytes": free, "total_bytes": info.total }))
}

/// Reads `/proc/meminfo` on the blocking pool, detached (not read again while a read still
/// runs), holding `permit` until the read returns.
#[cfg(target_os = "linux")]
pub(crate) async fn check(
    spec: &MemorySpec,
    pending: &mut Option<Pending<std::io::Result<String>>>,
    permit: Option<OwnedSemaphorePermit>,
) -> CheckOutcome {
    let read = detached(pending, move || {
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            std::fs::read_to_string("/proc/meminfo")
        })
    })
    .await;
    match read {
        Ok(Ok(text)) => match parse_meminfo(&text) {
            Ok(info) => evaluate(spec, info),
            Err(e) => CheckOutcome::fail(e),
        },
        Ok(Err(e)) => CheckOutcome::fail(format!("cannot read /proc/meminfo: {e}")),
        Err(message) => CheckOutcome::fail(message),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) async fn check(
    _spec: &MemorySpec,
    _pending: &mut Option<Pending<std::io::Result<String>>>,
    _permit: Option<OwnedSemaphorePermit>,
) -> CheckOutcome {
    CheckOutcome::warn("not supported on this platform")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MemTotal:       16318480 kB
MemFree:          512000 kB
MemAvailable:    8123456 kB
Buffers:          204800 kB
Cached:          6000000 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn parses_the_kernel_format() {
        let info = parse_meminfo(SAMPLE).unwrap();
        assert_eq!(info.available, 8_123_456 * 1024);
        assert_eq!(info.total, Some(16_318_480 * 1024));
    }

    #[test]
    fn refuses_text_without_mem_available() {
        let old_kernel = "MemTotal: 1024 kB\nMemFree: 512 kB\n";
        assert_eq!(
            parse_meminfo(old_kernel).unwrap_err(),
            "no MemAvailable in /proc/meminfo"
        );
        assert!(parse_meminfo("").is_err());
        assert!(parse_meminfo("MemAvailable: lots kB\n")
            .unwrap_err()
            .contains("unreadable"));
        assert!(parse_meminfo("MemAvailable: 3 MB\n")
            .unwrap_err()
            .contains("unit"));
        // Without a unit, bytes; without MemTotal, no total.
        assert_eq!(
            parse_meminfo("MemAvailable: 3\n").unwrap(),
            MemInfo {
                available: 3,
                total: None
            }
        );
    }

    #[test]
    fn thresholds_decide_the_status() {
        let spec = MemorySpec::default();
        let info = |available| MemInfo {
            available,
            total: Some(8_000_000_000),
        };
        let pass = evaluate(&spec, info(2_000_000_000));
        assert_eq!(pass.status, Health::Pass);
        assert_eq!(pass.message, "2 GB available of 8 GB");
        assert_eq!(pass.value, Some(2e9));
        assert_eq!(evaluate(&spec, info(400_000_000)).status, Health::Warn);
        let fail = evaluate(&spec, info(50_000_000));
        assert_eq!(fail.status, Health::Fail);
        assert_eq!(fail.message, "50 MB available of 8 GB, below 100 MB");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_this_machine() {
        let spec = MemorySpec {
            warn_below_bytes: 0,
            fail_below_bytes: 0,
        };
        let o = check(&spec, &mut None, None).await;
        assert_eq!(o.status, Health::Pass, "{}", o.message);
        assert!(o.value.unwrap() > 0.0);
    }
}
