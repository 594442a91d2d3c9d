//! HTTP delivery shared by the webhook, Slack and Discord channels: posting JSON, reading a
//! bounded reply, and classifying it (including `retry_after` on 429).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;

use super::text;
use super::{Outcome, ANSWER_CAP};
use crate::retry::{Classify, HttpStatus};

/// The longest wait a channel can ask for; longer (or absurd) values are capped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of a reply body is read (enough for any rate-limit JSON).
const BODY_READ_CAP: usize = 16 * 1024;

/// An `http(s)` URL with a host, or the reason it is not one.
pub fn parse_url(url: Option<&str>) -> Result<Url, String> {
    let raw = match url.map(str::trim) {
        None | Some("") => return Err("no `url`".to_string()),
        Some(raw) => raw,
    };
    let url = Url::parse(raw).map_err(|_| "`url` is not an http(s) URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("`url` is not an http(s) URL".to_string());
    }
    if url.port() == Some(0) {
        return Err("`url` names port 0, which nothing listens on".to_string());
    }
    Ok(url)
}

/// Posts `body` as JSON (with its `Idempotency-Key`) and classifies the reply, with the
/// failure's label for the retry statistics (`None` when accepted):
/// `http_<status>` for an error status, the retry library's class of a request that got no
/// status (`timeout`, `connect`, `http_body`, ...), `encode` for a payload that cannot be
/// encoded.
pub async fn post_json_labelled(
    client: &reqwest::Client,
    url: &Url,
    body: &serde_json::Value,
    idempotency_key: &str,
) -> (Outcome, Option<String>) {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            let outcome = Outcome::Permanent {
                code: None,
                error: format!("cannot encode the payload: {e}"),
            };
            return (outcome, Some("encode".to_string()));
        }
    };
    let response = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", idempotency_key)
        .body(bytes)
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        // reqwest names the URL in its errors: a webhook's URL is its secret (Slack, Discord),
        // and an Alertmanager's may hold a password; the channel and member name it instead.
        Err(e) => {
            let label = e.label();
            return (request_error(&e.without_url()), Some(label));
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_READ_CAP.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= BODY_READ_CAP {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // The status is known: a 2xx whose body broke off was still accepted.
                if (200..300).contains(&status) {
                    break;
                }
                let label = e.label();
                return (request_error(&e.without_url()), Some(label));
            }
        }
    }
    let outcome = classify(status, &headers, &body, SystemTime::now());
    let label = (!outcome.is_accepted()).then(|| HttpStatus(status).label());
    (outcome, label)
}

/// A request that got no status: timeouts, refused or reset connections, TLS failures are
/// transient; a request reqwest could not even build is permanent.
fn request_error(e: &reqwest::Error) -> Outcome {
    let error = text::truncate_bytes(&text::error_chain(e), ANSWER_CAP);
    if e.is_builder() {
        Outcome::Permanent { code: None, error }
    } else {
        Outcome::Transient {
            code: None,
            error,
            retry_after: None,
        }
    }
}

/// The outcome of an HTTP reply: 2xx accepted; 429, 408 and 5xx transient (429 and 503 with
/// their `retry_after`); anything else permanent.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> Outcome {
    let answer = text::truncate_bytes(&String::from_utf8_lossy(body), ANSWER_CAP);
    let code = Some(status);
    match status {
        200..=299 => Outcome::Accepted { code, answer },
        429 | 503 => Outcome::Transient {
            code,
            error: status_error(status, &answer),
            retry_after: retry_after_from_body(body).or_else(|| {
                headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_from_header(v, now))
            }),
        },
        408 | 500..=599 => Outcome::Transient {
            code,
            error: status_error(status, &answer),
            retry_after: None,
        },
        _ => Outcome::Permanent {
            code,
            error: status_error(status, &answer),
        },
    }
}

fn status_error(status: u16, answer: &str) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let answer = text::one_line(answer);
    let answer = answer.trim();
    let mut out = format!("HTTP {status}");
    if !reason.is_empty() {
        out.push(' ');
        out.push_str(reason);
    }
    if !answer.is_empty() {
        out.push_str(": ");
        out.push_str(answer);
    }
    text::truncate_bytes(&out, ANSWER_CAP)
}

/// Seconds as a JSON number or numeric string, capped to [`MAX_RETRY_AFTER`]; `None` for
/// negatives, NaN and anything else.
pub fn retry_after_seconds(v: &serde_json::Value) -> Option<Duration> {
    let secs = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    seconds_to_duration(secs)
}

fn seconds_to_duration(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    if secs >= MAX_RETRY_AFTER.as_secs_f64() {
        return Some(MAX_RETRY_AFTER);
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// `retry_after` of a JSON body (Discord: seconds as a float), if the body is JSON and has one.
pub fn retry_after_from_body(body: &[u8]) -> Option<Duration> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    retry_after_seconds(json.get("retry_after")?)
}

/// A `Retry-After` header: seconds (decimals tolerated) or an HTTP date (a past date: 0).
pub fn retry_after_from_header(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<f64>() {
        return seconds_to_duration(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[tokio::test]
    async fn a_failed_request_does_not_repeat_its_url() {
        // A closed port: the listener is dropped before the post.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = Url::parse(&format!(
            "http://ops:s3cret@127.0.0.1:{port}/T000/B000/XYZSECRET"
        ))
        .unwrap();
        let (outcome, label) =
            post_json_labelled(&reqwest::Client::new(), &url, &json!({}), "k").await;
        let Outcome::Transient { error, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(label.is_some());
        assert!(
            !error.contains("s3cret") && !error.contains("XYZSECRET"),
            "{error}"
        );
    }

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn retry_after_json_is_defensive() {
        let d = |v| retry_after_seconds(&v);
        assert_eq!(d(json!(1.5)), Some(Duration::from_millis(1500)));
        assert_eq!(d(json!(0)), Some(Duration::ZERO));
        assert_eq!(d(json!("2.25")), Some(Duration::from_millis(2250)));
        assert_eq!(d(json!(-3)), None);
        assert_eq!(d(json!(1e300)), Some(MAX_RETRY_AFTER));
        assert_eq!(d(json!(7200)), Some(MAX_RETRY_AFTER));
        assert_eq!(d(json!("NaN")), None);
        assert_eq!(d(json!("inf")), Some(MAX_RETRY_AFTER));
        assert_eq!(d(json!("soon")), None);
        assert_eq!(d(json!(null)), None);
        assert_eq!(d(json!([1])), None);
        assert_eq!(
            retry_after_from_body(
                br#"{"message":"You are being rate limited.","retry_after":0.347,"global":false}"#
            ),
            Some(Duration::from_millis(347))
        );
        assert_eq!(retry_after_from_body(b"not json"), None);
        assert_eq!(retry_after_from_body(b"{}"), None);
    }

    #[test]
    fn retry_after_header_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").expect("date");
        assert_eq!(
            retry_after_from_header("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_from_header(" 3 ", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after_from_header("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_from_header("-1", now), None);
        assert_eq!(
            retry_after_from_header("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_from_header("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_from_header("Thu, 22 Oct 2015 07:28:00 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after_from_header("tomorrow", now), None);
        assert_eq!(retry_after_from_header("", now), None);
    }

    #[test]
    fn statuses_classify() {
        let now = SystemTime::now();
        let h = headers(None);
        assert!(matches!(
            classify(200, &h, b"ok", now),
            Outcome::Accepted { code: Some(200), ref answer } if answer == "ok"
        ));
        assert!(classify(204, &h, b"", now).is_accepted());
        for s in [408, 500, 502, 503, 504] {
            assert!(classify(s, &h, b"", now).is_transient(), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 413] {
            assert!(classify(s, &h, b"", now).is_permanent(), "{s}");
        }
        // 429: the body's retry_after wins over the header.
        let o = classify(429, &headers(Some("5")), br#"{"retry_after": 1.25}"#, now);
        assert_eq!(
            o,
            Outcome::Transient {
                code: Some(429),
                error: r#"HTTP 429 Too Many Requests: {"retry_after": 1.25}"#.to_string(),
                retry_after: Some(Duration::from_millis(1250)),
            }
        );
        let o = classify(429, &headers(Some("5")), b"slow down", now);
        assert!(
            matches!(o, Outcome::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(5))
        );
        let o = classify(429, &h, b"", now);
        assert!(matches!(
            o,
            Outcome::Transient {
                retry_after: None,
                ..
            }
        ));
        // Answers are capped.
        let big = "x".repeat(10_000);
        match classify(200, &h, big.as_bytes(), now) {
            Outcome::Accepted { answer, .. } => assert!(answer.len() <= ANSWER_CAP),
            other => panic!("{other:?}"),
        }
        match classify(400, &h, big.as_bytes(), now) {
            Outcome::Permanent { error, .. } => assert!(error.len() <= ANSWER_CAP),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls() {
        assert!(parse_url(Some("https://hooks.slack.com/services/x")).is_ok());
        assert!(parse_url(Some("http://127.0.0.1:9/x?a=b")).is_ok());
        assert_eq!(parse_url(None).unwrap_err(), "no `url`");
        assert_eq!(parse_url(Some("  ")).unwrap_err(), "no `url`");
        for bad in ["ftp://h/x", "hooks.slack.com/x", "http://", "mailto:a@b"] {
            assert_eq!(
                parse_url(Some(bad)).unwrap_err(),
                "`url` is not an http(s) URL",
                "{bad}"
            );
        }
    }
}
