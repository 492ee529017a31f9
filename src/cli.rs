//! The command line: what each command takes, and its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::command::GraphFormat;
pub use crate::command::report::ReportFormat;

/// The exit codes under every `--help`, from the one table in `exit.rs`.
fn after_help() -> String {
    let mut out = String::from("Exit codes:\n");
    for exit in crate::exit::Exit::ALL {
        out.push_str(&format!("  {}  {}\n", exit.code(), exit.meaning()));
    }
    out.push_str("\nDocs: README.md; the plan schema: `ferry schema`.");
    out
}

/// Migrate large file shares declaratively, repeatably and safely.
///
/// A YAML plan says which shares go where and how; ferry validates it, compiles it into
/// a job graph and runs it.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, after_help = after_help(), propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Also keep an event log (each task's start and end, failed items, retries,
    /// pauses) as `text` or `json` lines: in --log-file, else on stderr.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::log::Format>,
    /// Append the event log to FILE (text lines unless --log-format json).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check plans against the schema and for meaning, without touching any data.
    ///
    /// Reports every problem of each plan with its file, line, column and key path.
    /// Reads only the plans and the metadata of the folders they name.
    #[command(after_help = "Example:\n  ferry validate plans/*.yaml")]
    Validate {
        /// The plan files to check.
        #[arg(required = true, value_name = "PLAN")]
        plans: Vec<PathBuf>,
    },
    /// Print the plan's JSON schema (as in schemas/plan.schema.json).
    ///
    /// Editors that speak the YAML language server complete plan keys from it.
    #[command(after_help = "Example:\n  ferry schema > plan.schema.json")]
    Schema,
    /// Print the compiled job graph: tasks in dependency order, by stage.
    ///
    /// Tasks of one stage depend only on earlier stages and may run at once.
    #[command(
        after_help = "Examples:\n  ferry graph plans/demo.yaml\n  ferry graph plans/demo.yaml --format dot | dot -Tsvg > graph.svg"
    )]
    Graph {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// `text` for people, `dot` for Graphviz, `json` for machines.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Scan: check access to every task's source, destination and staging, find the
    /// items that would fail, and write the readiness reports. Migrates nothing.
    ///
    /// Exit 0: ready; 1: some items will not migrate (see the reports); 2: plan error;
    /// 5: a source, destination or staging folder cannot be used.
    #[command(
        after_help = "Examples:\n  ferry scan plans/demo.yaml\n  ferry scan plans/demo.yaml --task documents"
    )]
    Scan {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Scan only this task (by default: every task, in dependency order).
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Threads that walk each source (default: one per CPU, plus one; 8 on a
        /// network share, where each stat waits on the server).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
    },
    /// Migrate: scan, package, upload and import every task of the plan.
    ///
    /// Tasks run in dependency order; inside a task every file goes through the stages
    /// in parallel. Tasks with `mode: scan-only` only scan. `--stages` splits the roles
    /// between two machines: one stages and writes a ticket, the other imports with
    /// the ticket (or with the same working folder).
    #[command(
        after_help = "Examples:\n  ferry run plans/demo.yaml\n  ferry run plans/demo.yaml --stages scan,package,upload --ticket round.ticket   # at the source\n  ferry run plans/demo.yaml --stages import --ticket round.ticket                # at the destination"
    )]
    Run {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Run only this task.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Threads that package and import (default: one per CPU; 8 when the source or
        /// the destination is a network share), and that walk each source (one per
        /// CPU plus one; 8 on a network share). Files are read ahead for them by
        /// `resources.reads` readers, within `resources.memory`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
        /// `scan,package,upload` stops once the round is staged; `import` imports a
        /// staged round; default: all of them.
        #[arg(long, value_enum, default_value_t = StageSet::All)]
        stages: StageSet,
        /// The hand-over between two sites that share no folder: written by `--stages
        /// scan,package,upload`, read by `--stages import`. Mode 0600; it holds the
        /// round's key and grant until they expire.
        #[arg(long, value_name = "FILE")]
        ticket: Option<PathBuf>,
        /// Pause (exit 3) this long after starting, as at the end of a run window: what
        /// is in flight finishes, and the next run resumes. As `2h` or `90m`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_duration: Option<std::time::Duration>,
        /// Write the run's progress to FILE in the Prometheus text format (for
        /// node_exporter's textfile collector), every few seconds and at the end.
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
        /// Set aside an unfinished round (needed when the plan changed since it began)
        /// and start a new one; what it already moved is kept.
        #[arg(long)]
        restart: bool,
        /// With `deletions: mirror`, delete at the destination even more than
        /// `max_delete` allows.
        #[arg(long)]
        force: bool,
        /// Do shard K of N (0-based) of every task, with its own state: `2/4`, or
        /// `env:SLURM_ARRAY_TASK_ID/4` (`env:JOB_COMPLETION_INDEX/4` on Kubernetes) to
        /// read K from a variable. N is always given: `ferry finish PLAN --shards N`
        /// merges the shards' reports once every one has completed its round.
        #[arg(long, value_name = "K/N", value_parser = parse_shard)]
        shard: Option<crate::plan::shard::Shard>,
    },
    /// After a run split into shards (`run --shard K/N`): once every shard has
    /// completed its round, set the top folders' modes and times and merge the shards'
    /// reports and the plan's summaries.
    ///
    /// Exit 0: merged, nothing failed; 1: merged, some items failed or were kept back
    /// (see the summary), or a shard is missing, unfinished or at another round (listed;
    /// nothing was changed).
    #[command(
        after_help = "Examples:\n  ferry finish plans/demo.yaml --shards 4\n  sbatch --dependency=afterany:$ARRAY_JOB deploy/slurm/finish.sbatch"
    )]
    Finish {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// How many shards the runs were split into (the N of `--shard K/N`).
        #[arg(long, value_name = "N")]
        shards: u32,
    },
    /// Show each task's status, round, progress and last result (from the saved
    /// sessions; nothing is scanned).
    #[command(
        after_help = "Examples:\n  ferry status plans/demo.yaml\n  ferry status plans/demo.yaml --json | jq '.tasks[].status'"
    )]
    Status {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// One JSON document on stdout (its shape is versioned: `version`).
        #[arg(long)]
        json: bool,
    },
    /// Dry run: what `ferry run` would create, update, skip or refuse as a conflict,
    /// file by file, with totals. Reads the source and the destination's metadata only.
    #[command(
        name = "plan",
        after_help = "Example:\n  ferry plan plans/demo.yaml --task documents"
    )]
    DryRun {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Only this task.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
    },
    /// Render the reports of stored rounds again: `Summary.md`, `Summary.html`,
    /// `summary.json` and `SummaryReport.csv` (one row per task), from each task's
    /// last round (or `--round N`).
    #[command(
        after_help = "Examples:\n  ferry report plans/demo.yaml\n  ferry report plans/demo.yaml --format html --out /tmp/reports\n  ferry report plans/demo.yaml --format md --template my-summary.md"
    )]
    Report {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Only this task.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// This round of each task (default: each task's last).
        #[arg(long, value_name = "N")]
        round: Option<u32>,
        /// Only this format (default: all of them).
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
        /// A minijinja template to render the `md` or `html` summary with.
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
        /// Where to write (default: the plan's folder in the working folder).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Compare the destination with the source by content (BLAKE3 of both sides), or
    /// with the hashes ferry recorded when it put each file there.
    ///
    /// Writes VerifyReport_R<n>.csv (path, result: same, differs, missing, extra or
    /// unreadable, and both hashes) beside the task's last round's reports. Exit 1 when
    /// anything is not the same. Neither tree is written.
    #[command(
        after_help = "Examples:\n  ferry verify plans/demo.yaml\n  ferry verify plans/demo.yaml --sample 0.05          # 5% of the files, the same ones each time\n  ferry verify plans/demo.yaml --against index        # at a site that cannot see the source"
    )]
    Verify {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Only this task.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Compare only this share of the files, from 0 to 1 (chosen by a hash of each
        /// path, so the same files each time).
        #[arg(long, value_name = "FRACTION")]
        sample: Option<f64>,
        /// What the destination is compared with.
        #[arg(long, value_enum, default_value_t = crate::command::verify::Against::Source)]
        against: crate::command::verify::Against,
        /// Files read at once (default: four per CPU).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
    },
    /// Delete what the plan's state no longer needs: keys that expired or whose staged
    /// data is older than `staging.retention` (with that data), and the journals and
    /// item lists of completed rounds beyond `state.keep_rounds`.
    ///
    /// Without --yes it only lists them. Reports, open rounds and the destination are
    /// never touched. (`ferry run` deletes expired keys and their data by itself.)
    #[command(
        after_help = "Examples:\n  ferry gc plans/demo.yaml\n  ferry gc plans/demo.yaml --yes"
    )]
    Gc {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Only this task.
        #[arg(long, value_name = "TASK")]
        task: Option<String>,
        /// Delete (without it, only list).
        #[arg(long)]
        yes: bool,
    },
    /// Make a plan from Migration Manager's bulk task list: the six-column CSV
    /// (FileSharePath, blank, blank, SharePointSite, DocLibrary, DocSubFolder) or the
    /// JSON list of `Tasks` with their `Settings`.
    ///
    /// Each row becomes a task whose destination is the site's path, the library and the
    /// subfolder under --destination-root. Windows sources need --share-map to say where
    /// this machine mounts them. The plan passes `ferry validate` before it is written;
    /// a list with problems (each shown at its row and column) writes nothing.
    #[command(
        name = "plan-from",
        after_help = "Examples:\n  ferry plan-from tasks.csv --destination-root /srv/sharepoint --share-map '\\\\contoso\\shares=/mnt/shares' --out plans/shares.yaml\n  ferry plan-from tasks.json --destination-root /srv/sharepoint > plans/shares.yaml"
    )]
    PlanFrom {
        /// The task list: *.csv or *.json, UTF-8.
        #[arg(value_name = "LIST")]
        list: PathBuf,
        /// The folder under which each site's tree is made: `https://contoso.sharepoint.com/sites/finance`,
        /// library `Documents`, subfolder `2024` → DIR/sites/finance/Documents/2024.
        #[arg(long, value_name = "DIR", required = true)]
        destination_root: String,
        /// Where a Windows share or drive of the list is mounted here, as
        /// '\\server\share=/mnt/share' (repeat for each; the longest prefix wins).
        #[arg(long = "share-map", value_name = "WINDOWS_PREFIX=FOLDER")]
        share_map: Vec<String>,
        /// The plan's name (default: from the list's file name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Write the plan here (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace --out when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Forget a task: its session, journals, index, keys, staged data and reports. The
    /// destination is not touched; the next run starts again at round 1.
    #[command(after_help = "Example:\n  ferry delete plans/demo.yaml --task documents --yes")]
    Delete {
        /// The plan file.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// The task to forget.
        #[arg(long, value_name = "TASK", required = true)]
        task: String,
        /// Do not ask (needed when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Which stages `ferry run` performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StageSet {
    /// Scan, package, upload and import.
    All,
    /// Scan, package and upload; the key file is the hand-over.
    #[value(name = "scan,package,upload")]
    Send,
    /// Import a staged round.
    Import,
}

impl From<StageSet> for crate::run::Stages {
    fn from(set: StageSet) -> Self {
        crate::run::Stages {
            send: set != StageSet::Import,
            import: set != StageSet::Send,
        }
    }
}

/// A duration as plans write them (`90s`, `30m`, `2h`, `1d`).
fn parse_shard(text: &str) -> Result<crate::plan::shard::Shard, String> {
    crate::plan::shard::Shard::parse(text, &|name| std::env::var(name).ok())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::plan::units::Duration::parse(text).map(|d| d.0)
}
