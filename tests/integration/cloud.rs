//! Staging in Azure Blob storage, against a real Azurite on 127.0.0.1:10000 (`.ci/run`
//! starts one; locally, a test without it says so and passes, in CI it fails).

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use crate::harness::Fixture;
use crate::session::assert_same_tree;

/// Azurite's published development account and key.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const HOST: &str = "127.0.0.1:10000";

/// Whether Azurite answers; in CI it must.
fn azurite() -> bool {
    let up = TcpStream::connect_timeout(&HOST.parse().unwrap(), Duration::from_secs(2)).is_ok();
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "Azurite is not listening on {HOST}; .ci/run starts it"
        );
        eprintln!("skipped: Azurite is not listening on {HOST} (CI starts it)");
    }
    up
}

fn azure_plan(f: &mut Fixture, settings: &str) {
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://{HOST}/{ACCOUNT}\n  credential: {{ env: FERRY_TEST_AZURE_KEY }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix{settings} }}\n"
    ));
}

fn tree(f: &Fixture) {
    f.file("src/a.txt", "alpha");
    f.file("src/deep/er/b.txt", "bravo");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    f.file("src/big.bin", &big);
    f.dir("src/empty");
    fs::set_permissions(f.path("src/a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// One HTTP/1.1 request to Azurite: the status and the body.
fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(HOST).unwrap();
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nContent-Length: {}\r\nx-ms-version: 2023-11-03\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn sas_query(container: &str, start: &str, expiry: &str) -> String {
    let grant = ferry::staging::azure::sas::Grant {
        account: ACCOUNT,
        container,
        permissions: ferry::staging::azure::sas::PERMISSIONS,
        start,
        expiry,
    };
    grant
        .query_pairs(KEY)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn account_staging() -> Box<dyn ferry::staging::Staging> {
    let plan_staging = ferry::plan::Staging {
        kind: ferry::plan::StagingKind::Azure,
        path: "/nonexistent".into(),
        key_ttl: ferry::plan::Duration(Duration::from_secs(3600)),
        retention: ferry::plan::Duration(Duration::from_secs(86400 * 30)),
        azure: Some(ferry::plan::AzureStaging {
            account: ACCOUNT.into(),
            endpoint: format!("http://{HOST}/{ACCOUNT}"),
            credential: ferry::plan::Secret::File(key_file()),
        }),
        s3: None,
    };
    let retries = ferry::plan::Retries {
        attempts: 2,
        backoff: ferry::plan::Duration(Duration::from_millis(100)),
    };
    ferry::staging::open(&plan_staging, retries).unwrap()
}

/// The account key in a private file (the test process cannot set environment
/// variables safely while other tests run).
fn key_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ferry-test-azure-key-{}", std::process::id()));
    if !path.exists() {
        fs::write(&path, KEY).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// Check 1: a round trip through Azure to a fresh destination is identical (content,
/// modes, times); the round's container is gone afterwards.
#[test]
fn a_round_through_azure_arrives_identical_and_leaves_no_container() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    azure_plan(&mut f, "");
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    // Split roles on the same working folder: staged, then imported.
    f.file("src/new.txt", "new in round 2");
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let note: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(f.path("state/p/t/rounds/R2/staged.json")).unwrap(),
    )
    .unwrap();
    let container = note["container"].as_str().unwrap().to_string();
    let staging = account_staging();
    assert!(
        staging.open(&container).is_ok(),
        "the container exists while staged"
    );
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    // Deleted with the round.
    let sas = sas_query(&container, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z");
    let (status, text) = request(
        "GET",
        &format!("/{ACCOUNT}/{container}/any?{sas}"),
        &[],
        b"",
    );
    assert_eq!(status, 404);
    assert!(text.contains("ContainerNotFound"), "{text}");
}

/// Check 2 and 3: the SAS the workers get can read, create and write, but not list or
/// delete, and an expired one is refused.
#[test]
fn the_sas_cannot_list_or_delete_and_expires() {
    if !azurite() {
        return;
    }
    let container = format!("ferrytest{}", std::process::id());
    let staging = account_staging();
    staging.open(&container).unwrap();
    let sas = sas_query(&container, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z");
    let blob = format!("/{ACCOUNT}/{container}/obj?{sas}");
    let (put, text) = request("PUT", &blob, &[("x-ms-blob-type", "BlockBlob")], b"data");
    assert_eq!(put, 201, "{text}");
    let (get, _) = request("GET", &blob, &[], b"");
    assert_eq!(get, 200);
    let list = format!("/{ACCOUNT}/{container}?restype=container&comp=list&{sas}");
    let (listed, text) = request("GET", &list, &[], b"");
    assert_eq!(listed, 403, "listing with the SAS: {text}");
    let (deleted, text) = request("DELETE", &blob, &[], b"");
    assert_eq!(deleted, 403, "deleting with the SAS: {text}");
    let expired = sas_query(&container, "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z");
    let (old, text) = request(
        "GET",
        &format!("/{ACCOUNT}/{container}/obj?{expired}"),
        &[],
        b"",
    );
    assert_eq!(old, 403, "an expired SAS: {text}");
    staging.discard(&container).unwrap();
    staging.discard(&container).unwrap();
}

/// Check 7: the account key and the signatures appear in no state file, report,
/// message or help text.
#[test]
fn no_secret_is_written_anywhere() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    azure_plan(&mut f, "");
    let staged = f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    staged.assert_code(0);
    let imported = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    imported.assert_code(0);
    let help = f.ferry(&["run", "--help"]);
    let key_bytes = KEY.as_bytes();
    let mut texts = vec![
        staged.stderr.clone(),
        staged.stdout(),
        imported.stderr.clone(),
        help.stdout(),
    ];
    texts.extend(crate::harness::file_texts(&f.path("state")));
    for text in &texts {
        assert!(
            !text
                .as_bytes()
                .windows(key_bytes.len())
                .any(|w| w == key_bytes)
        );
        assert!(
            !text.contains("sig="),
            "a signature was written: {text:.300}"
        );
        assert!(!text.contains(&KEY[..20]));
    }
}

/// A plan holds no key: a literal one is refused, and a key file others can read too.
#[test]
fn the_key_comes_only_from_a_private_place() {
    let f = Fixture::new();
    tree(&f);
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  credential: {{ file: key.txt }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n"
    ));
    f.file("key.txt", KEY);
    fs::set_permissions(f.path("key.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(!run.stderr.contains(&KEY[..20]));
    // Azure keys without `kind: azure`, and `kind: azure` without its account.
    f.plan("version: 1\nname: p\nworking_folder: state\nstaging:\n  account: x\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let refused = f.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("belongs to `kind: azure`"),
        "{}",
        refused.stderr
    );
    f.plan("version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: azure\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let refused = f.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("needs `account`"),
        "{}",
        refused.stderr
    );
}

/// Check 4: a byte flipped in a staged blob (through the account key: the SAS cannot
/// list) is refused with nothing of its package written; the next round converges.
#[test]
fn a_flipped_byte_in_a_blob_is_refused_and_the_next_round_converges() {
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    azure_plan(&mut f, "");
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let note: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(f.path("state/p/t/rounds/R1/staged.json")).unwrap(),
    )
    .unwrap();
    let container = note["container"].as_str().unwrap();
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(ACCOUNT)
        .with_access_key(KEY)
        .with_endpoint(format!("http://{HOST}/{ACCOUNT}"))
        .with_allow_http(true)
        .with_container_name(container)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listed = store.list_with_delimiter(None).await.unwrap();
        let blob = listed.objects[0].location.clone();
        let mut bytes = store
            .get(&blob)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        store.put(&blob, bytes.into()).await.unwrap();
    });
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    run.assert_code(1);
    assert!(run.stderr.contains("integrity"), "{}", run.stderr);
    // A full run: a new round stages what failed again, and the trees agree.
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// An Azurite of this test's own, on a free port, storing in `folder`.
fn own_azurite(folder: &std::path::Path, port: u16) -> std::process::Child {
    let child = std::process::Command::new("azurite-blob")
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
        ])
        .arg(folder)
        .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start azurite-blob");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "Azurite did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Check 5: the emulator killed in the middle of a run: the run stops with exit 5 and
/// the round open, saying the staging cannot be reached; started again, the next run
/// completes the round.
#[test]
fn the_service_gone_mid_run_stops_the_round_and_the_next_run_completes_it() {
    if !crate::harness::have("azurite-blob") {
        return;
    }
    let f = Fixture::new();
    for i in 0..120 {
        let data: Vec<u8> = (0..200_000u32)
            .map(|b| (b as usize * 7 + i) as u8)
            .collect();
        f.file(&format!("src/d{}/f{i:03}.bin", i % 5), &data);
    }
    f.file("key.txt", KEY);
    fs::set_permissions(f.path("key.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://127.0.0.1:{port}/{ACCOUNT}\n  credential: {{ file: key.txt }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, package: {{ max_size: 1MiB }}, retries: {{ attempts: 2, backoff: 100ms }} }}\n"
    ));
    let store = f.path("azurite");
    fs::create_dir_all(&store).unwrap();
    let mut azurite = own_azurite(&store, port);
    let mut run = f.spawn(&["run", "--workers", "1", "plan.yaml"]);
    // Once some packages are in, the service goes away.
    let journal = f.path("state/p/t/rounds/R1/journal");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fs::metadata(&journal).map_or(true, |m| m.len() < 2_000) {
        assert!(
            std::time::Instant::now() < deadline,
            "no package was imported"
        );
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    azurite.kill().unwrap();
    azurite.wait().unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    assert!(
        !stderr.contains("sig=") || stderr.contains("sig=REDACTED"),
        "{stderr}"
    );
    // Back again: the same command completes the same round.
    let mut azurite = own_azurite(&store, port);
    let again = f.ferry(&["run", "plan.yaml"]);
    azurite.kill().unwrap();
    azurite.wait().unwrap();
    again.assert_code(0);
    let session: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("state/p/t/session.json")).unwrap())
            .unwrap();
    assert_eq!(
        session["round"], 1,
        "the round was resumed, not started again"
    );
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// The plan of one site: the same plan, with its own working folder; `key_env` names
/// the variable that holds the account key (unset at the importing site).
fn site_plan(f: &mut Fixture, file: &str, state: &str, key_env: &str) {
    f.file(
        file,
        format!(
            "version: 1\nname: p\nworking_folder: {state}\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://{HOST}/{ACCOUNT}\n  credential: {{ env: {key_env} }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix }}\n"
        ),
    );
}

/// Split roles that share nothing but the ticket: the source site stages and writes
/// it; the destination site, with its own working folder and no account key, imports
/// through the ticket's SAS alone and hands the result back; the source site's next
/// round learns what arrived (it stages only what changed) and deletes the container.
#[test]
fn a_ticket_is_all_the_importing_site_needs() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    site_plan(
        &mut f,
        "source.yaml",
        "state-source",
        "FERRY_TEST_AZURE_KEY",
    );
    site_plan(
        &mut f,
        "destination.yaml",
        "state-destination",
        "FERRY_TEST_NO_KEY_HERE",
    );
    let staged = f.ferry(&[
        "run",
        "source.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "round.ticket",
    ]);
    staged.assert_code(0);
    assert!(staged.stderr.contains("ticket: "), "{}", staged.stderr);
    let ticket_path = f.path("round.ticket");
    assert_eq!(
        fs::metadata(&ticket_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ticket: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&ticket_path).unwrap()).unwrap();
    let container = ticket["tasks"][0]["container"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(container.starts_with("t-r1-"), "{container}");

    let imported = f.ferry(&[
        "run",
        "destination.yaml",
        "--stages",
        "import",
        "--ticket",
        "round.ticket",
    ]);
    imported.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(!f.path("state-destination/p/t/keys/R1.key").exists());
    // The importing site cannot delete the container: it is still there, with the
    // result handed back.
    assert!(account_staging().open(&container).is_ok());
    // Again with the same ticket (a cron job): nothing to do, and it says so.
    let again = f.ferry(&[
        "run",
        "destination.yaml",
        "--stages",
        "import",
        "--ticket",
        "round.ticket",
    ]);
    again.assert_code(0);
    assert!(
        again.stderr.contains("was imported here already"),
        "{}",
        again.stderr
    );

    // Round 2 at the source: round 1 is taken back (its container deleted), and only
    // the new file is staged.
    f.file("src/new.txt", "new in round 2");
    f.ferry(&[
        "run",
        "source.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "round.ticket",
    ])
    .assert_code(0);
    let sas = sas_query(&container, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z");
    let (status, text) = request(
        "GET",
        &format!("/{ACCOUNT}/{container}/any?{sas}"),
        &[],
        b"",
    );
    assert_eq!(status, 404, "round 1's container is gone: {text}");
    let items = fs::read(f.path("state-source/p/t/rounds/R2/scan.json")).unwrap();
    let scanned: serde_json::Value = serde_json::from_slice(&items).unwrap();
    assert_eq!(
        scanned["items"], 1,
        "only the new file is staged: {scanned}"
    );
    f.ferry(&[
        "run",
        "destination.yaml",
        "--stages",
        "import",
        "--ticket",
        "round.ticket",
    ])
    .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// Check 3 for tickets: an expired ticket, one others can read, and one for another
/// plan are refused, with nothing touched and a message that says what to do.
#[test]
fn an_expired_or_exposed_ticket_is_refused() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    site_plan(
        &mut f,
        "source.yaml",
        "state-source",
        "FERRY_TEST_AZURE_KEY",
    );
    site_plan(
        &mut f,
        "destination.yaml",
        "state-destination",
        "FERRY_TEST_NO_KEY_HERE",
    );
    f.ferry(&[
        "run",
        "source.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "round.ticket",
    ])
    .assert_code(0);
    let ticket_path = f.path("round.ticket");
    let import = |f: &Fixture| {
        f.ferry(&[
            "run",
            "destination.yaml",
            "--stages",
            "import",
            "--ticket",
            "round.ticket",
        ])
    };
    fs::set_permissions(&ticket_path, fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = import(&f);
    exposed.assert_code(2);
    assert!(exposed.stderr.contains("chmod 600"), "{}", exposed.stderr);
    fs::set_permissions(&ticket_path, fs::Permissions::from_mode(0o600)).unwrap();

    let mut ticket: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&ticket_path).unwrap()).unwrap();
    ticket["tasks"][0]["expires_at"] = serde_json::json!(1_700_000_000);
    fs::write(&ticket_path, serde_json::to_vec(&ticket).unwrap()).unwrap();
    let expired = import(&f);
    expired.assert_code(2);
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);
    assert!(
        expired.stderr.contains("Stage the round again"),
        "{}",
        expired.stderr
    );
    assert!(!f.path("dest").exists() || fs::read_dir(f.path("dest")).unwrap().next().is_none());
    assert!(!f.path("state-destination/p/t").exists());
    assert!(!expired.stderr.contains("sig="));
}

/// A TCP proxy to Azurite on a port of its own: it counts the bytes sent to the service
/// and, once `limit` of them have gone through, forwards nothing more (the sender
/// stalls, as on a link that died).
struct Proxy {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// While set, a request that begins with `PUT` closes its connection instead.
    refuse_puts: std::sync::Arc<AtomicBool>,
}

use std::sync::atomic::AtomicBool;

impl Proxy {
    fn start(limit: u64) -> Proxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&sent);
        let refuse_puts = Arc::new(AtomicBool::new(false));
        let refusing = Arc::clone(&refuse_puts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(HOST) else {
                    continue;
                };
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut server_in, mut client_out) = (server, client);
                let counted = Arc::clone(&counted);
                let refusing = Arc::clone(&refusing);
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let room = limit.saturating_sub(counted.load(Ordering::SeqCst));
                        if room == 0 {
                            // The link is dead: hold the connection, forward nothing.
                            std::thread::sleep(Duration::from_secs(3600));
                        }
                        let want = buffer.len().min(room as usize);
                        let n = match client_in.read(&mut buffer[..want]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if refusing.load(Ordering::SeqCst) && buffer[..n].starts_with(b"PUT ") {
                            let _ = server_out.shutdown(std::net::Shutdown::Both);
                            let _ = client_in.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        counted.fetch_add(n as u64, Ordering::SeqCst);
                        if server_out.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_out.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_in, &mut client_out);
                    let _ = client_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            port,
            sent,
            refuse_puts,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Check 6: a large package goes up in blocks, each journalled once it is in; `kill -9`
/// in the middle of the upload, and the next run puts only the blocks that are missing
/// (counted on the wire) and completes the round.
#[test]
fn a_killed_upload_resumes_at_the_next_block() {
    if !azurite() {
        return;
    }
    let f = Fixture::new();
    const SIZE: u64 = 40 << 20;
    let data = crate::harness::incompressible(SIZE as usize, 0x2545_F491_4F6C_DD1D);
    f.file("src/image.bin", &data);
    drop(data);
    f.file("key.txt", KEY);
    fs::set_permissions(f.path("key.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let plan = |port: u16| {
        format!(
            "version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://127.0.0.1:{port}/{ACCOUNT}\n  credential: {{ file: key.txt }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix }}\n"
        )
    };
    // The link dies after 20 MiB: two 8 MiB blocks are in and journalled, the third
    // is under way.
    let first = Proxy::start(20 << 20);
    f.plan(&plan(first.port));
    let mut run = f.spawn(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while first.sent() < 20 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload did not start"
        );
        if run.try_wait().unwrap().is_some() {
            let output = run.wait_with_output().unwrap();
            panic!(
                "the run ended before the kill, after {} bytes: {}",
                first.sent(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    run.kill().unwrap();
    run.wait().unwrap();

    let second = Proxy::start(u64::MAX);
    f.plan(&plan(second.port));
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let resent = second.sent();
    assert!(
        resent < SIZE - (14 << 20),
        "the resumed run sent {resent} bytes of a {SIZE}-byte package: the blocks already in were sent again"
    );
    assert!(resent > SIZE / 2 - (4 << 20), "{resent}");
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// The result cannot be handed back (the service refuses the put): the importing side
/// keeps the round open (exit 5), refuses to go on without the ticket, and the same
/// command with the ticket hands it back later; the staging side then takes it back.
#[test]
fn a_result_that_cannot_be_handed_back_keeps_the_round_open() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    let proxy = Proxy::start(u64::MAX);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    let site = |state: &str, key_env: &str| {
        format!(
            "version: 1\nname: p\nworking_folder: {state}\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://127.0.0.1:{}/{ACCOUNT}\n  credential: {{ env: {key_env} }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, retries: {{ attempts: 1 }} }}\n",
            proxy.port
        )
    };
    f.file("source.yaml", site("state-source", "FERRY_TEST_AZURE_KEY"));
    f.file(
        "destination.yaml",
        site("state-destination", "FERRY_TEST_NO_KEY_HERE"),
    );
    let ticket = ["--ticket", "round.ticket"];
    let stage = ["run", "source.yaml", "--stages", "scan,package,upload"];
    let import = ["run", "destination.yaml", "--stages", "import"];
    f.ferry(&[&stage[..], &ticket[..]].concat()).assert_code(0);

    proxy
        .refuse_puts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = f.ferry(&[&import[..], &ticket[..]].concat());
    failed.assert_code(5);
    assert!(
        failed.stderr.contains("hand the round's result back"),
        "{}",
        failed.stderr
    );
    assert_same_tree(&f.path("src"), &f.path("dest"));
    // Without the ticket, the round is not touched.
    let plain = f.ferry(&import);
    plain.assert_code(2);
    assert!(plain.stderr.contains("--ticket"), "{}", plain.stderr);
    // Nothing came back yet: the staging side still holds the round.
    proxy
        .refuse_puts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    f.ferry(&[&stage[..], &ticket[..]].concat()).assert_code(0);
    assert!(f.path("state-source/p/t/keys/R1.key").exists());

    f.ferry(&[&import[..], &ticket[..]].concat()).assert_code(0);
    // The next staging run takes the round back and starts round 2 with nothing new.
    f.ferry(&[&stage[..], &ticket[..]].concat()).assert_code(0);
    assert!(!f.path("state-source/p/t/keys/R1.key").exists());
    let session: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("state-source/p/t/session.json")).unwrap())
            .unwrap();
    assert_eq!(session["round"], 2, "{session}");
}

/// With `deletions: mirror` across two sites: a file deleted at the source is deleted
/// at the destination, and when it comes back with its old time (restored from a
/// backup with `cp -p`), the staging side, having taken the round back, stages it again
/// rather than taking it for unchanged.
#[test]
fn a_file_deleted_and_restored_across_sites_comes_back() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    f.file("src/keep.txt", "keep");
    f.file("src/gone.txt", "gone and back");
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    for (file, state, key_env) in [
        ("source.yaml", "state-source", "FERRY_TEST_AZURE_KEY"),
        (
            "destination.yaml",
            "state-destination",
            "FERRY_TEST_NO_KEY_HERE",
        ),
    ] {
        f.file(
            file,
            format!(
                "version: 1\nname: p\nworking_folder: {state}\nstaging:\n  kind: azure\n  account: {ACCOUNT}\n  endpoint: http://{HOST}/{ACCOUNT}\n  credential: {{ env: {key_env} }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix, deletions: mirror, max_delete: {{ percent: 100 }} }}\n"
            ),
        );
    }
    let stage = [
        "run",
        "source.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "t.ticket",
    ];
    let import = [
        "run",
        "destination.yaml",
        "--stages",
        "import",
        "--ticket",
        "t.ticket",
    ];
    let when = fs::metadata(f.path("src/gone.txt"))
        .unwrap()
        .modified()
        .unwrap();
    f.ferry(&stage).assert_code(0);
    f.ferry(&import).assert_code(0);
    fs::remove_file(f.path("src/gone.txt")).unwrap();
    f.ferry(&stage).assert_code(0);
    f.ferry(&import).assert_code(0);
    assert!(
        !f.path("dest/gone.txt").exists(),
        "the deletion was mirrored"
    );
    // Restored as it was, time included.
    f.file("src/gone.txt", "gone and back");
    fs::File::options()
        .write(true)
        .open(f.path("src/gone.txt"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    f.ferry(&stage).assert_code(0);
    f.ferry(&import).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// Issue 15: the JSON log of both sites' runs through a ticket says what each did, and
/// holds none of the secrets: the account key, the round's key, the SAS signature.
#[test]
fn the_json_log_of_two_sites_holds_no_secret() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    site_plan(
        &mut f,
        "source.yaml",
        "state-source",
        "FERRY_TEST_AZURE_KEY",
    );
    // With a bandwidth limit, the staging that signs the ticket's SAS is wrapped in the
    // limit's: the SAS must still reach the ticket.
    let source = fs::read_to_string(f.path("source.yaml")).unwrap();
    f.file(
        "source.yaml",
        source.replace("tasks:\n", "bandwidth: { limit: 1GiB/s }\ntasks:\n"),
    );
    site_plan(
        &mut f,
        "destination.yaml",
        "state-destination",
        "FERRY_TEST_NO_KEY_HERE",
    );
    let log = ["--log-format", "json", "--log-file", "sites.log"];
    let ticket = ["--ticket", "round.ticket"];
    let stage = [
        &["run", "source.yaml", "--stages", "scan,package,upload"][..],
        &ticket,
        &log,
    ];
    f.ferry(&stage.concat()).assert_code(0);
    let secrets: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("round.ticket")).unwrap()).unwrap();
    let import = [
        &["run", "destination.yaml", "--stages", "import"][..],
        &ticket,
        &log,
    ];
    f.ferry(&import.concat()).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));

    let text = fs::read_to_string(f.path("sites.log")).unwrap();
    let lines = crate::log::json_lines(&text);
    let ends = crate::log::events(&lines, "task_end");
    assert_eq!(ends.len(), 2, "{text}");
    assert_eq!(ends[0]["result"], "staged");
    assert_eq!(ends[1]["result"], "done");
    assert_eq!(
        ends[1]["items"], 6,
        "three files, three folders: {}",
        ends[1]
    );
    assert!(ends.iter().all(|e| e["task"] == "t" && e["round"] == 1));
    let task = &secrets["tasks"][0];
    let key = task["key"].as_str().unwrap();
    let sig = task["azure"]["sas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "sig")
        .map(|p| p[1].as_str().unwrap().to_string())
        .unwrap();
    for secret in [KEY, &KEY[..20], key, &key[..16], &sig, &sig[..12]] {
        assert!(!text.contains(secret), "a secret in the log: {text}");
    }
}

/// `ferry gc` lists the account's containers: one whose key file was lost is deleted
/// once it is older than `staging.retention`, and never before.
#[test]
fn gc_deletes_a_container_whose_key_is_gone() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    azure_plan(&mut f, "");
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = f.path("state/p/t/keys/R1.key");
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key).unwrap()).unwrap();
    let container = stored["container"].as_str().unwrap().to_string();
    fs::remove_file(&key).unwrap();
    let sas = sas_query(&container, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z");

    let young = f.ferry(&["gc", "plan.yaml", "--yes"]);
    young.assert_code(0);
    assert!(
        young.stderr.contains("nothing to delete"),
        "{}",
        young.stderr
    );
    assert!(account_staging().open(&container).is_ok());

    f.env("FERRY_TEST_CLOCK", &crate::gc::a_month_later());
    let deleted = f.ferry(&["gc", "plan.yaml", "--yes"]);
    deleted.assert_code(0);
    assert!(
        deleted.stderr.contains(&format!(
            "deleted task t round 1: staged data (container {container})"
        )),
        "{}",
        deleted.stderr
    );
    let (status, text) = request(
        "GET",
        &format!("/{ACCOUNT}/{container}/any?{sas}"),
        &[],
        b"",
    );
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("ContainerNotFound"), "{text}");
}

/// The staging site sets a handed-over round aside with `--restart` and stages a new
/// one: the old ticket's container is gone (its import is refused, saying so, and
/// nothing is written), and the new ticket imports everything.
#[test]
fn a_round_set_aside_at_the_staging_site_takes_its_ticket_with_it() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    site_plan(
        &mut f,
        "source.yaml",
        "state-source",
        "FERRY_TEST_AZURE_KEY",
    );
    site_plan(
        &mut f,
        "destination.yaml",
        "state-destination",
        "FERRY_TEST_NO_KEY_HERE",
    );
    let stage = |ticket: &str, restart: bool| {
        let mut args = vec![
            "run",
            "source.yaml",
            "--stages",
            "scan,package,upload",
            "--ticket",
            ticket,
        ];
        if restart {
            args.push("--restart");
        }
        f.ferry(&args)
    };
    stage("first.ticket", false).assert_code(0);
    let first: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("first.ticket")).unwrap()).unwrap();
    let old_container = first["tasks"][0]["container"].as_str().unwrap().to_string();
    f.file("src/late.txt", "added before the new round");
    stage("second.ticket", true).assert_code(0);
    let second: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(f.path("second.ticket")).unwrap()).unwrap();
    assert_eq!(second["tasks"][0]["round"], 2);
    let sas = sas_query(
        &old_container,
        "2020-01-01T00:00:00Z",
        "2099-01-01T00:00:00Z",
    );
    let (status, text) = request(
        "GET",
        &format!("/{ACCOUNT}/{old_container}/any?{sas}"),
        &[],
        b"",
    );
    assert!(
        status == 404 && text.contains("ContainerNotFound"),
        "{text}"
    );

    let import = |ticket: &str| {
        f.ferry(&[
            "run",
            "destination.yaml",
            "--stages",
            "import",
            "--ticket",
            ticket,
        ])
    };
    let stale = import("first.ticket");
    stale.assert_code(2);
    assert!(
        stale
            .stderr
            .contains(&format!("its container {old_container} is gone")),
        "{}",
        stale.stderr
    );
    assert!(!f.path("dest/late.txt").exists());
    let fresh = import("second.ticket");
    fresh.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
}

/// A take-over that a crash interrupted (the round's folder begun, no session yet) is
/// started again by the next importing run, not taken for a lost session.
#[test]
fn an_interrupted_take_over_starts_again() {
    if !azurite() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    f.env("FERRY_TEST_AZURE_KEY", KEY);
    site_plan(
        &mut f,
        "source.yaml",
        "state-source",
        "FERRY_TEST_AZURE_KEY",
    );
    site_plan(
        &mut f,
        "destination.yaml",
        "state-destination",
        "FERRY_TEST_NO_KEY_HERE",
    );
    f.ferry(&[
        "run",
        "source.yaml",
        "--stages",
        "scan,package,upload",
        "--ticket",
        "round.ticket",
    ])
    .assert_code(0);
    // What a crash in the middle of the take-over leaves: the marker, a torn item list.
    f.file("state-destination/p/t/rounds/R1/taking-over", "");
    f.file("state-destination/p/t/rounds/R1/items", "torn");
    let import = f.ferry(&[
        "run",
        "destination.yaml",
        "--stages",
        "import",
        "--ticket",
        "round.ticket",
    ]);
    import.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert!(
        !f.path("state-destination/p/t/rounds/R1/taking-over")
            .exists()
    );
}
