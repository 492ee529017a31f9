//! `ferry gc`: deletes what a plan's state no longer needs (see [`crate::run::gc`]):
//! keys that expired or whose staged data is older than `staging.retention`, with that
//! data, and the journals and item lists of completed rounds beyond
//! `state.keep_rounds`; and containers that no key file of the plan opens any more,
//! last written longer ago than the retention. Without `--yes` it only lists them. The
//! destination is never touched.

use std::path::Path;

use super::{Error, chosen_tasks};
use crate::exit::Exit;
use crate::plan::Plan;
use crate::run::gc;

/// Lists, or with `yes` deletes, what the chosen tasks' state no longer needs.
pub fn run(path: &Path, only: Option<&str>, yes: bool) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let tasks = chosen_tasks(&plan, path, only)?;
    // Not while a run of the plan is under way: it may be using what looks old here.
    let _lock = crate::state::lock::PlanLock::take(
        crate::state::layout::PlanLayout::of(&plan).folder(),
        &plan.name,
    )?;
    let now = crate::clock::now().as_second();
    let mut garbage = Vec::new();
    for task in &tasks {
        garbage.extend(gc::find(&plan, task, now, true));
    }
    // Staged data whose key file is gone is found by listing the staging, which needs
    // its credential; without it, gc says so and does the rest.
    let Some(first) = tasks.first() else {
        return Ok(Exit::Success);
    };
    let staging = crate::staging::open(&plan.staging, first.settings.retries);
    let mut exit = Exit::Success;
    match &staging {
        Ok(staging) => match gc::orphans(&plan, &tasks, staging.as_ref(), now) {
            Ok(orphans) => garbage.extend(orphans),
            Err(e) => eprintln!(
                "gc: cannot list the containers of {} (staged data whose key is gone is not looked for): {e}",
                staging.describe()
            ),
        },
        Err(e) => eprintln!(
            "gc: staging cannot be opened (staged data whose key is gone is not looked for): {e}"
        ),
    }
    let any = !garbage.is_empty();
    if !yes {
        for g in &garbage {
            eprintln!("would delete {}", g.describe());
        }
    } else if any {
        let staging = staging.map_err(|source| crate::run::RunError::StagingUnwritable {
            staging: plan.staging.kind.as_str().to_string(),
            source,
        })?;
        for g in &garbage {
            match gc::collect(staging.as_ref(), g) {
                Ok(()) => eprintln!("deleted {}", g.describe()),
                Err(e) => {
                    eprintln!("could not delete {}: {e}", g.describe());
                    exit = Exit::Partial;
                }
            }
        }
    }
    if !any {
        eprintln!("gc: nothing to delete");
    } else if !yes {
        eprintln!("gc: nothing was deleted; run again with --yes to delete the above");
    }
    Ok(exit)
}
