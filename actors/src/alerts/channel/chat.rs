//! Chat channels: Slack incoming webhooks (`text` + Block Kit `blocks`) and Discord webhooks
//! (`content` + `embeds`). Both truncate to the services' limits instead of failing.

use serde_json::{json, Value};

use super::text::{self, truncate_units};
use crate::alerts::alert::{Notification, Severity, Status};

pub const SLACK_TEXT_MAX: usize = 3000;
pub const SLACK_SECTION_MAX: usize = 3000;
pub const SLACK_HEADER_MAX: usize = 150;
pub const SLACK_BLOCKS_MAX: usize = 50;

pub const DISCORD_CONTENT_MAX: usize = 2000;
pub const DISCORD_EMBEDS_MAX: usize = 10;
pub const DISCORD_TITLE_MAX: usize = 256;
pub const DISCORD_DESCRIPTION_MAX: usize = 4096;
pub const DISCORD_EMBEDS_TOTAL_MAX: usize = 6000;

/// The emoji that leads a line about `n`.
pub fn emoji(n: &Notification) -> &'static str {
    match (n.status, n.severity) {
        (Status::Resolved, _) => "✅",
        (Status::Firing, Severity::Critical) => "🔴",
        (Status::Firing, Severity::Warning) => "🟠",
        (Status::Firing, Severity::Info) => "🔵",
    }
}

/// `CRITICAL`, `WARNING`, `INFO`, or `RESOLVED`.
pub fn tag(n: &Notification) -> String {
    match n.status {
        Status::Resolved => "RESOLVED".to_string(),
        Status::Firing => n.severity.as_str().to_ascii_uppercase(),
    }
}

fn title_of(n: &Notification) -> String {
    let t = text::one_line(&n.title);
    let t = t.trim();
    if t.is_empty() {
        "(no title)".to_string()
    } else {
        t.to_string()
    }
}

/// `🔴 CRITICAL: disk full` for one, `🔴 3 alerts: 2 firing, 1 resolved` for a batch (the
/// emoji of its [`super::lead`]: the most severe firing one, ✅ only when all resolved).
fn summary(batch: &[Notification]) -> String {
    match batch {
        [] => "no alerts".to_string(),
        [n] => format!("{} {}: {}", emoji(n), tag(n), title_of(n)),
        [first, ..] => {
            let first = super::lead(batch).unwrap_or(first);
            let firing = batch.iter().filter(|n| n.status == Status::Firing).count();
            format!(
                "{} {} alerts: {} firing, {} resolved",
                emoji(first),
                batch.len(),
                firing,
                batch.len() - firing
            )
        }
    }
}

/// The detail lines shared by Slack and Discord (`bold` wraps a field name).
fn details(
    n: &Notification,
    bold: &dyn Fn(&str) -> String,
    esc: &dyn Fn(&str) -> String,
) -> String {
    let mut out = format!(
        "{} {} · {} {}",
        bold("Severity:"),
        n.severity.as_str(),
        bold("Source:"),
        esc(&text::one_line(&n.source))
    );
    out.push('\n');
    out.push_str(&format!(
        "{} {}",
        bold("Started:"),
        text::rfc3339(n.starts_at_ms)
    ));
    if let (Status::Resolved, Some(end)) = (n.status, n.ends_at_ms) {
        out.push_str(&format!(" · {} {}", bold("Ended:"), text::rfc3339(end)));
    }
    if n.occurrences > 1 {
        out.push_str(&format!(" · {} {}", bold("Occurrences:"), n.occurrences));
    }
    if !n.labels.is_empty() {
        out.push('\n');
        out.push_str(&format!(
            "{} {}",
            bold("Labels:"),
            esc(&text::one_line(&text::labels_inline(&n.labels)))
        ));
    }
    let body = n.body.trim();
    if !body.is_empty() {
        out.push_str("\n\n");
        out.push_str(&esc(body));
    }
    out
}

/// Slack's three control characters escaped (`&`, `<`, `>`).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The incoming-webhook body: a plain `text` fallback and readable blocks (a header, then a
/// section and a context line per notification). Stays within Slack's limits: `text` and
/// sections <= 3,000 chars, the header <= 150, at most 50 blocks (the rest summarised).
pub fn slack_payload(batch: &[Notification]) -> Value {
    let mut fallback = summary(batch);
    if let [n] = batch {
        let body = text::one_line(n.body.trim());
        if !body.is_empty() {
            fallback.push_str(" — ");
            fallback.push_str(&body);
        }
    } else {
        for n in batch {
            fallback.push_str(&format!("\n• {}: {}", tag(n), title_of(n)));
        }
    }
    let fallback = truncate_units(&slack_escape(&fallback), SLACK_TEXT_MAX);

    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate_units(&summary(batch), SLACK_HEADER_MAX),
            "emoji": true,
        },
    })];
    let bold = |s: &str| format!("*{s}*");
    for (i, n) in batch.iter().enumerate() {
        // A notification takes up to 3 blocks (divider, section, context); one stays free
        // for the "more" line.
        if blocks.len() + 3 > SLACK_BLOCKS_MAX - 1 {
            let rest = batch.len() - i;
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("…and {rest} more not shown")},
            }));
            break;
        }
        if i > 0 {
            blocks.push(json!({"type": "divider"}));
        }
        let head = format!("{} *[{}] {}*", emoji(n), tag(n), slack_escape(&title_of(n)));
        let section = format!("{head}\n{}", details(n, &bold, &slack_escape));
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate_units(&section, SLACK_SECTION_MAX)},
        }));
        blocks.push(json!({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": format!("fingerprint `{}`", text::short_fingerprint(&n.fingerprint)),
            }],
        }));
    }
    json!({ "text": fallback, "blocks": blocks })
}

/// The embed colour: red, orange, blue by severity; green when resolved.
pub fn discord_color(n: &Notification) -> u32 {
    match (n.status, n.severity) {
        (Status::Resolved, _) => 0x2E7D32,
        (Status::Firing, Severity::Critical) => 0xD32F2F,
        (Status::Firing, Severity::Warning) => 0xF57C00,
        (Status::Firing, Severity::Info) => 0x1E88E5,
    }
}

/// The webhook URL with `wait=true` in its query (other pairs kept), so Discord reports a
/// failed message instead of answering 204 at once.
pub fn discord_url(mut url: reqwest::Url) -> reqwest::Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "wait")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("wait", "true");
    }
    url
}

/// The webhook body: `content` (a summary, <= 2,000 chars) and up to 10 embeds (title <= 256,
/// description <= 4,096, all embed text <= 6,000 in total, shared fairly). Mentions are
/// disabled: alert text never pings anyone.
pub fn discord_payload(batch: &[Notification]) -> Value {
    let shown = batch.len().min(DISCORD_EMBEDS_MAX);
    let bold = |s: &str| format!("**{s}**");
    let plain = |s: &str| s.to_string();
    let mut embeds = Vec::with_capacity(shown);
    let mut budget = DISCORD_EMBEDS_TOTAL_MAX;
    for (i, n) in batch[..shown].iter().enumerate() {
        let left = shown - i;
        let share = budget / left;
        let footer = format!(
            "fingerprint {} · {}",
            text::short_fingerprint(&n.fingerprint),
            n.status.as_str()
        );
        let footer = truncate_units(&footer, 100);
        let title_max = DISCORD_TITLE_MAX.min(share.saturating_sub(text::units(&footer)) / 2);
        let title = truncate_units(&format!("[{}] {}", tag(n), title_of(n)), title_max);
        let used = text::units(&title) + text::units(&footer);
        let desc_max = DISCORD_DESCRIPTION_MAX.min(share.saturating_sub(used));
        let description = truncate_units(&details(n, &bold, &plain), desc_max);
        budget = budget.saturating_sub(used + text::units(&description));
        let mut embed = json!({
            "title": title,
            "color": discord_color(n),
            "timestamp": text::rfc3339(n.starts_at_ms),
            "footer": {"text": footer},
        });
        if !description.is_empty() {
            embed["description"] = Value::String(description);
        }
        embeds.push(embed);
    }
    let mut content = match batch {
        [n] => format!("{} **{}** {}", emoji(n), tag(n), title_of(n)),
        _ => summary(batch),
    };
    if batch.len() > shown {
        content.push_str(&format!(" (+{} more not shown)", batch.len() - shown));
    }
    json!({
        "content": truncate_units(&content, DISCORD_CONTENT_MAX),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::channel::tests_support::note;
    use crate::alerts::channel::text::units;

    fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
        v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
    }

    #[test]
    fn slack_one_notification_reads_well() {
        let mut n = note(Severity::Critical, Status::Firing, "disk <full> & more");
        n.labels.insert("mount".into(), "/data".into());
        n.occurrences = 3;
        let v = slack_payload(&[n.clone()]);
        assert_eq!(
            str_at(&v, "/text"),
            "🔴 CRITICAL: disk &lt;full&gt; &amp; more — body of disk &lt;full&gt; &amp; more"
        );
        assert_eq!(str_at(&v, "/blocks/0/type"), "header");
        assert_eq!(
            str_at(&v, "/blocks/0/text/text"),
            "🔴 CRITICAL: disk <full> & more"
        );
        let section = str_at(&v, "/blocks/1/text/text");
        assert!(
            section.starts_with("🔴 *[CRITICAL] disk &lt;full&gt; &amp; more*\n"),
            "{section}"
        );
        assert!(section.contains("*Source:* root/test"), "{section}");
        assert!(
            section.contains("*Started:* 2023-11-14T22:13:20.123Z"),
            "{section}"
        );
        assert!(section.contains("*Occurrences:* 3"), "{section}");
        assert!(section.contains("*Labels:* mount=/data"), "{section}");
        let fp = &n.fingerprint[..8];
        assert_eq!(
            str_at(&v, "/blocks/2/elements/0/text"),
            format!("fingerprint `{fp}`")
        );
    }

    #[test]
    fn slack_limits_hold_for_huge_batches() {
        let huge = "é🔥x".repeat(5000);
        let batch: Vec<_> = (0..40)
            .map(|i| {
                let mut n = note(Severity::Warning, Status::Firing, &format!("{huge}{i}"));
                n.body = huge.clone();
                n
            })
            .collect();
        let v = slack_payload(&batch);
        assert!(units(str_at(&v, "/text")) <= SLACK_TEXT_MAX);
        let blocks = v["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= SLACK_BLOCKS_MAX, "{}", blocks.len());
        assert!(units(str_at(&v, "/blocks/0/text/text")) <= SLACK_HEADER_MAX);
        for b in blocks {
            if b["type"] == "section" {
                let t = b["text"]["text"].as_str().expect("text");
                assert!(!t.is_empty() && units(t) <= SLACK_SECTION_MAX);
            }
        }
        let last = blocks.last().expect("a block");
        assert!(str_at(last, "/text/text").contains("more not shown"));
        // A huge single title.
        let v = slack_payload(&[note(Severity::Info, Status::Resolved, &huge)]);
        assert!(units(str_at(&v, "/blocks/0/text/text")) <= SLACK_HEADER_MAX);
        assert!(str_at(&v, "/blocks/0/text/text").starts_with("✅ RESOLVED: "));
    }

    /// Regression (the attack): an earlier episode's end first, a firing after it: the
    /// summary leads with what fires, not the all-clear mark.
    #[test]
    fn a_batch_summary_leads_with_what_fires() {
        let r = note(Severity::Warning, Status::Resolved, "old");
        let w = note(Severity::Warning, Status::Firing, "new");
        let c = note(Severity::Critical, Status::Firing, "worse");
        assert_eq!(
            summary(&[r.clone(), w.clone()]),
            "🟠 2 alerts: 1 firing, 1 resolved"
        );
        assert_eq!(
            summary(&[r.clone(), w, c]),
            "🔴 3 alerts: 2 firing, 1 resolved"
        );
        assert_eq!(
            summary(&[r.clone(), r]),
            "✅ 2 alerts: 0 firing, 2 resolved"
        );
    }

    #[test]
    fn discord_url_gets_wait() {
        let u = |s: &str| discord_url(reqwest::Url::parse(s).expect("url")).to_string();
        assert_eq!(
            u("https://discord.com/api/webhooks/1/t"),
            "https://discord.com/api/webhooks/1/t?wait=true"
        );
        assert_eq!(
            u("https://discord.com/api/webhooks/1/t?thread_id=9&wait=false"),
            "https://discord.com/api/webhooks/1/t?thread_id=9&wait=true"
        );
    }

    #[test]
    fn discord_limits_hold() {
        let huge = "ü🔥".repeat(10_000);
        let batch: Vec<_> = (0..25)
            .map(|i| {
                let mut n = note(Severity::Critical, Status::Firing, &format!("{huge}{i}"));
                n.body = huge.clone();
                n
            })
            .collect();
        for len in [1, 2, 10, 25] {
            let v = discord_payload(&batch[..len]);
            assert!(units(str_at(&v, "/content")) <= DISCORD_CONTENT_MAX);
            let embeds = v["embeds"].as_array().expect("embeds");
            assert_eq!(embeds.len(), len.min(10));
            let mut total = 0;
            for e in embeds {
                let t = units(str_at(e, "/title"));
                let d = units(str_at(e, "/description"));
                let f = units(str_at(e, "/footer/text"));
                assert!(t <= DISCORD_TITLE_MAX && d <= DISCORD_DESCRIPTION_MAX);
                assert!(t > 5, "title squeezed to nothing");
                total += t + d + f;
            }
            assert!(total <= DISCORD_EMBEDS_TOTAL_MAX, "{len}: {total}");
        }
        let v = discord_payload(&batch);
        assert!(str_at(&v, "/content").ends_with("(+15 more not shown)"));
        assert_eq!(v["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn discord_colours_and_content() {
        let c = note(Severity::Critical, Status::Firing, "down");
        let r = note(Severity::Critical, Status::Resolved, "down");
        let v = discord_payload(&[c]);
        assert_eq!(str_at(&v, "/content"), "🔴 **CRITICAL** down");
        assert_eq!(v["embeds"][0]["color"], 0xD32F2F);
        assert_eq!(str_at(&v, "/embeds/0/title"), "[CRITICAL] down");
        assert_eq!(
            str_at(&v, "/embeds/0/timestamp"),
            "2023-11-14T22:13:20.123Z"
        );
        let v = discord_payload(&[r]);
        assert_eq!(v["embeds"][0]["color"], 0x2E7D32);
        assert!(str_at(&v, "/embeds/0/description").contains("**Ended:** 2023-11-14T22:14:20Z"));
    }
}
