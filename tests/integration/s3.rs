//! Staging in S3, against a real moto S3 server on 127.0.0.1:5000 (`.ci/run` starts
//! one; locally, a test without it says so and passes, in CI it fails).

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use object_store::{ObjectStore as _, ObjectStoreExt as _};

use crate::harness::Fixture;
use crate::session::assert_same_tree;

const HOST: &str = "127.0.0.1:5000";
const KEY_ID: &str = "ferrytestkeyid";
const SECRET: &str = "ferry-test-secret-access-key-0123456789";

/// Whether moto answers; in CI it must.
fn moto() -> bool {
    let up = TcpStream::connect_timeout(&HOST.parse().unwrap(), Duration::from_secs(2)).is_ok();
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto's S3 server is not listening on {HOST}; .ci/run starts it"
        );
        eprintln!("skipped: moto's S3 server is not listening on {HOST} (CI starts it)");
    }
    up
}

/// A fresh bucket of the test's own (made with one plain request: ferry never creates
/// buckets).
fn bucket(test: &str) -> String {
    let name = format!("ferry-{test}-{}", std::process::id());
    let mut stream = TcpStream::connect(HOST).unwrap();
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    name
}

fn s3_plan(f: &mut Fixture, bucket: &str) {
    f.env("FERRY_TEST_S3_KEY_ID", KEY_ID);
    f.env("FERRY_TEST_S3_SECRET", SECRET);
    f.plan(&format!(
        "version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: s3\n  bucket: {bucket}\n  region: eu-west-1\n  endpoint: http://{HOST}\n  key_id: {{ env: FERRY_TEST_S3_KEY_ID }}\n  credential: {{ env: FERRY_TEST_S3_SECRET }}\ntasks:\n  - name: t\n    source: src\n    destination: dest\n    settings: {{ rules: posix }}\n"
    ));
}

fn tree(f: &Fixture) {
    f.file("src/a.txt", "alpha");
    f.file("src/deep/er/b.txt", "bravo");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    f.file("src/big.bin", &big);
    f.dir("src/empty");
}

/// The bucket through the test's own client.
fn store(bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("eu-west-1")
        .with_endpoint(format!("http://{HOST}"))
        .with_allow_http(true)
        .with_access_key_id(KEY_ID)
        .with_secret_access_key(SECRET)
        .build()
        .unwrap()
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn objects(bucket: &str) -> Vec<object_store::path::Path> {
    use futures_util::TryStreamExt as _;
    let store = store(bucket);
    block_on(async {
        store
            .list(None)
            .map_ok(|meta| meta.location)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    })
}

/// A round trip through S3 to a fresh destination is identical, and the round's prefix
/// is gone afterwards; split roles on one working folder too.
#[test]
fn a_round_through_s3_arrives_identical_and_leaves_nothing_behind() {
    if !moto() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    // A package above 16 MiB goes up as a multipart upload.
    let large = crate::harness::incompressible(20 << 20, 0x9E37_79B9_7F4A_7C15);
    f.file("src/large.bin", &large);
    let bucket = bucket("trip");
    s3_plan(&mut f, &bucket);
    f.ferry(&["run", "plan.yaml"]).assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert_eq!(objects(&bucket), Vec::<object_store::path::Path>::new());
    f.file("src/new.txt", "new in round 2");
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let staged = objects(&bucket);
    assert!(!staged.is_empty(), "the staged round is in the bucket");
    let note: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(f.path("state/p/t/rounds/R2/staged.json")).unwrap(),
    )
    .unwrap();
    let container = note["container"].as_str().unwrap();
    assert!(
        staged
            .iter()
            .all(|p| p.as_ref().starts_with(&format!("{container}/"))),
        "every object is under the round's prefix: {staged:?}"
    );
    f.ferry(&["run", "plan.yaml", "--stages", "import"])
        .assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));
    assert_eq!(objects(&bucket), Vec::<object_store::path::Path>::new());
}

/// A byte flipped in a staged object is refused with nothing of its package written;
/// the next round converges. The secret key is in no file, report or message.
#[test]
fn a_flipped_byte_is_refused_and_no_secret_is_written() {
    if !moto() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    let bucket = bucket("flip");
    s3_plan(&mut f, &bucket);
    let staged = f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"]);
    staged.assert_code(0);
    let store = store(&bucket);
    let object = objects(&bucket)[0].clone();
    block_on(async {
        let mut bytes = store
            .get(&object)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        store.put(&object, bytes.into()).await.unwrap();
    });
    let run = f.ferry(&["run", "plan.yaml", "--stages", "import"]);
    run.assert_code(1);
    assert!(run.stderr.contains("integrity"), "{}", run.stderr);
    let converged = f.ferry(&["run", "plan.yaml"]);
    converged.assert_code(0);
    assert_same_tree(&f.path("src"), &f.path("dest"));

    let mut texts = vec![
        staged.stderr.clone(),
        run.stderr.clone(),
        converged.stderr.clone(),
    ];
    texts.extend(crate::harness::file_texts(&f.path("state")));
    for text in &texts {
        assert!(
            !text.contains(SECRET),
            "the secret key was written: {text:.300}"
        );
    }
}

/// A bucket that is not there is refused before anything starts, with a message that
/// names the bucket and not the key; S3 keys with another kind are plan errors.
#[test]
fn a_missing_bucket_and_misplaced_settings_are_refused() {
    let mut f = Fixture::new();
    tree(&f);
    f.plan("version: 1\nname: p\nworking_folder: state\nstaging:\n  bucket: b-1\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let refused = f.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("belongs to `kind: s3`"),
        "{}",
        refused.stderr
    );
    f.plan("version: 1\nname: p\nworking_folder: state\nstaging:\n  kind: s3\n  bucket: Bad_Bucket\ntasks:\n  - name: t\n    source: src\n    destination: dest\n");
    let refused = f.ferry(&["validate", "plan.yaml"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("bucket name"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs `key_id`"),
        "{}",
        refused.stderr
    );
    if !moto() {
        return;
    }
    s3_plan(&mut f, "ferry-no-such-bucket-anywhere");
    let run = f.ferry(&["run", "plan.yaml"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("ferry-no-such-bucket-anywhere"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(SECRET));
    assert!(!f.path("dest").exists() || fs::read_dir(f.path("dest")).unwrap().next().is_none());
}

/// An object is never put over another: a second put of a name (a run killed after its
/// put and before its journal entry) leaves the first and counts as put.
#[test]
fn a_put_never_replaces_an_object() {
    if !moto() {
        return;
    }
    let bucket = bucket("twice");
    let secret = |name: &str, value: &str| {
        let path = std::env::temp_dir().join(format!("ferry-s3-{name}-{}", std::process::id()));
        fs::write(&path, value).unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        ferry::plan::Secret::File(path)
    };
    let plan_staging = ferry::plan::Staging {
        kind: ferry::plan::StagingKind::S3,
        path: "/nonexistent".into(),
        key_ttl: ferry::plan::Duration(Duration::from_secs(3600)),
        retention: ferry::plan::Duration(Duration::from_secs(86400 * 30)),
        azure: None,
        s3: Some(ferry::plan::S3Staging {
            bucket: bucket.clone(),
            region: "eu-west-1".into(),
            endpoint: Some(format!("http://{HOST}")),
            key_id: secret("id", KEY_ID),
            credential: secret("secret", SECRET),
        }),
    };
    let retries = ferry::plan::Retries {
        attempts: 2,
        backoff: ferry::plan::Duration(Duration::from_millis(100)),
    };
    let staging = ferry::staging::open(&plan_staging, retries).unwrap();
    staging.probe().unwrap();
    let container = staging.open("round-1").unwrap();
    let first = container
        .put("obj", &mut |w| w.write_all(b"first"))
        .unwrap();
    assert_eq!(first, 5);
    let again = container
        .put("obj", &mut |w| w.write_all(b"second!"))
        .unwrap();
    assert_eq!(again, 5, "the object already there counts");
    let mut back = String::new();
    container
        .get("obj")
        .unwrap()
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, "first");
    staging.discard("round-1").unwrap();
    assert!(!container.exists("obj").unwrap());
}

/// `ferry gc` lists the bucket's top-level prefixes: a round whose key file was lost
/// is deleted once it is older than `staging.retention`, and never before.
#[test]
fn gc_deletes_a_round_whose_key_is_gone() {
    if !moto() {
        return;
    }
    let mut f = Fixture::new();
    tree(&f);
    let bucket = bucket("gc-orphan");
    s3_plan(&mut f, &bucket);
    f.ferry(&["run", "plan.yaml", "--stages", "scan,package,upload"])
        .assert_code(0);
    let key = f.path("state/p/t/keys/R1.key");
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key).unwrap()).unwrap();
    let container = stored["container"].as_str().unwrap().to_string();
    fs::remove_file(&key).unwrap();
    let objects = |store: &object_store::aws::AmazonS3| {
        use futures_util::TryStreamExt as _;
        let prefix = object_store::path::Path::from(container.as_str());
        block_on(object_store::ObjectStore::list(store, Some(&prefix)).try_collect::<Vec<_>>())
            .unwrap()
            .len()
    };
    let store = store(&bucket);
    assert!(objects(&store) > 0);

    f.ferry(&["gc", "plan.yaml", "--yes"]).assert_code(0);
    assert!(objects(&store) > 0, "younger than the retention: kept");
    f.env("FERRY_TEST_CLOCK", &crate::gc::a_month_later());
    let deleted = f.ferry(&["gc", "plan.yaml", "--yes"]);
    deleted.assert_code(0);
    assert!(
        deleted
            .stderr
            .contains(&format!("staged data (container {container})")),
        "{}",
        deleted.stderr
    );
    assert_eq!(objects(&store), 0);
}
