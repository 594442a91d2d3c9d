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
    let version = crate::VERSION;
    let Ok((s, kinds)) = tokio::time::timeout(HEALTH_TIMEOUT, daemon.health()).await else {
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
    // The kinds' checks: probes (componentType their check), breakers.
    for (key, check) in kinds.checks {
        checks[key] = check;
    }
    problems.extend(kinds.problems);
    // pass < warn < fail: the tree and the store pass or fail; the kinds add theirs.
    let status = if s.healthy {
        Health::Pass
    } else {
        Health::Fail
    }
    .worst(kinds.status);
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
