//! `ferry scan` and `ferry run`: every chosen task of a plan, in dependency order, after
//! every root is checked, holding the plan's lock. Tasks of one level of the job graph
//! run at once; one reporter owns the terminal.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Error, chosen_tasks};
use crate::exit::Exit;
use crate::plan::graph::JobGraph;
use crate::plan::{self, Plan};
use crate::report;

/// After a run: the plan's summaries, from every task's last round. False (and said)
/// when they could not be written: the run then exits 5, since a summary that says
/// what an earlier run did would mislead.
fn plan_summaries(plan: &Plan) -> bool {
    use report::summary::{Format, PlanSummary, Templates};
    let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
    let folder = crate::state::layout::PlanLayout::of(plan)
        .folder()
        .to_path_buf();
    let written = PlanSummary::gather(plan, &names, None)
        .map_err(|e| e.to_string())
        .and_then(|summary| {
            let templates =
                Templates::for_plan(plan.templates.as_deref()).map_err(|e| e.to_string())?;
            report::summary::write(
                &folder,
                &summary,
                &templates,
                &[Format::Markdown, Format::Html],
                true,
            )
            .map_err(|e| e.to_string())
        });
    match written {
        Ok(_) => {
            eprintln!("summary: {}", folder.join("Summary.html").display());
            true
        }
        Err(e) => {
            eprintln!("error: the plan's summary was not written: {e}");
            false
        }
    }
}

/// The flag the first SIGINT/SIGTERM sets; a second one ends the process at once with
/// exit 3 (still safe: every durable step is journalled after it happened).
fn stop_on_signals() -> &'static AtomicBool {
    use std::sync::{Arc, OnceLock};
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so that it sees the flag as it was before this signal.
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                Exit::Interrupted.code().into(),
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    })
}

/// How `ferry scan` and `ferry run` were asked to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// `--task`.
    pub only: Option<&'a str>,
    pub workers: Option<u16>,
    /// The stages of `ferry run`; `None` for `ferry scan`.
    pub run: Option<crate::run::Stages>,
    /// `--ticket`: written by a staging run, read by an importing one.
    pub ticket: Option<&'a Path>,
    /// `--max-duration`: the run pauses (exit 3) this long after it starts.
    pub max_duration: Option<std::time::Duration>,
    /// `--metrics-file`: where the Prometheus text file goes.
    pub metrics: Option<&'a Path>,
    pub restart: bool,
    pub force: bool,
    /// `--shard K/N`.
    pub shard: Option<plan::shard::Shard>,
}

/// Scans (`run` is `None`) or runs the chosen tasks of a plan in dependency order,
/// after checking every task's roots, holding the plan's lock.
pub fn run(path: &Path, options: &Options<'_>) -> Result<Exit, Error> {
    let span = tracing::info_span!("run", plan = tracing::field::Empty);
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = run_plan(path, options);
    let duration = started.elapsed().as_secs_f64();
    match &result {
        Ok(exit) => tracing::info!(event = "run_end", exit = exit.code(), duration),
        Err(e) => {
            tracing::error!(event = "run_end", exit = e.exit_code().code(), duration, message = %e);
        }
    }
    result
}

fn run_plan(path: &Path, options: &Options<'_>) -> Result<Exit, Error> {
    let Options {
        only,
        workers,
        run,
        restart,
        force,
        ..
    } = *options;
    let mut plan = Plan::load(path)?;
    plan.shard = options.shard;
    tracing::Span::current().record("plan", plan.name.as_str());
    tracing::info!(
        event = "run_start",
        command = if run.is_some() { "run" } else { "scan" },
        stages = run.map_or("scan", stages_named),
    );
    let mut tasks = chosen_tasks(&plan, path, only)?;
    // The run window, and `--max-duration`: when this run must pause.
    let deadline = match deadline(&plan, options) {
        Ok(deadline) => deadline,
        Err(closed) => {
            tracing::info!(event = "outside_window", message = %closed);
            eprintln!("{closed}");
            return Ok(Exit::Success);
        }
    };
    check_direct(&plan, options)?;
    let ticket = read_ticket(&plan, options)?;
    if run.is_some()
        && let Some(bandwidth) = &plan.bandwidth
    {
        crate::staging::throttle::install(bandwidth);
    }
    // Held for the whole run: no run of the same tasks split another way starts meanwhile.
    let _splits = check_tasks(&plan, &mut tasks, ticket.as_ref(), options)?;
    // One run of a plan at a time; the checks above only read.
    let _lock = crate::state::lock::PlanLock::take(
        crate::state::layout::PlanLayout::of(&plan).folder(),
        &plan.name,
    )?;
    let stop = stop_on_signals();
    let ended = deadline.map(|(at, why)| pause_at(at, why, stop));
    // Written every few seconds, and once more however the run ends.
    let _metrics = options.metrics.map(|path| {
        let names = tasks.iter().map(|t| t.name.clone()).collect();
        super::metrics::Metrics::start(&plan, names, path)
    });
    let memory = crate::package::reads::Memory::new(plan.resources.memory);
    let one = OneTask {
        plan: &plan,
        run,
        control: crate::run::Control {
            restart,
            stop,
            force,
            ticket: None,
            hand_over: run.is_some_and(|s| s.send && !s.import) && options.ticket.is_some(),
            memory: &memory,
        },
        walk_threads: workers.map(usize::from),
        workers: workers.map(usize::from),
        reporter: crate::run::progress::Reporter::start(plan.name.clone()),
        interrupted: AtomicBool::new(false),
        ticket: ticket.as_ref(),
        handed: std::sync::Mutex::new(Vec::new()),
    };
    let mut exit = Exit::Success;
    for level in levels(&plan, &tasks) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut failed = None;
        for result in one.level(&level) {
            match result {
                Ok(true) => exit = Exit::Partial,
                Ok(false) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // A task that could not run stops the tasks that depend on it; the summaries
        // say where every task stands.
        if let Some(e) = failed {
            one.reporter.finish();
            if run.is_some() {
                plan_summaries(&plan);
            }
            return Err(e);
        }
    }
    one.reporter.finish();
    if run.is_some() && !plan_summaries(&plan) {
        exit = Exit::Fatal;
    }
    let handed = one.handed.into_inner().unwrap_or_else(|e| e.into_inner());
    after_tasks(&plan, &tasks, &handed, options)?;
    if one.interrupted.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
        match ended.as_ref().and_then(|e| e.get()) {
            Some(why) => {
                tracing::info!(event = "pause", message = %format!("paused {why}"));
                eprintln!("paused {why}: the next run resumes");
            }
            None => {
                tracing::info!(event = "pause", message = "interrupted by a signal");
                eprintln!("interrupted: run the same command again to resume");
            }
        }
        return Ok(Exit::Interrupted);
    }
    Ok(exit)
}

/// The chosen tasks by level of the job graph, in order. Tasks of one level depend on
/// nothing in it: they run at once (a scan runs them one after another, each walk
/// being parallel already).
fn levels<'p>(plan: &'p Plan, tasks: &[&plan::Task]) -> Vec<Vec<&'p plan::Task>> {
    JobGraph::compile(plan)
        .levels
        .iter()
        .map(|level| {
            level
                .iter()
                .map(|&i| &plan.tasks[i])
                .filter(|t| tasks.iter().any(|c| c.name == t.name))
                .collect()
        })
        .filter(|level: &Vec<&plan::Task>| !level.is_empty())
        .collect()
}

/// What running one task needs. One reporter owns the terminal for the whole run; each
/// task's summary goes through it.
struct OneTask<'a> {
    plan: &'a Plan,
    ticket: Option<&'a crate::run::Ticket>,
    /// What the tasks of a staging run handed over, for the ticket.
    handed: std::sync::Mutex<Vec<crate::run::HandOver>>,
    run: Option<crate::run::Stages>,
    control: crate::run::Control<'a>,
    walk_threads: Option<usize>,
    workers: Option<usize>,
    reporter: crate::run::progress::Reporter,
    interrupted: AtomicBool,
}

impl OneTask<'_> {
    /// Runs the tasks of one level, at once when there are several to run.
    fn level(&self, level: &[&plan::Task]) -> Vec<Result<bool, Error>> {
        if self.run.is_some() && level.len() > 1 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = level
                    .iter()
                    .map(|task| scope.spawn(|| self.task(task)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        } else {
            level.iter().map(|task| self.task(task)).collect()
        }
    }

    /// Scans or runs one task; true when it is only partly done (failed items, items
    /// kept back, or a source that is not ready). Its log events carry the plan, the
    /// task and (once known) the round.
    fn task(&self, task: &plan::Task) -> Result<bool, Error> {
        let span = tracing::info_span!(
            "task",
            plan = %self.plan.name,
            task = %task.name,
            round = tracing::field::Empty
        );
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let result = self.run_task(task);
        let duration = started.elapsed().as_secs_f64();
        if let Err(e) = &result {
            tracing::error!(event = "task_end", result = "error", duration, message = %e);
        }
        result.map(|(partial, done)| {
            let (items, bytes, failed) = done.as_ref().map_or((0, 0, 0), |d| d.counters.mark());
            // Items the round's scan kept back (reported as failures when it found them).
            let kept_back = done.as_ref().map_or(0, |d| d.not_migrated);
            let result = match done {
                Some(done) if done.interrupted => "paused",
                Some(_) if self.run.is_some_and(|s| !s.import) => "staged",
                _ if partial => "partial",
                _ => "done",
            };
            if partial {
                tracing::warn!(
                    event = "task_end",
                    result,
                    items,
                    bytes,
                    failed,
                    kept_back,
                    duration
                );
            } else {
                tracing::info!(
                    event = "task_end",
                    result,
                    items,
                    bytes,
                    failed,
                    kept_back,
                    duration
                );
            }
            partial
        })
    }

    /// [`task`](Self::task), with what the run did (`None` for a scan).
    fn run_task(&self, task: &plan::Task) -> Result<(bool, Option<crate::run::TaskRun>), Error> {
        let migrate = task.settings.mode == plan::raw::Mode::Migrate;
        let stages = match self.run {
            Some(stages) if migrate => stages,
            // A scan-only task of an import-only run has nothing to do.
            Some(stages) if !stages.send => return Ok((false, None)),
            _ => {
                let round = crate::state::next_round(self.plan, task)
                    .map_err(crate::run::RunError::from)?;
                tracing::Span::current().record("round", round);
                tracing::info!(event = "task_start", stages = "scan");
                let scanned =
                    crate::run::scanning::scan_task(self.plan, task, round, self.walk_threads)?;
                self.reporter.say(scanned.text);
                return Ok((scanned.readiness == report::scan::Readiness::NotReady, None));
            }
        };
        let mut done = crate::run::run_task(
            self.plan,
            task,
            stages,
            self.workers,
            self.walk_threads,
            &self.reporter,
            crate::run::Control {
                ticket: self.ticket.and_then(|t| t.task(&task.name)),
                ..self.control
            },
        )?;
        if done.interrupted {
            self.interrupted.store(true, Ordering::Relaxed);
        }
        // Items the round's scan kept back count in every run of the round, also one
        // that resumed it or only imported it.
        let mut partial = done.any_failure() || done.not_migrated > 0;
        let mut text = String::new();
        if let Some(scanned) = &done.scan {
            text.push_str(&scanned.text);
            partial |= scanned.readiness == report::scan::Readiness::NotReady;
        }
        text.push_str(&crate::run::summary(task, &done));
        self.reporter.say(text);
        tracing::Span::current().record("round", done.round);
        if let Some(handed) = done.for_ticket.take() {
            self.handed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handed);
        }
        Ok((partial, Some(done)))
    }
}

/// The stages of a run, as the log names them.
fn stages_named(stages: crate::run::Stages) -> &'static str {
    match (stages.send, stages.import) {
        (true, true) => "all",
        (true, false) => "scan,package,upload",
        _ => "import",
    }
}

/// Direct mode copies each file from the source to the destination in one step: it has
/// no stages to split, and nothing staged for a ticket to carry.
fn check_direct(plan: &Plan, options: &Options<'_>) -> Result<(), Error> {
    if plan.staging.kind != plan::StagingKind::None {
        return Ok(());
    }
    let split = options.run.is_some_and(|s| !(s.send && s.import));
    if split || options.ticket.is_some() {
        return Err(Error::Usage(
            "this plan stages nothing (`staging: {kind: none}`): each file goes from the source straight to the destination, so `--stages` and `--ticket` do not apply; run every stage at once, or stage with `kind: local`, `azure` or `s3`".into(),
        ));
    }
    Ok(())
}

/// The ticket an importing run was given, checked; `--ticket` elsewhere is only where
/// a staging run writes one.
fn read_ticket(plan: &Plan, options: &Options<'_>) -> Result<Option<crate::run::Ticket>, Error> {
    let Some(path) = options.ticket else {
        return Ok(None);
    };
    match options.run {
        Some(stages) if stages.send && stages.import => Err(Error::Usage(
            "--ticket goes with `--stages scan,package,upload` (which writes it) or `--stages import` (which reads it)".into(),
        )),
        Some(stages) if !stages.send => {
            let now = jiff::Timestamp::now().as_second();
            let ticket = crate::run::Ticket::read(path, &plan.name, now)
                .map_err(crate::run::RunError::from)?;
            Ok(Some(ticket))
        }
        _ => Ok(None),
    }
}

/// When a run must pause, and why: the end of the plan's run window, or
/// `--max-duration` from now, whichever comes first. `Err` with the message to show when
/// the run is outside every window (it then does nothing).
fn deadline(
    plan: &Plan,
    options: &Options<'_>,
) -> Result<Option<(jiff::Timestamp, String)>, String> {
    if options.run.is_none() {
        return Ok(None);
    }
    let now = crate::clock::now();
    let mut deadline = None;
    if let Some(schedule) = &plan.schedule {
        match schedule.at(now) {
            plan::schedule::Now::Closed { opens } => {
                return Err(format!(
                    "outside the run window ({}): nothing was done; the next window opens at {}",
                    schedule.text,
                    opens.strftime("%Y-%m-%d %H:%M %Z (%a)")
                ));
            }
            plan::schedule::Now::Open { closes } => {
                deadline = Some((
                    closes.timestamp(),
                    format!(
                        "at the end of the run window ({}, {})",
                        schedule.text,
                        closes.strftime("%Y-%m-%d %H:%M %Z")
                    ),
                ));
            }
        }
    }
    if let Some(max) = options.max_duration {
        let at = now
            .checked_add(jiff::SignedDuration::try_from(max).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX);
        if deadline.as_ref().is_none_or(|(d, _)| at < *d) {
            deadline = Some((at, "after --max-duration".to_string()));
        }
    }
    Ok(deadline)
}

/// Sets `stop` at `at` (as a first Ctrl-C would: no new work, what is in flight
/// finishes, the round stays open); the returned cell says why, once it has.
fn pause_at(
    at: jiff::Timestamp,
    why: String,
    stop: &'static AtomicBool,
) -> std::sync::Arc<std::sync::OnceLock<String>> {
    let ended = std::sync::Arc::new(std::sync::OnceLock::new());
    let cell = std::sync::Arc::clone(&ended);
    std::thread::spawn(move || {
        loop {
            let left = at.duration_since(crate::clock::now());
            if left <= jiff::SignedDuration::ZERO {
                let _ = cell.set(why);
                stop.store(true, Ordering::SeqCst);
                return;
            }
            let left = std::time::Duration::try_from(left).unwrap_or_default();
            std::thread::sleep(crate::clock::real(left).min(std::time::Duration::from_millis(200)));
        }
    });
    ended
}

/// Narrows the tasks to a ticket's, and checks every task's roots and staging before
/// any starts: a broken mount found late would leave half a plan done.
fn check_tasks(
    plan: &Plan,
    tasks: &mut Vec<&plan::Task>,
    ticket: Option<&crate::run::Ticket>,
    options: &Options<'_>,
) -> Result<Vec<crate::state::shards::SplitGuard>, Error> {
    let (only, run) = (options.only, options.run);
    let mut splits = Vec::new();
    if let Some(ticket) = ticket {
        if let Some(only) = only
            && ticket.task(only).is_none()
        {
            return Err(crate::run::RunError::from(crate::run::TicketError::NoTask {
                path: options.ticket.unwrap_or(Path::new("")).to_path_buf(),
                task: only.to_string(),
            })
            .into());
        }
        // The ticket says which tasks were staged: only they are imported.
        tasks.retain(|t| ticket.task(&t.name).is_some());
    }
    if plan.shard.is_some() && (ticket.is_some() || options.ticket.is_some()) {
        return Err(Error::Usage(
            "--shard and --ticket do not go together: each shard keeps its own state where its working folder is; run the shards' stages with a shared working folder instead".to_string(),
        ));
    }
    for task in tasks.iter() {
        // Checked before the split's lock is taken (a refused run creates nothing),
        // and again once it is held (a split that started meanwhile).
        for locked in [false, true] {
            if locked && run.is_some() {
                splits.push(crate::state::shards::hold_split(plan, &task.name)?);
            }
            let elsewhere = crate::state::shards::unfinished_elsewhere(plan, &task.name);
            if elsewhere.is_empty() {
                continue;
            }
            return Err(Error::Usage(format!(
                "task `{}` has a round under another split that is not finished: {}. Finish it with the same split (or `ferry delete PLAN --task {}`) before running {}",
                task.name,
                elsewhere.join("; "),
                task.name,
                plan.shard.map_or("unsharded".to_string(), |s| format!(
                    "as shard {} of {}",
                    s.index, s.count
                )),
            )));
        }
        match run {
            Some(stages) if !stages.send => crate::run::check_import_access(plan, task)?,
            _ => crate::run::check_access(plan, task)?,
        }
        // A ticket's container is checked by using it: this side may hold no account
        // key (Azure), or keys that can only get and put (S3).
        let ticketed = ticket.is_some_and(|t| t.task(&task.name).is_some());
        if !ticketed && run.is_some_and(|s| !s.send) {
            crate::run::check_no_ticket(plan, task)?;
        }
        if !ticketed {
            crate::run::check_staging(plan, task)?;
        }
    }
    Ok(splits)
}

/// What follows the tasks of a run: expired keys go with their data (the safe part of
/// `ferry gc`), and a staging run asked for a ticket writes it.
fn after_tasks(
    plan: &Plan,
    tasks: &[&plan::Task],
    handed: &[crate::run::HandOver],
    options: &Options<'_>,
) -> Result<(), Error> {
    if options.run.is_some() {
        // Keys are dated on the system's clock, as they were made.
        let now = jiff::Timestamp::now().as_second();
        for task in tasks {
            for line in crate::run::gc::expired_keys(plan, task, now) {
                eprintln!("gc: {line}");
            }
        }
    }
    if let Some(path) = options.ticket
        && !handed.is_empty()
    {
        let handed: Vec<&crate::run::HandOver> = handed.iter().collect();
        crate::run::write_ticket(plan, &handed, path)?;
        eprintln!(
            "ticket: {} (mode 0600; it holds the round's key until it expires): import at another site with `ferry run {} --stages import --ticket FILE`",
            crate::shown::escape_path(path),
            crate::shown::escape_path(&plan.file)
        );
    }
    Ok(())
}
