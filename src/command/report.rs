//! `ferry report`: renders the stored rounds of a plan's tasks again, as the summaries
//! a run writes or through a template of the user's.

use std::path::{Path, PathBuf};

use super::{Error, chosen_tasks};
use crate::exit::Exit;
use crate::plan::Plan;

/// What `ferry report --format` renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
    Csv,
    Json,
}

/// `ferry report`: renders stored rounds again.
pub fn run(
    path: &Path,
    task: Option<&str>,
    round: Option<u32>,
    format: Option<ReportFormat>,
    template: Option<&Path>,
    out: Option<PathBuf>,
) -> Result<Exit, Error> {
    use crate::report::summary::{Format, PlanSummary, Templates};
    let plan = Plan::load(path)?;
    let tasks: Vec<&str> = chosen_tasks(&plan, path, task)?
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    // Tasks in plan order, as the summaries list them.
    let ordered: Vec<&str> = plan
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| tasks.contains(n))
        .collect();
    let summary = PlanSummary::gather(&plan, &ordered, round).map_err(Error::Report)?;
    let mut templates = match Templates::for_plan(plan.templates.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            return Err(Error::Usage(e.to_string()));
        }
    };
    let chosen = match (format, template) {
        (Some(ReportFormat::Csv | ReportFormat::Json), Some(_)) => {
            return Err(Error::Usage(format!(
                "--template renders the md or html summary, not {format:?}"
            )));
        }
        (Some(f), _) => f,
        (None, Some(t)) if t.extension().is_some_and(|e| e == "html" || e == "htm") => {
            ReportFormat::Html
        }
        (None, Some(_)) => ReportFormat::Md,
        (None, None) => ReportFormat::Json,
    };
    if let Some(file) = template {
        let target = if chosen == ReportFormat::Html {
            Format::Html
        } else {
            Format::Markdown
        };
        if let Err(e) = templates.replace(target, file) {
            return Err(Error::Usage(e.to_string()));
        }
    }
    let (formats, json, csv) = match (format, template) {
        (None, None) => (vec![Format::Markdown, Format::Html], true, true),
        (_, _) => match chosen {
            ReportFormat::Md => (vec![Format::Markdown], false, false),
            ReportFormat::Html => (vec![Format::Html], false, false),
            ReportFormat::Json => (Vec::new(), true, false),
            ReportFormat::Csv => (Vec::new(), false, true),
        },
    };
    let folder = out.unwrap_or_else(|| {
        crate::state::layout::PlanLayout::of(&plan)
            .folder()
            .to_path_buf()
    });
    let mut written =
        match crate::report::summary::write(&folder, &summary, &templates, &formats, json) {
            Ok(w) => w,
            Err(crate::report::summary::SummaryError::Template(e)) => {
                return Err(Error::Usage(e.to_string()));
            }
            Err(crate::report::summary::SummaryError::Write(e)) => {
                return Err(Error::Report(std::io::Error::other(e.to_string())));
            }
        };
    if csv {
        written.push(
            crate::report::summary::write_csv(&folder, &summary)
                .map_err(|e| Error::Report(std::io::Error::other(e.to_string())))?,
        );
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}
