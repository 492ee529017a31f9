//! The job graph: a plan's tasks in dependency order.
//!
//! `JobGraph::compile` orders a validated plan's tasks so that each comes after the
//! tasks it depends on, and groups them in levels: the tasks of one level depend only
//! on earlier levels and may run concurrently. (`ferry graph` and `ferry validate` call
//! a level a "stage", as people who draw job graphs do; in the code, "stage" is one of
//! scan, package, upload and import.) Plan order breaks ties, so the same
//! plan always compiles to the same graph. Cycles are found during validation
//! (`find_cycles`) and reported as the whole loop.

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::{Plan, Task};

/// Tasks in an order that respects their dependencies.
#[derive(Debug)]
pub struct JobGraph<'p> {
    pub plan: &'p Plan,
    /// Indexes into `plan.tasks`, grouped by level, in plan order within a level.
    pub levels: Vec<Vec<usize>>,
}

impl<'p> JobGraph<'p> {
    /// Orders a validated plan (which has no cycles and no missing dependencies).
    pub fn compile(plan: &'p Plan) -> JobGraph<'p> {
        let index = |name: &str| plan.tasks.iter().position(|t| t.name == name);
        let deps: Vec<Vec<usize>> = plan
            .tasks
            .iter()
            .map(|t| t.depends_on.iter().filter_map(|d| index(d)).collect())
            .collect();
        let mut stage_of: Vec<Option<usize>> = vec![None; plan.tasks.len()];
        let mut stages: Vec<Vec<usize>> = Vec::new();
        while stage_of.iter().any(Option::is_none) {
            let ready: Vec<usize> = (0..plan.tasks.len())
                .filter(|&i| stage_of[i].is_none())
                .filter(|&i| {
                    deps[i]
                        .iter()
                        .all(|&d| stage_of[d].is_some_and(|s| s < stages.len()))
                })
                .collect();
            // Validation rejects cycles; should one slip through, stop rather than spin.
            if ready.is_empty() {
                break;
            }
            for &i in &ready {
                stage_of[i] = Some(stages.len());
            }
            stages.push(ready);
        }
        JobGraph {
            plan,
            levels: stages,
        }
    }

    /// The tasks in execution order.
    pub fn order(&self) -> impl Iterator<Item = &'p Task> + '_ {
        self.levels.iter().flatten().map(|&i| &self.plan.tasks[i])
    }

    /// A listing for people: one line per task, by stage.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let tasks = self.plan.tasks.len();
        let _ = writeln!(
            out,
            "plan {}: {tasks} task{} in {} stage{}",
            self.plan.name,
            plural(tasks),
            self.levels.len(),
            plural(self.levels.len())
        );
        for (n, stage) in self.levels.iter().enumerate() {
            let _ = writeln!(out, "stage {}:", n + 1);
            for &i in stage {
                let task = &self.plan.tasks[i];
                let _ = writeln!(out, "  {}", task.name);
                let _ = writeln!(out, "    from   {}", task.source.display());
                let _ = writeln!(out, "    to     {}", task.destination.display());
                if !task.depends_on.is_empty() {
                    let _ = writeln!(out, "    after  {}", task.depends_on.join(", "));
                }
                let s = &task.settings;
                let _ = writeln!(
                    out,
                    "    mode   {}, rules {}, conflicts {}, deletions {}",
                    s.mode, s.rules, s.conflicts, s.deletions
                );
            }
        }
        out
    }

    /// Graphviz: one node per task, an edge from each dependency to its dependant.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", dot_id(&self.plan.name));
        let _ = writeln!(out, "  rankdir=LR;");
        let _ = writeln!(out, "  node [shape=box, fontname=\"Helvetica\"];");
        for task in self.order() {
            let label = format!(
                "{}\\n{} →\\n{}",
                dot_escape(&task.name),
                dot_escape(&task.source.display().to_string()),
                dot_escape(&task.destination.display().to_string())
            );
            let _ = writeln!(out, "  {} [label=\"{label}\"];", dot_id(&task.name));
        }
        for task in self.order() {
            for dep in &task.depends_on {
                let _ = writeln!(out, "  {} -> {};", dot_id(dep), dot_id(&task.name));
            }
        }
        out.push_str("}\n");
        out
    }

    /// JSON for machines: the plan's tasks with stage, dependencies and effective
    /// settings.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct GraphJson<'a> {
            plan: &'a str,
            stages: usize,
            tasks: Vec<TaskJson<'a>>,
        }
        #[derive(Serialize)]
        struct TaskJson<'a> {
            stage: usize,
            #[serde(flatten)]
            task: &'a Task,
        }
        let tasks = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(n, stage)| {
                stage.iter().map(move |&i| TaskJson {
                    stage: n + 1,
                    task: &self.plan.tasks[i],
                })
            })
            .collect();
        let json = GraphJson {
            plan: &self.plan.name,
            stages: self.levels.len(),
            tasks,
        };
        let mut text = serde_json::to_string_pretty(&json).expect("the graph serialises");
        text.push('\n');
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Task names are `[A-Za-z0-9._-]`; quoted, they are always valid Graphviz IDs.
fn dot_id(name: &str) -> String {
    format!("\"{}\"", dot_escape(name))
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every dependency cycle among tasks, each once, as the list of tasks in the loop
/// starting with the earliest in plan order. `edges[i]` lists what task `i` depends on.
pub(crate) fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        i: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        marks[i] = Mark::OnPath;
        path.push(i);
        for &next in &edges[i] {
            match marks[next] {
                Mark::New => visit(next, edges, marks, path, out),
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                    cycle.rotate_left(lowest);
                    if !out.contains(&cycle) {
                        out.push(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut out = Vec::new();
    for i in 0..edges.len() {
        if marks[i] == Mark::New {
            visit(i, edges, &mut marks, &mut Vec::new(), &mut out);
        }
    }
    out
}

/// Whether task `from` depends, directly or through others, on task `to`.
pub(crate) fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        for &next in &edges[i] {
            if next == to {
                return true;
            }
            if !seen[next] {
                seen[next] = true;
                stack.push(next);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_three_task_cycle_once() {
        // a -> b -> c -> a, d -> a
        let edges = vec![vec![1], vec![2], vec![0], vec![0]];
        assert_eq!(find_cycles(&edges), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn finds_self_loops_and_separate_cycles() {
        let edges = vec![vec![0], vec![2], vec![1], vec![]];
        assert_eq!(find_cycles(&edges), vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        let edges = vec![vec![], vec![0], vec![0, 1], vec![2]];
        assert!(find_cycles(&edges).is_empty());
        assert!(reaches(&edges, 3, 0));
        assert!(!reaches(&edges, 0, 3));
    }
}
