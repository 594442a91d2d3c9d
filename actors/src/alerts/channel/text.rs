//! Text helpers the channels share: truncation on character boundaries, RFC 3339 times,
//! error chains.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The mark a truncated text ends with.
pub const ELLIPSIS: char = '…';

/// The length chat services count: UTF-16 code units (JavaScript's `length`), never less
/// than the number of characters, so a text within a limit in these units is within it in
/// characters too.
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// `s` cut to at most `max` UTF-16 units on a character boundary, ending with `…` when cut.
pub fn truncate_units(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let budget = max - ELLIPSIS.len_utf16();
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.len_utf16();
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push(ELLIPSIS);
    out
}

/// `s` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ell = ELLIPSIS.len_utf8();
    if max < ell {
        return String::new();
    }
    let mut end = max - ell;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + ell);
    out.push_str(&s[..end]);
    out.push(ELLIPSIS);
    out
}

/// Line breaks and other control characters turned into spaces (subjects, headers, one-line
/// summaries).
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Unix milliseconds as RFC 3339 in UTC (`2023-11-14T22:13:20.123Z`; no fraction when the
/// milliseconds are 0). Clamped to years 0001..=9999.
pub fn rfc3339(ms: i64) -> String {
    const MIN: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN, MAX);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// Go's zero time, Alertmanager's `endsAt` of a firing alert.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An error and its sources, `: `-separated, without repeats (reqwest and lettre both repeat
/// their source in their own message sometimes).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        depth += 1;
        if depth > 8 {
            break;
        }
        let msg = s.to_string();
        if !out.contains(&msg) {
            let _ = write!(out, ": {msg}");
        }
        source = s.source();
    }
    // "Connection error: Connection error: refused" -> "Connection error: refused".
    let mut parts: Vec<&str> = Vec::new();
    for part in out.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// `a=1, b=2` (empty for no labels).
pub fn labels_inline(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// The first characters of a fingerprint, for chat messages.
pub fn short_fingerprint(fp: &str) -> &str {
    match fp.char_indices().nth(8) {
        Some((i, _)) => &fp[..i],
        None => fp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_units("hello", 5), "hello");
        assert_eq!(truncate_units("hello!", 5), "hell…");
        assert_eq!(truncate_units("héllo wörld", 4), "hél…");
        // Emoji count two UTF-16 units each.
        let s = "🔥🔥🔥🔥";
        assert_eq!(units(s), 8);
        let t = truncate_units(s, 6);
        assert_eq!(t, "🔥🔥…");
        assert!(units(&t) <= 6);
        assert_eq!(truncate_units(s, 2), "…");
        assert_eq!(truncate_units(s, 0), "");
        // Bytes: never splits a multi-byte character.
        let s = "ééééé"; // 10 bytes
        let t = truncate_bytes(s, 7);
        assert!(t.len() <= 7, "{t}");
        assert_eq!(t, "éé…");
        assert_eq!(truncate_bytes("abc", 3), "abc");
        assert_eq!(truncate_bytes("abcd", 2), "");
        for max in 0..40 {
            let t = truncate_bytes("日本語のテキスト", max);
            assert!(t.len() <= max);
            let t = truncate_units("日本語のテキスト🔥", max);
            assert!(units(&t) <= max);
        }
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), ZERO_TIME);
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn error_chains_drop_repeats() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E("Connection error: Connection error: refused", None);
        assert_eq!(error_chain(&e), "Connection error: refused");
        let e = E("send failed", Some(Box::new(E("timed out", None))));
        assert_eq!(error_chain(&e), "send failed: timed out");
    }

    #[test]
    fn helpers() {
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
        assert_eq!(short_fingerprint("0123456789abcdef"), "01234567");
        assert_eq!(short_fingerprint("ab"), "ab");
        let mut l = BTreeMap::new();
        l.insert("b".to_string(), "2".to_string());
        l.insert("a".to_string(), "1".to_string());
        assert_eq!(labels_inline(&l), "a=1, b=2");
    }
}
