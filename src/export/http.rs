//! The loopback HTTP listener: `GET /metrics` (Prometheus text) and `GET /health`
//! (`application/health+json`). hyper's HTTP/1 server, bounded: at most [`MAX_CONNECTIONS`]
//! at once (more are closed at once), request headers within [`HEADER_TIMEOUT`], a connection
//! lives at most [`CONNECTION_LIFETIME`]; a slow or silent client holds one slot for a few
//! seconds and nothing else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metasystem_actors::probes::Health;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::prometheus;
use crate::daemon::Daemon;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed after this, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The `output` of a probe whose first check has not completed (its status is `warn`).
const NOT_CHECKED_YET: &str = "not checked yet";

/// `/health` answers `fail` if the daemon's status takes longer than this.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound listener, not serving yet (bound at startup so a taken port stops the start).
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
}

/// Binds `addr`; the error names it.
pub async fn bind(addr: SocketAddr) -> Result<Bound, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {addr} (`http` in [daemon]): {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    Ok(Bound { listener, addr })
}

/// Serves until `stop` turns true; then closes every connection.
pub async fn serve(bound: Bound, daemon: Arc<Daemon>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(connection(stream, daemon.clone(), permit));
                    }
                    Err(_) => {
                        refused += 1;
                        if refused.is_power_of_two() {
                            tracing::warn!(
                                refused,
                                "HTTP: {MAX_CONNECTIONS} connections open; closing new ones"
                            );
                        }
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of file descriptors, most likely: do not spin.
                    tracing::debug!(error = %e, "HTTP: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

async fn connection(stream: TcpStream, daemon: Arc<Daemon>, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let daemon = daemon.clone();
        async move { Ok::<_, Infallible>(respond(&daemon, &request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_LIFETIME, served).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "HTTP connection ended"),
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    /// A known path with a method other than GET or HEAD.
    MethodNotAllowed,
    NotFound,
}

pub fn route(method: &Method, path: &str) -> Route {
    let known = match path {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        _ => return Route::NotFound,
    };
    if method == Method::GET || method == Method::HEAD {
        known
    } else {
        Route::MethodNotAllowed
    }
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn respond(daemon: &Daemon, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match route(request.method(), request.uri().path()) {
        Route::Metrics => response(
            StatusCode::OK,
            prometheus::CONTENT_TYPE,
            super::scrape(daemon),
        ),
        Route::Health => {
            let (ok, body) = health(daemon).await;
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            response(status, "application/health+json", body)
        }
        Route::MethodNotAllowed => {
            let mut r = response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "only GET and HEAD\n".into(),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Route::NotFound => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /health\n".into(),
        ),
    }
}

/// Whether the daemon is healthy, and the `application/health+json` body
/// (draft-inadarei-api-health-check): `status` `pass`, `warn` or `fail`, the version, what is
/// wrong in `output`, and the counts behind it in `checks`. A probe not checked yet is a
/// `warn` with the output "not checked yet".
async fn health(daemon: &Daemon) -> (bool, String) {
    let version = env!("CARGO_PKG_VERSION");
    let Ok(s) = tokio::time::timeout(HEALTH_TIMEOUT, daemon.health()).await else {
        let body = serde_json::json!({
            "status": "fail",
            "version": version,
            "description": "metasystem daemon",
            "output": "the daemon did not report its status in time",
        });
        return (false, body.to_string());
    };
    let mut problems = Vec::new();
    if s.failed > 0 {
        problems.push(format!("{} failed", s.failed));
    }
    if s.restarting > 0 {
        problems.push(format!("{} restarting", s.restarting));
    }
    if s.unresponsive > 0 {
        problems.push(format!("{} unresponsive", s.unresponsive));
    }
    if s.store.failing_since_ms.is_some() {
        problems.push("store writes failing".into());
    }
    if !s.healthy && problems.is_empty() {
        problems.push("the tree is not running".into());
    }
    let pass = |ok: bool| if ok { "pass" } else { "fail" };
    let mut checks = serde_json::json!({
        "tree:nodes": [{
            "status": pass(s.failed + s.restarting + s.unresponsive == 0 && s.running > 0),
            "running": s.running,
            "restarting": s.restarting,
            "stopped": s.stopped,
            "failed": s.failed,
            "unresponsive": s.unresponsive,
        }],
        "store:writes": [{
            "status": pass(s.store.failing_since_ms.is_none()),
            "queued": s.store.queued + s.store.samples_queued,
            "dropped": s.store.dropped,
            "write_failures": s.store.write_failures,
        }],
    });
    // Probes as checks of their own (componentType "probe"), breakers as "breaker".
    let reports = daemon.probe_reports();
    for r in &reports {
        // The format knows pass, warn and fail: a probe not checked yet is a warn saying so
        // (not known to pass: a fresh daemon is not "pass" before it checked anything; not a
        // failure either: no 503 for a daemon that just started).
        let mut check = serde_json::json!({
            "componentType": r.check,
            "status": r.health().as_str(),
        });
        if r.pending() {
            check["output"] = serde_json::json!(NOT_CHECKED_YET);
        }
        if let Some(last) = &r.last {
            if let Some(v) = last.value {
                check["observedValue"] = serde_json::json!(v);
                check["observedUnit"] = serde_json::json!(last.unit);
            }
            if r.status != Health::Pass {
                check["output"] = serde_json::json!(last.message);
            }
        }
        if let Some(at) = r.at_ms {
            check["time"] = serde_json::json!(metasystem_actors::store::format_ms(at));
        }
        checks[format!("probe:{}", r.path)] = serde_json::json!([check]);
        if r.status != Health::Pass {
            problems.push(format!("probe {} {}", r.path, r.status));
        }
    }
    match reports.iter().filter(|r| r.pending()).count() {
        0 => {}
        1 => problems.push(format!("1 probe {NOT_CHECKED_YET}")),
        n => problems.push(format!("{n} probes {NOT_CHECKED_YET}")),
    }
    let mut breakers_open = false;
    for b in daemon.breaker_rows() {
        let closed = b.state == "closed" || b.state == "disabled";
        breakers_open |= !closed;
        checks[format!("breaker:{}", b.name)] = serde_json::json!([{
            "status": if closed { "pass" } else { "warn" },
            "observedValue": b.state,
        }]);
    }
    if breakers_open {
        problems.push("a circuit breaker is open".into());
    }
    // pass < warn < fail: the tree and the store pass or fail; probes and breakers add theirs.
    let mut status = if s.healthy {
        Health::Pass
    } else {
        Health::Fail
    };
    status = status.worst(crate::daemon::worst_probe(&reports));
    if breakers_open {
        status = status.worst(Health::Warn);
    }
    let mut body = serde_json::json!({
        "status": status.as_str(),
        "version": version,
        "description": "metasystem daemon",
        "pid": s.pid,
        "uptime_s": s.uptime_s,
        "checks": checks,
    });
    if status != Health::Pass {
        body["output"] = serde_json::Value::String(problems.join(", "));
    }
    // 200 for pass and warn, 503 for fail.
    (status != Health::Fail, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/health"), Route::Health);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::DELETE, "/health"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::GET, "/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/healthz"), Route::NotFound);
    }
}
