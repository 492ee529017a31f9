//! `ferry status`: where every task of a plan stands, from its session alone (nothing is
//! scanned or locked).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{Error, print};
use crate::exit::Exit;
use crate::plan::Plan;
use crate::state::{self, Session, SessionError, Status, task_folder};

/// `ferry status PLAN [--json]`.
pub fn run(path: &Path, json: bool) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let status = status(&plan).map_err(crate::run::RunError::from)?;
    if json {
        let mut text = serde_json::to_string_pretty(&status).unwrap_or_default();
        text.push('\n');
        print(&text)
    } else {
        print(&status_text(&status))
    }
}

/// One task's line of `ferry status`.
#[derive(Debug, Serialize)]
pub struct TaskStatus {
    pub task: String,
    /// `K/N` for the state of one shard (`run --shard K/N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub status: Status,
    pub round: u32,
    pub progress: state::Progress,
    pub updated_at: Option<String>,
    pub last_result: Option<state::LastResult>,
}

/// What `ferry status --json` prints.
#[derive(Debug, Serialize)]
pub struct PlanStatus {
    /// The version of this shape.
    pub version: u32,
    pub plan: String,
    pub tasks: Vec<TaskStatus>,
}

/// The status of every task of the plan, from the sessions alone (nothing is scanned).
pub fn status(plan: &Plan) -> Result<PlanStatus, SessionError> {
    let mut tasks = Vec::new();
    for task in &plan.tasks {
        let shards: Vec<_> = state::shards::states(plan, &task.name)
            .into_iter()
            .filter(|s| s.shard.is_some())
            .collect();
        let session = Session::load(&task_folder(plan, &task.name), &task.name)?;
        if session.is_some() || shards.is_empty() {
            tasks.push(task_status(&task.name, None, session));
        }
        for state in shards {
            let session = Session::load(state.layout.folder(), &task.name)?;
            let label = state.shard.map(|s| format!("{}/{}", s.index, s.count));
            tasks.push(task_status(&task.name, label, session));
        }
    }
    Ok(PlanStatus {
        version: 1,
        plan: plan.name.clone(),
        tasks,
    })
}

fn task_status(task: &str, shard: Option<String>, session: Option<Session>) -> TaskStatus {
    match session {
        Some(s) => TaskStatus {
            task: task.to_string(),
            shard,
            status: s.status,
            round: s.round,
            progress: s.progress,
            updated_at: Some(s.updated_at),
            last_result: s.last_result,
        },
        None => TaskStatus {
            task: task.to_string(),
            shard,
            status: Status::Queued,
            round: 0,
            progress: state::Progress::default(),
            updated_at: None,
            last_result: None,
        },
    }
}

/// `ferry status` for a person.
pub fn status_text(status: &PlanStatus) -> String {
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    let mut out = format!("plan {}\n", status.plan);
    let name = |t: &TaskStatus| match &t.shard {
        Some(shard) => format!("{} [{shard}]", t.task),
        None => t.task.clone(),
    };
    let width = status
        .tasks
        .iter()
        .map(|t| name(t).len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<9}  {:>5}  {:<34}  LAST RESULT",
        "TASK", "STATUS", "ROUND", "PROGRESS"
    );
    for t in &status.tasks {
        let p = &t.progress;
        let progress = if t.round == 0 {
            "-".to_string()
        } else {
            format!(
                "{}/{} items, {}/{}",
                p.items_done,
                p.items,
                size(p.bytes_done),
                size(p.bytes)
            )
        };
        let last = match &t.last_result {
            Some(r) => format!(
                "R{} ended {}: {} imported ({}), {} unchanged, {} failed",
                r.round,
                r.ended_at,
                r.imported,
                size(r.bytes),
                r.unchanged,
                r.failed
            ),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<9}  {:>5}  {:<34}  {}",
            name(t),
            t.status.as_str(),
            t.round,
            progress,
            last
        );
    }
    out
}
