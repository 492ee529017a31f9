//! `ferry validate`: loads each plan and compiles its job graph; every problem of every
//! plan is reported, located in its file.

use std::path::PathBuf;

use crate::exit::Exit;
use crate::plan::Plan;
use crate::plan::graph::JobGraph;

/// `ferry validate PLAN...`: exit 2 when any plan is refused.
pub fn run(plans: &[PathBuf]) -> Exit {
    let mut exit = Exit::Success;
    for path in plans {
        match Plan::load(path) {
            Ok(plan) => {
                let graph = JobGraph::compile(&plan);
                let (tasks, stages) = (plan.tasks.len(), graph.levels.len());
                eprintln!(
                    "{}: ok ({tasks} task{}, {stages} stage{})",
                    path.display(),
                    if tasks == 1 { "" } else { "s" },
                    if stages == 1 { "" } else { "s" }
                );
            }
            Err(error) => {
                eprintln!("{error}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}
