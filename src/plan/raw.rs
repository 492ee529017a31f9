//! The plan exactly as written: serde types that mirror the YAML, and from which the
//! JSON schema in `schemas/plan.schema.json` is generated.
//!
//! Nothing here checks meaning (see `validate`) or touches the filesystem. Settings are
//! all optional so that a task's `settings` can override any single default; the
//! built-in defaults are applied when settings are resolved. A key belongs here only
//! once the code behind it works.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::units::{Date, Duration, EXTENSION_PATTERN, NAME_PATTERN, Size};

/// A ferry plan: which file shares go where, and how.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ferry plan")]
pub struct RawPlan {
    /// The plan format version. Always 1.
    #[schemars(schema_with = "version_schema")]
    pub version: u32,
    /// The plan's name: the folder of its state under the working folder.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Where ferry keeps sessions, checkpoints, keys and reports. Default: $FERRY_HOME,
    /// else $XDG_STATE_HOME/ferry, else ~/.local/state/ferry. `${VAR}` expands; a
    /// relative path is relative to the plan file's folder.
    #[serde(default)]
    #[schemars(with = "String")]
    pub working_folder: Option<String>,
    /// Settings every task inherits; a task's `settings` may override any of them.
    #[serde(default)]
    #[schemars(with = "RawSettings")]
    pub defaults: Option<serde_json::Value>,
    /// Where packages wait between upload and import.
    #[serde(default)]
    #[schemars(with = "RawStaging")]
    pub staging: Option<RawStaging>,
    /// How reports are rendered.
    #[serde(default)]
    #[schemars(with = "RawReport")]
    pub report: Option<RawReport>,
    /// How much of the tasks' state is kept.
    #[serde(default)]
    #[schemars(with = "RawState")]
    pub state: Option<RawState>,
    /// When `ferry run` may work.
    #[serde(default)]
    #[schemars(with = "RawSchedule")]
    pub schedule: Option<RawSchedule>,
    /// How fast staging may be written and read.
    #[serde(default)]
    #[schemars(with = "RawBandwidth")]
    pub bandwidth: Option<RawBandwidth>,
    /// How much memory and how many reads at once a run may use.
    #[serde(default)]
    #[schemars(with = "RawResources")]
    pub resources: Option<RawResources>,
    /// The tasks: one source folder into one destination folder each.
    #[schemars(length(min = 1))]
    pub tasks: Vec<RawTask>,
}

/// How much memory and how many reads at once a run may use.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// The most memory a run holds for data on its way, 32MiB to 64GiB: package
    /// buffers and files read ahead, of every task together, whatever the number of
    /// workers and reads. Default: 128MiB.
    #[serde(default)]
    #[schemars(with = "Size")]
    pub memory: Option<Size>,
    /// Files each task reads at once, 1 to 256. Default: chosen for each source by
    /// timing it: one per CPU on a local disk, 32 on a share that answers slowly (a
    /// network file system).
    #[serde(default)]
    #[schemars(with = "u16", range(min = 1, max = 256))]
    pub reads: Option<u16>,
}

/// How reports are rendered.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// A folder of minijinja templates that replace the built-in ones of the same name
    /// (`summary.md`, `summary.html`). `${VAR}` expands; relative to the plan file's
    /// folder.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub templates: Option<String>,
}

/// When `ferry run` may work: outside every window it exits 0 at once, saying when the
/// next opens; inside one it pauses (exit 3) when the window closes, and the next run
/// resumes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// One window or a list: `[DAYS ]HH:MM-HH:MM`, as `Mon-Fri 19:00-07:00` (a window
    /// that ends before it starts runs past midnight) or `Sat,Sun 00:00-24:00`.
    #[serde(default)]
    #[schemars(with = "WindowList")]
    pub window: Option<serde_json::Value>,
    /// The IANA time zone of the windows, as `Europe/Paris`. Default: UTC.
    #[serde(default)]
    #[schemars(with = "String")]
    pub time_zone: Option<String>,
}

/// How fast staging may be written and read, by the whole run (all its workers and
/// tasks together): every byte put into staging or read from it counts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBandwidth {
    /// The limit, as `50MiB/s`. Default: none.
    #[serde(default)]
    #[schemars(with = "String")]
    pub limit: Option<String>,
    /// Other limits inside windows (in `schedule.time_zone`, else UTC); the first
    /// window open says.
    #[serde(default)]
    #[schemars(with = "Vec<RawBandwidthWindow>")]
    pub schedule: Option<serde_json::Value>,
}

/// A limit inside a window.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBandwidthWindow {
    /// `[DAYS ]HH:MM-HH:MM`, as `Mon-Fri 08:00-18:00`.
    pub window: String,
    /// The limit inside it, as `10MiB/s`.
    pub limit: String,
}

/// One window, or several.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "only describes the schema")]
enum WindowList {
    One(String),
    Many(Vec<String>),
}

/// How much of the tasks' state is kept.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Completed rounds whose journal and item list `ferry gc` keeps, newest first
    /// (their reports are always kept). Default: 10.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 10000))]
    pub keep_rounds: Option<u32>,
}

fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "const": 1 })
}

/// One source folder migrated into one destination folder.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// Unique within the plan; the folder of the task's state and reports.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// The folder to migrate. `${VAR}` expands; relative to the plan file's folder.
    #[schemars(length(min = 1))]
    pub source: String,
    /// The folder to migrate into. `${VAR}` expands; relative to the plan file's folder.
    #[schemars(length(min = 1))]
    pub destination: String,
    /// Tasks that must complete before this one starts.
    #[serde(default)]
    #[schemars(with = "DependsOn")]
    pub depends_on: Vec<String>,
    /// Settings for this task only, overriding `defaults` key by key.
    #[serde(default)]
    #[schemars(with = "RawSettings")]
    pub settings: Option<serde_json::Value>,
}

/// Names of other tasks in this plan.
#[derive(JsonSchema)]
#[schemars(extend("uniqueItems" = true))]
#[expect(dead_code, reason = "a schema-only type")]
struct DependsOn(Vec<TaskName>);

#[derive(JsonSchema)]
#[expect(dead_code, reason = "a schema-only type")]
struct TaskName(#[schemars(regex(pattern = NAME_PATTERN))] String);

/// Settings: in `defaults` for every task, or in a task's `settings`.
///
/// Every key is optional; a missing key takes the built-in default shown in its
/// description.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// `migrate` (default) scans and migrates; `scan-only` only scans and reports.
    #[serde(default)]
    #[schemars(with = "Mode")]
    pub mode: Option<Mode>,
    /// The scan rule set: `sharepoint` (default), `windows` or `posix`.
    #[serde(default)]
    #[schemars(with = "RuleSet")]
    pub rules: Option<RuleSet>,
    /// Which files to migrate. All filters must pass (AND), as in Migration Manager.
    #[serde(default)]
    #[schemars(with = "RawFilters")]
    pub filters: Option<RawFilters>,
    /// Names the destination cannot hold: `skip` them (default, reported) or `replace`
    /// the offending characters deterministically (recorded in the reports).
    #[serde(default)]
    #[schemars(with = "InvalidNames")]
    pub invalid_names: Option<InvalidNames>,
    /// Names that differ only in case or Unicode normalisation: `skip` (default) all
    /// but the first, or `rename` them.
    #[serde(default)]
    #[schemars(with = "CaseCollisions")]
    pub case_collisions: Option<CaseCollisions>,
    /// A destination file that already exists: `keep-destination-changes` (default:
    /// replace only what ferry itself wrote and nobody changed since), `overwrite`, or
    /// `skip-existing`.
    #[serde(default)]
    #[schemars(with = "Conflicts")]
    pub conflicts: Option<Conflicts>,
    /// Files deleted at the source since the last round: `keep` (default) them at the
    /// destination, or `mirror` the deletion.
    #[serde(default)]
    #[schemars(with = "Deletions")]
    pub deletions: Option<Deletions>,
    /// With `deletions: mirror`, the most a round may delete at the destination
    /// without `--force`: a round that would delete more stops before deleting
    /// anything.
    #[serde(default)]
    #[schemars(with = "RawMaxDelete")]
    pub max_delete: Option<RawMaxDelete>,
    /// Symbolic links: `skip` (default, reported), `copy-link` (as links), or `follow`
    /// (links inside the source only).
    #[serde(default)]
    #[schemars(with = "Symlinks")]
    pub symlinks: Option<Symlinks>,
    /// File metadata carried to the destination.
    #[serde(default)]
    #[schemars(with = "RawPreserve")]
    pub preserve: Option<RawPreserve>,
    /// How files are cut into packages.
    #[serde(default)]
    #[schemars(with = "RawPackage")]
    pub package: Option<RawPackage>,
    /// What is checked after import: `none`, `transferred` (default: every file
    /// written this round is hashed against its manifest), or `all`.
    #[serde(default)]
    #[schemars(with = "Verify")]
    pub verify: Option<Verify>,
    /// Retries of transient failures.
    #[serde(default)]
    #[schemars(with = "RawRetries")]
    pub retries: Option<RawRetries>,
}

/// Filters, all of which must pass for a file to migrate.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilters {
    /// Globs, relative to the source root, of what to migrate. Default: `["**"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Option<Vec<String>>,
    /// Globs, relative to the source root, of what not to migrate. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude: Option<Vec<String>>,
    /// Hidden files and folders (names starting with `.`): `migrate` (default, as in
    /// Migration Manager) or `skip`.
    #[serde(default)]
    #[schemars(with = "Hidden")]
    pub hidden: Option<Hidden>,
    /// Extensions not to migrate, without the dot; only the last extension counts,
    /// case-insensitively. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<Extension>")]
    pub extensions_skip: Option<Vec<String>>,
    /// Migrate only files modified after this date; null (default) for no limit.
    #[serde(default)]
    pub modified_after: Option<Date>,
    /// Migrate only files created after this date, where the filesystem records
    /// creation time; null (default) for no limit.
    #[serde(default)]
    pub created_after: Option<Date>,
    /// Migrate only files of at least this size; null (default) for no limit.
    #[serde(default)]
    #[schemars(schema_with = "nullable_size")]
    pub min_size: Option<Size>,
    /// Migrate only files of at most this size; null (default) for no limit.
    #[serde(default)]
    #[schemars(schema_with = "nullable_size")]
    pub max_size: Option<Size>,
}

fn nullable_size(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [generator.subschema_for::<Size>(), { "type": "null" }]
    })
}

#[derive(JsonSchema)]
#[expect(dead_code, reason = "a schema-only type")]
struct Extension(#[schemars(regex(pattern = EXTENSION_PATTERN))] String);

/// File metadata carried to the destination.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPreserve {
    /// Modification time, to the nanosecond where the destination can hold it. Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub mtime: Option<bool>,
    /// Permission bits. Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub mode: Option<bool>,
    /// Owner and group (needs the privilege to change owners). Default: false.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub owner: Option<bool>,
    /// Keep the setuid and setgid bits (04000, 02000) of files and folders. Only with
    /// `owner: true`: a setuid file given to another owner (root, when ferry runs as
    /// root) would hand out that owner's rights. Without it the bits are cleared, as
    /// `cp -p` does when it cannot keep the owner, and the scan warns about each such
    /// item (`setuid-cleared`). Default: false.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub setuid: Option<bool>,
    /// Keep the holes of sparse files: only their data is read, staged and written, and
    /// the holes are made again at the destination. The content is the same either way.
    /// Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub sparse: Option<bool>,
    /// Keep hard links: the names of one file in the task become one file with those
    /// names at the destination, as `rsync -H` does. Nothing to carry with `rules:
    /// sharepoint` (each name becomes a file of its own). Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub hard_links: Option<bool>,
    /// Keep extended attributes of the `user.*` namespace on files, folders and links.
    /// A destination that refuses one warns (`xattr-not-kept`). Nothing to carry with
    /// `rules: sharepoint`. Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub xattrs: Option<bool>,
    /// Keep `security.*` and `trusted.*` attributes too (SELinux labels, file
    /// capabilities). Only with `owner: true`, and only when ferry runs as root: a file
    /// capability is a privilege, like a setuid bit. Default: false.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub security_xattrs: Option<bool>,
    /// Keep POSIX ACLs, access and default, on files and folders; they are set before a
    /// file takes its name. A destination that refuses one leaves the item to its owner
    /// alone and warns (`acl-not-kept`). Nothing to carry with `rules: sharepoint`.
    /// Default: true.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub acls: Option<bool>,
}

/// How files are cut into packages.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPackage {
    /// The largest package, 1MiB to 4GiB; a larger file is split into parts. Default: 64MiB.
    #[serde(default)]
    #[schemars(with = "Size")]
    pub max_size: Option<Size>,
    /// The most files in one package, 1 to 100000. Default: 1000.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100_000))]
    pub max_files: Option<u32>,
    /// The zstd level, 1 (fast) to 19 (small). Default: 1.
    #[serde(default)]
    #[schemars(with = "u8", range(min = 1, max = 19))]
    pub compression_level: Option<u8>,
}

/// The cap on a round's mirrored deletions; both limits apply.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMaxDelete {
    /// Items. Default: 1000.
    #[serde(default)]
    #[schemars(with = "u64", range(min = 0))]
    pub items: Option<u64>,
    /// Percent of the items ferry has put at the destination, 0 to 100. Default: 10.
    #[serde(default)]
    #[schemars(with = "u8", range(min = 0, max = 100))]
    pub percent: Option<u8>,
}

/// Retries of transient failures.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Attempts in all, the first included, 1 to 100. Default: 3.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub attempts: Option<u32>,
    /// The wait before the first retry, doubled for each further one. Default: 2s.
    #[serde(default)]
    #[schemars(with = "Duration")]
    pub backoff: Option<Duration>,
}

/// Where packages wait between upload and import.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStaging {
    /// `local`: a folder on this machine. `azure`: an Azure Blob container per task
    /// round, created with the account key and used by the workers through a SAS that
    /// can read, create and write but not list or delete. `s3`: a prefix per task round
    /// in an S3 bucket. `none`: direct mode, nothing staged; each file is copied from the
    /// source straight to a temporary name at the destination (`copy_file_range` where
    /// the kernel offers it), hashed, synced and renamed, for a destination this machine
    /// reaches as a folder. Default: local.
    #[serde(default)]
    #[schemars(with = "StagingKind")]
    pub kind: Option<StagingKind>,
    /// `azure`: the storage account's name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub account: Option<String>,
    /// `s3`: the bucket (it must exist; ferry never creates or lists buckets).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub bucket: Option<String>,
    /// `s3`: the bucket's region. Default: us-east-1.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub region: Option<String>,
    /// `azure`: the Blob service endpoint. Default `https://<account>.blob.core.windows.net`;
    /// for another cloud, its endpoint; for the Azurite emulator,
    /// `http://127.0.0.1:10000/devstoreaccount1`. `s3`: the S3 endpoint. Default: AWS's
    /// for the region; for MinIO, moto or another S3 service, its URL.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub endpoint: Option<String>,
    /// `azure`: where the account key is; `s3`: where the secret access key is. As
    /// `{env: NAME}` or `{file: PATH}` (a file only its owner can read), never the key
    /// itself.
    #[serde(default)]
    #[schemars(with = "Option<RawSecret>")]
    pub credential: Option<RawSecret>,
    /// `s3`: where the access key ID is, as `{env: NAME}` or `{file: PATH}`.
    #[serde(default)]
    #[schemars(with = "Option<RawSecret>")]
    pub key_id: Option<RawSecret>,
    /// The staging folder; null (default) for `<working_folder>/staging`. `${VAR}`
    /// expands; relative to the plan file's folder.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<String>,
    /// How long a container key stays valid. Default: 3d.
    #[serde(default)]
    #[schemars(with = "Duration")]
    pub key_ttl: Option<Duration>,
    /// How long staged data may be kept, 4d to 30d. Default: 30d.
    #[serde(default)]
    #[schemars(with = "Duration")]
    pub retention: Option<Duration>,
}

/// Where a secret is kept: exactly one of the two. A plan never holds the secret itself.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    /// The environment variable that holds it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub env: Option<String>,
    /// The file that holds it (mode 0600 or stricter); relative to the plan file's folder.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub file: Option<String>,
}

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// What a run does: migrate, or only scan and report.
    Mode { Migrate = "migrate", ScanOnly = "scan-only" }
);
choice!(
    /// The scan rule set.
    RuleSet { Sharepoint = "sharepoint", Windows = "windows", Posix = "posix" }
);
choice!(
    /// What to do with names the destination cannot hold.
    InvalidNames { Skip = "skip", Replace = "replace" }
);
choice!(
    /// What to do with names that differ only in case or normalisation.
    CaseCollisions { Skip = "skip", Rename = "rename" }
);
choice!(
    /// What to do when the destination file already exists.
    Conflicts {
        KeepDestinationChanges = "keep-destination-changes",
        Overwrite = "overwrite",
        SkipExisting = "skip-existing",
    }
);
choice!(
    /// What to do with files deleted at the source.
    Deletions { Keep = "keep", Mirror = "mirror" }
);
choice!(
    /// What to do with symbolic links.
    Symlinks { Skip = "skip", CopyLink = "copy-link", Follow = "follow" }
);
choice!(
    /// What to check after import.
    Verify { None = "none", Transferred = "transferred", All = "all" }
);
choice!(
    /// Hidden files and folders.
    Hidden { Skip = "skip", Migrate = "migrate" }
);
choice!(
    /// The kind of staging.
    StagingKind { Local = "local", Azure = "azure", S3 = "s3", None = "none" }
);
