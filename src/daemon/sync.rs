//! `sync` and `sync status`: forced runs of the sync targets (through their actors, which run
//! one at a time per target) and their status from the shared registry.

use super::handle::Answer;
use crate::control::protocol::Failure;
use std::time::Duration;

use metasystem_actors::store::format_ms;
use metasystem_actors::sync::{Keep, SyncTargetMessage};

use super::Daemon;
use crate::control::protocol::{
    code, BackupDir, BackupsResult, ConflictView, ConflictsResult, SyncResult, SyncStatusResult,
};
use crate::kinds::sync_target::run_options;

/// How long a forced run may take before the daemon stops waiting (the run goes on).
const RUN_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A forced run's options as the request gives them.
pub(super) struct SyncOpts {
    pub direction: Option<String>,
    pub strategy: Option<String>,
    pub dry_run: bool,
    pub lock_wait: Option<Duration>,
    pub allow_deletes: Option<usize>,
}

impl Daemon {
    pub(super) async fn sync_now(&self, target: Option<String>, o: SyncOpts) -> Answer<SyncResult> {
        if o.allow_deletes.is_some() && target.is_none() {
            return Err(Failure::new(
                code::BAD_REQUEST,
                "allow_deletes lets one target's run through the guard on mass deletion: name \
                 the target",
            ));
        }
        let opts = match run_options(o.direction.as_deref(), o.strategy.as_deref(), o.dry_run) {
            Ok(r) => metasystem_actors::sync::RunOptions {
                lock_wait: o.lock_wait,
                allow_deletes: o.allow_deletes,
                ..r
            },
            Err(e) => return Err(Failure::new(code::BAD_REQUEST, e)),
        };
        let registry = &self.services.sync;
        let names = match target {
            Some(t) => {
                if registry.actor(&t).is_none() {
                    return Err(unknown_target(registry, &t));
                }
                vec![t]
            }
            None => registry.names(),
        };
        let runs = names
            .iter()
            .map(|n| registry.run(n, opts.clone(), RUN_WAIT));
        let mut reports = Vec::new();
        for r in futures_util::future::join_all(runs).await {
            match r {
                Ok(report) => reports.push(report),
                Err(e) => return Err(Failure::new(code::NOT_RUNNING, e)),
            }
        }
        Ok(SyncResult { reports })
    }

    pub(super) async fn sync_status(&self) -> Answer<SyncStatusResult> {
        let targets = crate::kinds::sync_target::statuses(&self.services).await;
        Ok(SyncStatusResult { targets })
    }

    /// Every target's status. Whether each target is there is a look at the disk (a mount
    /// may hang): on the blocking pool, at most 2 s, else as the actors last saw it.
    /// `conflicts [--all] [--target T]`, from the read pool.
    pub(super) async fn conflicts(
        &self,
        target: Option<String>,
        all: bool,
    ) -> Answer<ConflictsResult> {
        let rows = match metasystem_actors::store::sync::conflicts(
            self.store.reader(),
            target.as_deref(),
            all,
        )
        .await
        {
            Ok(rows) => rows,
            Err(e) => return Err(e.into()),
        };
        // A name no target has (a typo) is an error, not "no open conflicts"; a target taken
        // out of the config still shows the conflicts it left.
        if let Some(t) = &target {
            if rows.is_empty() && self.services.sync.actor(t).is_none() {
                return Err(unknown_target(&self.services.sync, t));
            }
        }
        let specs = self.services.sync.specs();
        let conflicts = rows
            .into_iter()
            .map(|c| ConflictView {
                copy_path: specs
                    .iter()
                    .find(|s| s.name == c.target)
                    .map(|s| s.primary.join(&c.copy).display().to_string()),
                id: c.id,
                detected: format_ms(c.detected_ms),
                resolved: c.resolved_ms.map(format_ms),
                target: c.target,
                path: c.path,
                copy: c.copy,
                resolution: c.resolution,
            })
            .collect();
        Ok(ConflictsResult { conflicts })
    }

    /// `conflicts resolve PATH [--target T] --keep local|remote|both`: through the target's
    /// actor, which never does it during a run.
    pub(super) async fn conflict_resolve(
        &self,
        path: String,
        target: Option<String>,
        keep: Keep,
    ) -> Answer<metasystem_actors::sync::Resolution> {
        let open = match metasystem_actors::store::sync::conflicts(self.store.reader(), None, false)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return Err(e.into()),
        };
        let path = path.trim_end_matches('/').to_string();
        let mut targets: Vec<&str> = open
            .iter()
            .filter(|c| c.path == path && target.as_deref().is_none_or(|t| t == c.target))
            .map(|c| c.target.as_str())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let name = match targets.as_slice() {
            [one] => one.to_string(),
            [] => {
                let mut names: Vec<String> = open
                    .iter()
                    .filter(|c| target.as_deref().is_none_or(|t| t == c.target))
                    .map(|c| format!("{} (target {})", c.path, c.target))
                    .collect();
                names.sort();
                names.dedup();
                let scope = match &target {
                    Some(t) => format!(" in sync target `{t}`"),
                    None => String::new(),
                };
                return Err(Failure::new(
                    code::NOT_FOUND,
                    if names.is_empty() {
                        format!("{path} has no open conflict{scope}: there is none open")
                    } else {
                        format!(
                            "{path} has no open conflict{scope}; open: {}",
                            names.join(", ")
                        )
                    },
                ));
            }
            many => {
                return Err(Failure::new(
                    code::BAD_REQUEST,
                    format!(
                        "{path} has open conflicts in several sync targets ({}): say which with \
                         --target",
                        many.join(", ")
                    ),
                ))
            }
        };
        let Some(actor) = self.services.sync.actor(&name) else {
            return Err(Failure::new(
                code::NOT_RUNNING,
                format!("sync target `{name}` is not running: start it to resolve its conflicts"),
            ));
        };
        match actor
            .call(
                |r| SyncTargetMessage::Resolve(path.clone(), keep, r),
                Some(RUN_WAIT),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Ok(res))) => Ok(res),
            Ok(ractor::rpc::CallResult::Success(Err(e))) => {
                Err(e.context(format!("{name}: {path}")).into())
            }
            _ => Err(Failure::new(
                code::NOT_RUNNING,
                format!("sync target `{name}` stopped before answering"),
            )),
        }
    }

    /// `backups [--target T]`: every target's backups folder walked on the blocking pool.
    pub(super) async fn backups(&self, target: Option<String>) -> Answer<BackupsResult> {
        let registry = &self.services.sync;
        if let Some(t) = &target {
            if registry.actor(t).is_none() {
                return Err(unknown_target(registry, t));
            }
        }
        let specs: Vec<_> = registry
            .specs()
            .into_iter()
            .filter(|s| target.as_deref().is_none_or(|t| t == s.name))
            .collect();
        let listed = tokio::task::spawn_blocking(move || {
            use metasystem_actors::sync::backups::MAX_LISTED;
            let mut backups = Vec::new();
            let mut dirs = Vec::new();
            let mut truncated = false;
            for spec in &specs {
                let r = metasystem_actors::sync::backups::list(spec);
                dirs.push(BackupDir {
                    target: spec.name.clone(),
                    dir: spec.backups.display().to_string(),
                    count: r.as_ref().map_or(0, |(l, _)| l.len()),
                    error: r.as_ref().err().cloned(),
                });
                if let Ok((list, more)) = r {
                    truncated |= more;
                    backups.extend(list);
                }
            }
            // Newest first, each target's run together.
            backups.sort_by(|a, b| {
                b.taken_ms
                    .cmp(&a.taken_ms)
                    .then_with(|| a.target.cmp(&b.target))
                    .then_with(|| a.name.cmp(&b.name))
            });
            truncated |= backups.len() > MAX_LISTED;
            backups.truncate(MAX_LISTED);
            BackupsResult {
                backups,
                truncated,
                dirs,
            }
        })
        .await;
        match listed {
            Ok(result) => Ok(result),
            Err(e) => Err(Failure::new(
                code::INTERNAL,
                format!("listing the backups failed: {e}"),
            )),
        }
    }

    /// `backups restore NAME [--target T]`: through the target's actor (never during a run).
    pub(super) async fn backup_restore(
        &self,
        name: String,
        target: Option<String>,
    ) -> Answer<metasystem_actors::sync::backups::Restored> {
        use metasystem_actors::sync::backups;
        if let Err(e) = backups::check_name(&name) {
            return Err(Failure::new(code::BAD_REQUEST, e));
        }
        let registry = &self.services.sync;
        let name_t = match target {
            Some(t) => {
                if registry.actor(&t).is_none() {
                    return Err(unknown_target(registry, &t));
                }
                t
            }
            None => {
                let specs = registry.specs();
                let n = name.clone();
                let holders = tokio::task::spawn_blocking(move || {
                    specs
                        .iter()
                        .filter(|s| backups::exists(s, &n))
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                match holders.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        return Err(Failure::new(
                            code::NOT_FOUND,
                            format!(
                                "no sync target has a backup {name:?}; `metasystem backups` \
                                 lists them by the name to give"
                            ),
                        ))
                    }
                    many => {
                        return Err(Failure::new(
                            code::BAD_REQUEST,
                            format!(
                                "several sync targets have a backup {name:?} ({}): say which \
                                 with --target",
                                many.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        let Some(actor) = registry.actor(&name_t) else {
            return Err(unknown_target(registry, &name_t));
        };
        match actor
            .call(
                |r| SyncTargetMessage::Restore(name.clone(), r),
                Some(RUN_WAIT),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Ok(res))) => Ok(res),
            Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(e.context(&name_t).into()),
            _ => Err(Failure::new(
                code::NOT_RUNNING,
                format!("sync target `{name_t}` stopped before answering"),
            )),
        }
    }
}

impl Daemon {
    /// `backups restore --run ID [--target T]` or `--since D --target T`: which target (the
    /// one whose backups carry the run's ID, when not given), then the restore through its
    /// actor (never during a run), each path's result in the answer.
    pub(super) async fn backup_restore_run(
        &self,
        run: Option<String>,
        since_unix_ms: Option<i64>,
        target: Option<String>,
    ) -> Answer<metasystem_actors::sync::backups::RestoredSet> {
        use metasystem_actors::sync::backups::{self, Which};
        let which = match (run, since_unix_ms) {
            (Some(run), None) => {
                if let Err(e) = backups::check_run_id(&run) {
                    return Err(Failure::new(code::BAD_REQUEST, e));
                }
                Which::Run(run)
            }
            (None, Some(ms)) => {
                let Ok(ms) = u64::try_from(ms) else {
                    return Err(Failure::new(
                        code::BAD_REQUEST,
                        format!("since_unix_ms {ms} is before 1970"),
                    ));
                };
                if target.is_none() {
                    return Err(Failure::new(
                        code::BAD_REQUEST,
                        "restoring every backup since a time needs the sync target: --target T",
                    ));
                }
                match std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
                    Some(t) => Which::Since(t),
                    None => {
                        return Err(Failure::new(
                            code::BAD_REQUEST,
                            format!("since_unix_ms {ms} is out of range"),
                        ))
                    }
                }
            }
            _ => {
                return Err(Failure::new(
                    code::BAD_REQUEST,
                    "give either a run's ID (run) or a time (since_unix_ms), not both",
                ))
            }
        };
        let registry = &self.services.sync;
        let name = match target {
            Some(t) => {
                if registry.actor(&t).is_none() {
                    return Err(unknown_target(registry, &t));
                }
                t
            }
            None => {
                // Every target's backups, on the blocking pool: which hold the run's.
                let specs = registry.specs();
                let w = which.clone();
                let found = tokio::task::spawn_blocking(move || {
                    let mut all = Vec::new();
                    let mut holders = Vec::new();
                    for spec in &specs {
                        let Ok(entries) = backups::all(spec) else {
                            continue;
                        };
                        if !backups::pick(&entries, &w).is_empty() {
                            holders.push(spec.name.clone());
                        }
                        all.extend(entries);
                    }
                    (holders, backups::no_match(&w, &all, None))
                })
                .await;
                let Ok((holders, none)) = found else {
                    return Err(Failure::new(code::INTERNAL, "listing the backups failed"));
                };
                match holders.as_slice() {
                    [one] => one.clone(),
                    [] => return Err(Failure::new(code::NOT_FOUND, none)),
                    many => {
                        return Err(Failure::new(
                            code::BAD_REQUEST,
                            format!(
                                "{} has backups in several sync targets ({}): say which with \
                                 --target",
                                which.describe(),
                                many.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        let Some(actor) = registry.actor(&name) else {
            return Err(unknown_target(registry, &name));
        };
        match actor
            .call(
                |r| SyncTargetMessage::RestoreSet(which.clone(), r),
                Some(RUN_WAIT),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Ok(res))) => Ok(res),
            Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(e.context(&name).into()),
            _ => Err(Failure::new(
                code::NOT_RUNNING,
                format!("sync target `{name}` stopped before answering"),
            )),
        }
    }
}

/// The error for a target that is not running, with the ones that are.
fn unknown_target(registry: &metasystem_actors::sync::SyncTargets, t: &str) -> Failure {
    let names = registry.names();
    let hint = match crate::config::reader::suggest(
        t,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    ) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => String::new(),
    };
    Failure::new(
        code::NOT_FOUND,
        format!(
            "no sync target `{t}` is running (targets: {}){hint}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ),
    )
}
