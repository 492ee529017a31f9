//! `ferry plan-from`: Migration Manager's bulk task lists as plans, snapshotted, checked
//! by `ferry validate`, and run.

use insta::assert_snapshot;

use crate::harness::Fixture;
use crate::session::assert_same_tree;

/// The text with the fixture's folder shown as `[ROOT]`.
fn rooted(f: &Fixture, text: &str) -> String {
    text.replace(&f.root().display().to_string(), "[ROOT]")
}

/// The CSV of Migration Manager's documentation (with its header row, Windows line
/// ends and a byte-order mark, as Excel saves it): one task per row, sites and
/// OneDrive users as folders under the root, a destination inside another's waiting
/// for it, a task whose name is all digits (quoted, or YAML would read a number); the
/// plan validates.
#[test]
fn a_csv_list_becomes_a_plan() {
    let f = Fixture::new();
    f.file(
        "tasks.csv",
        "\u{feff}FileSharePath,,,SharePointSite,DocLibrary,DocSubFolder\r\n\
         \\\\MigrationTests\\testfiles,,,https://contoso.sharepoint.com/sites/sitecollection,Documents,SubFolderName\r\n\
         \\\\MigrationTests\\testfiles,,,https://contoso-my.sharepoint.com/personal/user_contoso_onmicrosoft_com,Documents,\r\n\
         \\\\migrationtests\\TestFiles\\Finance 2024,,,https://contoso.sharepoint.com/sites/Finance%20Team,Shared Documents,Archive/2024\r\n\
         /srv/local/$scratch,,,ann.lee@contoso.com,Documents,\r\n\
         \\\\MigrationTests\\other,,,https://contoso.sharepoint.com/sites/sitecollection,Documents,\r\n\
         /srv/archive,,,https://contoso.sharepoint.com,2024,\r\n",
    );
    let run = f.ferry(&[
        "plan-from",
        "tasks.csv",
        "--destination-root",
        "sharepoint",
        "--share-map",
        "\\\\MigrationTests=/mnt/migration-tests",
        "--share-map",
        "\\\\MigrationTests\\other=/mnt/other",
    ]);
    run.assert_code(0);
    assert_snapshot!(rooted(&f, &run.stdout));
    f.file("plan.yaml", &run.stdout);
    f.ferry(&["validate", "plan.yaml"]).assert_code(0);
}

/// The JSON of Migration Manager's documentation, trailing comma and all: its settings
/// become the tasks' filters, and a setting with no meaning here is said in a comment.
#[test]
fn a_json_list_becomes_a_plan_with_its_settings() {
    let f = Fixture::new();
    f.file(
        "tasks.json",
        r#"{
  "Tasks": [
    {
      "SourcePath": "\\\\contoso\\fileshare\\dept1",
      "TargetPath": "https://contoso.sharepoint.com/sites/Depts",
      "TargetList": "Documents",
      "TargetListRelativePath": "dept1",
      "Settings": {
        "MigrateHiddenItems": true,
        "MigrateItemsCreatedAfter": "2016-05-22",
        "MigrateItemsModifiedAfter": "2016-05-22",
        "SkipFilesWithExtensions": "txt:MP3",
        "MigrateOneNoteNotebook": true
      }
    },
    {
      "SourcePath": "\\\\contoso\\fileshare\\dept2",
      "TargetPath": "https://contoso.sharepoint.com/sites/Depts",
      "TargetList": "Documents",
      "TargetListRelativePath": "dept2",
      "Settings": {
        "MigrateHiddenItems": false,
        "SkipFilesWithExtensions": [".exe", "bat"],
        "MigrateOneNoteNotebook": false,
      }
    }
  ]
}
"#,
    );
    let run = f.ferry(&[
        "plan-from",
        "tasks.json",
        "--destination-root",
        "/srv/sharepoint",
        "--share-map",
        "\\\\contoso\\fileshare=/mnt/fileshare",
        "--name",
        "departments",
        "--out",
        "plans/departments.yaml",
    ]);
    // The folder of --out must exist: nothing is made but the plan.
    run.assert_code(5);
    std::fs::create_dir(f.path("plans")).unwrap();
    let run = f.ferry(&[
        "plan-from",
        "tasks.json",
        "--destination-root",
        "/srv/sharepoint",
        "--share-map",
        "\\\\contoso\\fileshare=/mnt/fileshare",
        "--name",
        "departments",
        "--out",
        "plans/departments.yaml",
    ]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("2 tasks in plans/departments.yaml"),
        "{}",
        run.stderr
    );
    let plan = std::fs::read_to_string(f.path("plans/departments.yaml")).unwrap();
    assert_snapshot!(plan);
    f.ferry(&["validate", "plans/departments.yaml"])
        .assert_code(0);
    // Only the plan is in the folder: the check's temporary file is gone.
    assert_eq!(std::fs::read_dir(f.path("plans")).unwrap().count(), 1);
    // An existing plan is replaced only when asked.
    let again = f.ferry(&[
        "plan-from",
        "tasks.json",
        "--destination-root",
        "/srv/sharepoint",
        "--share-map",
        "\\\\contoso\\fileshare=/mnt/fileshare",
        "--out",
        "plans/departments.yaml",
    ]);
    again.assert_code(2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
}

/// Every problem of a list is shown at once, at its row and column (CSV) or line,
/// column and key (JSON); duplicate rows are refused; nothing is written.
#[test]
fn problems_are_shown_at_their_row_and_column_and_nothing_is_written() {
    let f = Fixture::new();
    f.file(
        "tasks.csv",
        "FileSharePath,,,SharePointSite,DocLibrary,DocSubFolder\n\
         \\\\server\\share\\a,,,https://contoso.sharepoint.com/sites/a,Documents,\n\
         \\\\server\\share\\a,,,https://contoso.sharepoint.com/sites/a,Documents,\n\
         \\\\server\\share\\b,,,https://contoso.sharepoint.com/sites/a,Documents,\n\
         relative\\path,,,https://contoso.sharepoint.com/sites/a,Documents,x\n\
         /srv/c,\"list\",,finance,,../up\n\
         /srv/d,,,https://contoso.sharepoint.com/sites/d/_layouts/15/onedrive.aspx,Documents,\n\
         \\\\other\\share,,,https://contoso.sharepoint.com/sites/e,Documents,\n",
    );
    let run = f.ferry(&[
        "plan-from",
        "tasks.csv",
        "--destination-root",
        "/srv/sharepoint",
        "--share-map",
        "\\\\server\\share=/mnt/share",
        "--out",
        "plan.yaml",
    ]);
    run.assert_code(2);
    assert_snapshot!("csv_problems", run.stderr);
    assert!(!f.path("plan.yaml").exists());

    f.file(
        "tasks.json",
        "{\n  \"Tasks\": [\n    { \"SourcePath\": \"/srv/a\", \"TargetPath\": \"https://c.sharepoint.com/sites/a\" },\n    { \"SourcePath\": \"/srv/b\", \"TargetPath\": \"https://c.sharepoint.com/sites/b\", \"TargetList\": \"Documents\",\n      \"Items\": { \"Lists\": [] },\n      \"Settings\": { \"MigrateHiddenItems\": \"no\", \"MigrateItemsModifiedAfter\": \"22/05/2016\", \"KeepVersions\": 3 } },\n    { \"SourcePath\": \"/srv/b\", \"TargetPath\": \"https://c.sharepoint.com/sites/b\", \"TargetList\": \"Documents\" },\n    { \"SourcePath\": \"/srv/b\", \"TargetPath\": \"https://c.sharepoint.com/sites/b\", \"TargetList\": \"Documents\" }\n  ]\n}\n",
    );
    let run = f.ferry(&[
        "plan-from",
        "tasks.json",
        "--destination-root",
        "/srv/sharepoint",
    ]);
    run.assert_code(2);
    assert_snapshot!("json_problems", run.stderr);
    assert!(run.stdout.is_empty());
}

/// From a list to files in place: the plan made from a CSV runs, and each share lands
/// in its site's library and subfolder.
#[test]
fn a_plan_made_from_a_list_runs() {
    let f = Fixture::new();
    f.file("shares/finance/q1.txt", "first quarter");
    f.file("shares/finance/2024/q2.txt", "second quarter");
    f.file("shares/hr/people.txt", "people");
    let root = f.root().display().to_string();
    f.file(
        "tasks.csv",
        format!(
            "{root}/shares/finance,,,https://contoso.sharepoint.com/sites/Finance,Shared Documents,Imported\n\
             {root}/shares/hr,,,hr.team@contoso.com,Documents,\n"
        ),
    );
    f.ferry(&[
        "plan-from",
        "tasks.csv",
        "--destination-root",
        "sp",
        "--out",
        "plan.yaml",
    ])
    .assert_code(0);
    let plan = std::fs::read_to_string(f.path("plan.yaml")).unwrap();
    let plan = plan.replace("version: 1\n", "version: 1\nworking_folder: state\n");
    f.file("plan.yaml", plan);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(
        &f.path("shares/finance"),
        &f.path("sp/sites/Finance/Shared Documents/Imported"),
    );
    assert_same_tree(
        &f.path("shares/hr"),
        &f.path("sp/personal/hr_team_contoso_com/Documents"),
    );
}
