//! `sync` and `sync status`: forced runs of the sync targets (through their actors, which run
//! one at a time per target) and their status from the shared registry.

use std::time::Duration;

use metasystem_actors::sync::SyncTargetMessage;
use serde_json::json;

use super::Daemon;
use crate::control::protocol::{code, Response, SyncResult, SyncStatusResult};
use crate::kinds::sync_target::run_options;

/// How long a forced run may take before the daemon stops waiting (the run goes on).
const RUN_WAIT: Duration = Duration::from_secs(24 * 3600);

impl Daemon {
    pub(super) async fn sync_now(
        &self,
        id: Option<u64>,
        target: Option<String>,
        direction: Option<String>,
        strategy: Option<String>,
        dry_run: bool,
    ) -> Response {
        let opts = match run_options(direction.as_deref(), strategy.as_deref(), dry_run) {
            Ok(o) => o,
            Err(e) => return Response::error(id, code::BAD_REQUEST, e),
        };
        let registry = &self.services.sync;
        let names = match target {
            Some(t) => {
                if registry.actor(&t).is_none() {
                    let names = registry.names();
                    let hint = match crate::config::reader::suggest(
                        &t,
                        &names.iter().map(String::as_str).collect::<Vec<_>>(),
                    ) {
                        Some(close) => format!("; did you mean `{close}`?"),
                        None => String::new(),
                    };
                    return Response::error(
                        id,
                        code::NOT_FOUND,
                        format!(
                            "no sync target `{t}` is running (targets: {}){hint}",
                            if names.is_empty() {
                                "none".into()
                            } else {
                                names.join(", ")
                            }
                        ),
                    );
                }
                vec![t]
            }
            None => registry.names(),
        };
        let runs = names.into_iter().filter_map(|n| {
            let actor = registry.actor(&n)?;
            let opts = opts.clone();
            Some(async move {
                match actor
                    .call(|r| SyncTargetMessage::Run(opts, Some(r)), Some(RUN_WAIT))
                    .await
                {
                    Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
                    _ => Err(format!("sync target `{n}` stopped before answering")),
                }
            })
        });
        let mut reports = Vec::new();
        for r in futures_util::future::join_all(runs).await {
            match r {
                Ok(report) => reports.push(report),
                Err(e) => return Response::error(id, code::NOT_RUNNING, e),
            }
        }
        Response::ok(id, json!(SyncResult { reports }))
    }

    pub(super) fn sync_status(&self, id: Option<u64>) -> Response {
        Response::ok(
            id,
            json!(SyncStatusResult {
                targets: self.services.sync.statuses()
            }),
        )
    }
}
