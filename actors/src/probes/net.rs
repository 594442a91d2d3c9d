//! Network checks: a TCP connect, an HTTP GET. The value of each is the time it took, in
//! seconds (for TCP: name resolution and connect; for HTTP: connect to the end of the body read,
//! at most [`BODY_CAP`] bytes of it).
//!
//! The HTTP client follows no redirect (a 3xx is what the URL answers: a Fail unless expected,
//! its `Location` said in the message) and keeps no idle connection, so every check connects
//! afresh and the daemon holds no socket between checks.

use std::time::{Duration, Instant};

use serde_json::json;

use super::check::{unit, CheckOutcome, Health, HttpSpec, TcpSpec};
use super::fmt_elapsed;
use crate::alerts::channel::text::{error_chain, one_line, truncate_bytes};

/// How much of an HTTP body is read (and searched for `body_contains`).
pub const BODY_CAP: usize = 64 * 1024;
/// How much of a failed answer's body the message quotes.
const QUOTE_CAP: usize = 200;

/// `metasystem-probe/<version>`.
pub const USER_AGENT: &str = concat!("metasystem-probe/", env!("CARGO_PKG_VERSION"));

/// Whether `addr` is `host:port` (a bracketed IPv6 host: `[::1]:80`; a port from 1 to 65535).
pub fn check_tcp_addr(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("{addr:?} is not host:port"));
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("{addr:?} has no host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "{addr:?}: an IPv6 host is written in brackets ([::1]:80)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{addr:?} has no port from 1 to 65535")),
    }
}

/// An `http(s)` URL with a host, or why it is not one.
pub fn parse_http_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    Ok(parsed)
}

/// The client a check builds when none is given: no redirects, no idle connections kept, no
/// timeout of its own ([`super::run`] bounds the check).
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

pub(crate) async fn tcp(spec: &TcpSpec) -> CheckOutcome {
    let details = |peer: Option<String>| json!({ "addr": spec.addr, "peer": peer });
    if let Err(e) = check_tcp_addr(&spec.addr) {
        return CheckOutcome::fail(e).with_details(details(None));
    }
    let started = Instant::now();
    match tokio::net::TcpStream::connect(spec.addr.as_str()).await {
        Ok(stream) => {
            let elapsed = started.elapsed();
            let peer = stream.peer_addr().ok().map(|a| a.to_string());
            // Closed with a reset (SO_LINGER 0) rather than a FIN, as HAProxy closes its
            // health checks: the check only wanted to know the port accepts. A FIN close
            // leaves this side in TIME_WAIT for 60 s (1,000 checks/s would hold ~60,000
            // sockets and their ephemeral ports) and takes two more segments each way; a
            // reset frees the socket at once. What the listener sees is a connection reset
            // by its peer instead of an orderly close. If the option cannot be set, the
            // socket closes the usual way.
            let _ = stream.set_zero_linger();
            drop(stream);
            let via = match &peer {
                Some(p) if *p != spec.addr => format!(" ({p})"),
                _ => String::new(),
            };
            CheckOutcome::pass(format!(
                "connected to {}{via} in {}",
                spec.addr,
                fmt_elapsed(elapsed)
            ))
            .with_value(elapsed.as_secs_f64(), unit::SECONDS)
            .with_details(details(peer))
        }
        Err(e) => CheckOutcome::fail(format!("cannot connect to {}: {e}", spec.addr))
            .with_details(details(None)),
    }
}

pub(crate) async fn http(spec: &HttpSpec, client: &mut Option<reqwest::Client>) -> CheckOutcome {
    let fail =
        |message: String| CheckOutcome::fail(message).with_details(json!({ "url": spec.url }));
    let url = match parse_http_url(&spec.url) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let client = match client {
        Some(c) => c.clone(),
        None => match http_client() {
            Ok(c) => client.insert(c).clone(),
            Err(e) => return fail(e),
        },
    };
    let started = Instant::now();
    let mut response = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => return fail(format!("GET {}: {}", spec.url, error_chain(&e))),
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body: Vec<u8> = Vec::new();
    let mut truncated = false;
    // Bounded by BODY_CAP (and by the check's timeout).
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP.saturating_sub(body.len());
                if chunk.len() >= room {
                    // At the cap (whether more follows is not read to find out).
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return fail(format!(
                    "GET {}: HTTP {status}, then reading the body failed: {}",
                    spec.url,
                    error_chain(&e)
                ))
            }
        }
    }
    let answer = Answer {
        status,
        location,
        body: &body,
        truncated,
        elapsed: started.elapsed(),
    };
    evaluate_http(spec, &answer)
}

/// What an HTTP GET got.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub status: u16,
    pub location: Option<String>,
    /// At most [`BODY_CAP`] bytes.
    pub body: &'a [u8],
    /// Whether the body was cut at [`BODY_CAP`] (or may have been).
    pub truncated: bool,
    pub elapsed: Duration,
}

/// The outcome of `answer` for `spec`: the status must be the expected one (any 2xx when none),
/// then the body must contain `body_contains` (when set).
pub fn evaluate_http(spec: &HttpSpec, answer: &Answer<'_>) -> CheckOutcome {
    let status = answer.status;
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let elapsed = fmt_elapsed(answer.elapsed);
    let status_ok = match spec.expect_status {
        Some(expected) => status == expected,
        None => (200..300).contains(&status),
    };
    let (health, message) = if !status_ok {
        let expected = spec
            .expect_status
            .map_or_else(|| "2xx".to_string(), |s| s.to_string());
        let mut m = format!("HTTP {status}{reason}, expected {expected}");
        if let Some(loc) = answer
            .location
            .as_deref()
            .filter(|_| (300..400).contains(&status))
        {
            m.push_str(&format!(" (redirect to {}, not followed)", one_line(loc)));
        }
        let quoted = one_line(&String::from_utf8_lossy(answer.body));
        let quoted = quoted.trim();
        if !quoted.is_empty() {
            m.push_str(": ");
            m.push_str(&truncate_bytes(quoted, QUOTE_CAP));
        }
        (Health::Fail, m)
    } else if let Some(needle) = spec
        .body_contains
        .as_deref()
        .filter(|n| !contains(answer.body, n.as_bytes()))
    {
        let within = if answer.truncated {
            " in its first 64 KiB"
        } else {
            ""
        };
        (
            Health::Fail,
            format!(
                "HTTP {status}{reason}, but the body does not contain {:?}{within}",
                truncate_bytes(needle, QUOTE_CAP)
            ),
        )
    } else {
        (Health::Pass, format!("HTTP {status}{reason} in {elapsed}"))
    };
    CheckOutcome::new(health, message)
        .with_value(answer.elapsed.as_secs_f64(), unit::SECONDS)
        .with_details(json!({
            "url": spec.url,
            "status": status,
            "location": answer.location,
            "body_bytes": answer.body.len(),
            "body_truncated": answer.truncated,
        }))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses_are_host_and_port() {
        for ok in [
            "127.0.0.1:80",
            "example.org:443",
            "[::1]:8080",
            "localhost:1",
        ] {
            assert_eq!(check_tcp_addr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":80",
            "host:",
            "host:0",
            "host:65536",
            "::1:80",
            "a b:1",
            "host:http",
        ] {
            assert!(check_tcp_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_http_or_https() {
        assert!(parse_http_url("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_http_url("https://example.org").is_ok());
        assert!(parse_http_url("ftp://example.org").is_err());
        assert!(parse_http_url("file:///etc/passwd").is_err());
        assert!(parse_http_url("not a url").is_err());
    }

    fn answer(status: u16, body: &[u8]) -> Answer<'_> {
        Answer {
            status,
            location: None,
            body,
            truncated: false,
            elapsed: Duration::from_millis(12),
        }
    }

    #[test]
    fn any_2xx_passes_unless_a_status_is_expected() {
        let spec = HttpSpec::new("http://x/");
        let o = evaluate_http(&spec, &answer(204, b""));
        assert_eq!(o.status, Health::Pass);
        assert_eq!(o.message, "HTTP 204 No Content in 12 ms");
        assert_eq!(o.value, Some(0.012));
        assert_eq!(o.unit, "seconds");
        let o = evaluate_http(&spec, &answer(500, b"db down\nstack..."));
        assert_eq!(o.status, Health::Fail);
        assert_eq!(
            o.message,
            "HTTP 500 Internal Server Error, expected 2xx: db down stack..."
        );
        let expect_418 = HttpSpec {
            expect_status: Some(418),
            ..spec.clone()
        };
        assert_eq!(
            evaluate_http(&expect_418, &answer(418, b"")).status,
            Health::Pass
        );
        assert_eq!(
            evaluate_http(&expect_418, &answer(200, b"")).status,
            Health::Fail
        );
    }

    #[test]
    fn redirects_are_reported_not_followed() {
        let spec = HttpSpec::new("http://x/");
        let a = Answer {
            location: Some("https://x/".into()),
            ..answer(301, b"")
        };
        let o = evaluate_http(&spec, &a);
        assert_eq!(o.status, Health::Fail);
        assert_eq!(
            o.message,
            "HTTP 301 Moved Permanently, expected 2xx (redirect to https://x/, not followed)"
        );
        assert_eq!(o.details["location"], "https://x/");
    }

    #[test]
    fn the_body_must_contain_the_text() {
        let spec = HttpSpec {
            body_contains: Some("\"ok\":true".into()),
            ..HttpSpec::new("http://x/")
        };
        assert_eq!(
            evaluate_http(&spec, &answer(200, b"{\"ok\":true}")).status,
            Health::Pass
        );
        let o = evaluate_http(&spec, &answer(200, b"{\"ok\":false}"));
        assert_eq!(o.status, Health::Fail);
        assert_eq!(
            o.message,
            "HTTP 200 OK, but the body does not contain \"\\\"ok\\\":true\""
        );
        let cut = Answer {
            truncated: true,
            ..answer(200, b"xxxx")
        };
        assert!(evaluate_http(&spec, &cut)
            .message
            .ends_with("in its first 64 KiB"));
    }
}
