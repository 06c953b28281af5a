//! Fail closed: `cairnd dev` started on state older than what it published,
//! or on a damaged database, refuses to acknowledge, sign or serve, says
//! why, and leaves what was published untouched.
//!
//! Each test builds a log with the real binary, takes a copy of part of its
//! data directory, lets the log grow and publish more, puts the old copy
//! back (the stale-backup restore that ended Venafi's CT log), and starts
//! it again.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::{Hash, SigningKey};
use cairn_tlog::checkpoint::SignedCheckpoint;
use support::{Cairnd, free_port};

const DEADLINE: Duration = Duration::from_secs(60);

fn message(tag: &str, i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn fail-closed {tag} {i}\n").as_bytes())
}

/// Submits `n` leaves tagged `tag` and waits for their proofs.
async fn submit(policy: &Policy, tag: &str, n: usize) {
    let submitter = Submitter::new(
        policy.clone(),
        SigningKey::from_seed(&[0x5a; 32]),
        SubmitConfig {
            concurrency: 8,
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..n).map(|i| message(tag, i)).collect();
    for (i, proof) in submitter
        .submit_and_prove(&messages)
        .await
        .into_iter()
        .enumerate()
    {
        proof.unwrap_or_else(|e| panic!("{tag} {i}: {e}"));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn replace_dir(dir: &Path, with: &Path) {
    std::fs::remove_dir_all(dir).expect("remove");
    copy_dir(with, dir);
}

/// The size of the `checkpoint` object on disk.
fn checkpoint_size(data: &Path) -> u64 {
    let bytes = std::fs::read(data.join("tiles/dev/checkpoint")).expect("checkpoint object");
    SignedCheckpoint::parse(&bytes)
        .expect("checkpoint parses")
        .checkpoint()
        .size
}

/// A log with `first` leaves published when `snapshot` is taken of
/// `part` (a path under the data directory), then `first + more`.
struct Grown {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    listen: SocketAddr,
    snapshot: PathBuf,
}

async fn grow(part: &str, first: usize, more: usize) -> Grown {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let snapshot = tmp.path().join("snapshot");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    submit(&policy, "first", first).await;
    cairnd.stop();
    copy_dir(&data.join(part), &snapshot);

    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    submit(&policy, "more", more).await;
    cairnd.stop();
    assert_eq!(checkpoint_size(&data), (first + more) as u64);
    Grown {
        _tmp: tmp,
        data,
        listen,
        snapshot,
    }
}

/// Starts `cairnd dev` on `data` with its log in `log`, and waits until
/// `/readyz` reports the shard halted; returns the readiness body. Unless
/// `probe` (the witnesses are asked after the start), it must never have
/// been ready meanwhile.
async fn start_halted(
    data: &Path,
    listen: SocketAddr,
    log: &Path,
    probe: bool,
) -> (Cairnd, String) {
    let stderr = std::fs::File::create(log).expect("log file");
    let cairnd = Cairnd::start_with(data, listen, &[], "info", Stdio::from(stderr));
    let url = format!("http://{listen}/readyz");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if !probe {
                assert_ne!(
                    status,
                    reqwest::StatusCode::OK,
                    "ready on stale state: {body}"
                );
            }
            if body.contains("HALTED") {
                return (cairnd, body);
            }
        }
        assert!(
            Instant::now() < deadline,
            "cairnd did not halt; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing is acknowledged, signed or served from the halted log, and the
/// published checkpoint is untouched.
async fn assert_fails_closed(data: &Path, listen: SocketAddr, published: u64) {
    let base = format!("http://{listen}/dev/");
    let client = LogClient::new(&base).expect("client");
    let head = client.get_tree_head().await;
    assert!(head.is_err(), "a halted log served {head:?}");
    let key = SigningKey::from_seed(&[0x5a; 32]);
    let request = cairn_sigsum::api::AddLeafRequest::sign(&key, &message("after", 0)).to_ascii();
    let response = reqwest::Client::new()
        .post(format!("{base}add-leaf"))
        .body(request)
        .send()
        .await
        .expect("add-leaf");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "add-leaf on a halted log"
    );
    assert_eq!(checkpoint_size(data), published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_raft_database_put_back_halts_the_log_instead_of_rolling_it_back() {
    let grown = grow("raft", 5, 7).await;
    replace_dir(&grown.data.join("raft"), &grown.snapshot);
    let log = grown.data.join("../halted.log");
    let (cairnd, body) = start_halted(&grown.data, grown.listen, &log, false).await;
    // Caught by the node's own record of what it signed.
    assert!(body.contains("signed tree size 12"), "{body}");
    assert!(body.contains("integrated size 5"), "{body}");
    assert_fails_closed(&grown.data, grown.listen, 12).await;
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_raft_database_without_the_signed_record_is_caught_by_the_checkpoint() {
    let grown = grow("raft", 5, 7).await;
    replace_dir(&grown.data.join("raft"), &grown.snapshot);
    std::fs::remove_file(grown.data.join("dev.signed-head")).expect("remove the record");
    let log = grown.data.join("../halted.log");
    let (cairnd, body) = start_halted(&grown.data, grown.listen, &log, false).await;
    assert!(
        body.contains("published checkpoint has tree size 12"),
        "{body}"
    );
    assert_fails_closed(&grown.data, grown.listen, 12).await;
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_witness_that_remembers_a_larger_tree_halts_a_restored_log() {
    // Everything but the embedded witness's state goes back to size 5: the
    // record and the checkpoint are as old as the database, and only the
    // witness (as any external witness would) knows about size 12.
    let grown = grow(".", 5, 7).await;
    let witness_state = grown.data.join("witness");
    let newer_witness = grown.data.join("../witness-newer");
    copy_dir(&witness_state, &newer_witness);
    replace_dir(&grown.data, &grown.snapshot);
    replace_dir(&witness_state, &newer_witness);
    assert_eq!(checkpoint_size(&grown.data), 5);
    let log = grown.data.join("../halted.log");
    let (cairnd, body) = start_halted(&grown.data, grown.listen, &log, true).await;
    assert!(body.contains("cosigned tree size 12"), "{body}");
    assert_fails_closed(&grown.data, grown.listen, 5).await;
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_object_the_log_did_not_sign_halts_it_and_stays() {
    let grown = grow("tiles", 3, 1).await;
    // A larger checkpoint for the log's origin, signed by another key.
    let path = grown.data.join("tiles/dev/checkpoint");
    let genuine = std::fs::read_to_string(&path).expect("checkpoint");
    let origin = genuine.lines().next().expect("origin").to_owned();
    let forger = cairn_tlog::note::Ed25519NoteSigner::new(&origin, &[0x66; 32]).expect("signer");
    let body = format!("{origin}\n1000\n{}\n", "A".repeat(43) + "=");
    let forged = forger.sign_note(&body).expect("sign").to_bytes();
    std::fs::write(&path, &forged).expect("write forged checkpoint");
    let log = grown.data.join("../halted.log");
    let (cairnd, body) = start_halted(&grown.data, grown.listen, &log, false).await;
    assert!(body.contains("did not sign"), "{body}");
    assert_eq!(std::fs::read(&path).expect("checkpoint"), forged);
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_raft_wal_stops_the_start_instead_of_dropping_its_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    submit(&cairnd.policy(), "wal", 20).await;
    // SIGKILL: nothing is flushed at exit, the WAL holds the recent writes.
    drop(cairnd);
    let raft = data.join("raft/dev");
    let wal = std::fs::read_dir(&raft)
        .expect("raft dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a WAL file");
    let mut bytes = std::fs::read(&wal).expect("wal");
    assert!(bytes.len() > 1024, "WAL of {} bytes", bytes.len());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&wal, bytes).expect("write wal");

    let log = tmp.path().join("corrupt.log");
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairnd"))
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args(["--listen", &listen.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "cairnd started on a corrupt WAL; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "exit status {status}; log:\n{text}");
    assert!(text.to_lowercase().contains("corrupt"), "{text}");
}

/// Whether this process may mount a tmpfs (root, as in CI).
fn can_mount() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `path` with a ballast file until it is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0x42u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_acknowledging_and_nothing_acknowledged_is_lost() {
    if !can_mount() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let _fs = Tmpfs::mount(&tmp.path().join("disk"), "64m");
    let data = tmp.path().join("disk/data");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    submit(&policy, "before", 5).await;

    let ballast = tmp.path().join("disk/ballast");
    fill(&ballast);
    // Submit until the log refuses; remember what it acknowledged.
    let base = format!("http://{listen}/dev/");
    let http = reqwest::Client::new();
    let key = SigningKey::from_seed(&[0x5a; 32]);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let deadline = Instant::now() + DEADLINE;
    let mut i = 0;
    while refused < 5 && Instant::now() < deadline {
        let m = message("full", i);
        i += 1;
        let body = cairn_sigsum::api::AddLeafRequest::sign(&key, &m).to_ascii();
        match http.post(format!("{base}add-leaf")).body(body).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => acknowledged.push(m),
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    r.headers().contains_key("retry-after"),
                    "503 without Retry-After"
                );
                refused += 1;
            }
            // 202: accepted, not yet published; an error: the node exited.
            Ok(_) => {}
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "disk full: {} acknowledged, {refused} refused, {} submissions in all",
        acknowledged.len(),
        i
    );
    assert!(refused >= 5, "a full disk never refused a submission");
    // Not ready (or gone, for a supervisor to restart).
    let ready = reqwest::get(format!("http://{listen}/readyz")).await;
    assert!(
        ready.is_err() || ready.is_ok_and(|r| r.status() != reqwest::StatusCode::OK),
        "/readyz is 200 on a full disk"
    );

    std::fs::remove_file(&ballast).expect("free space");
    // Either it resumes by itself, or it exited non-zero (the Raft log could
    // not be written) for a supervisor to restart it.
    let cairnd = match cairnd.wait_ready_or_exit().await {
        None => cairnd,
        Some(status) => {
            assert!(!status.success(), "cairnd exited 0 on a full disk");
            eprintln!("disk full: cairnd exited ({status}); restarting it");
            let mut restarted = Cairnd::start(&data, listen);
            restarted.wait_ready().await;
            restarted
        }
    };
    submit(&policy, "after", 3).await;
    // Every leaf acknowledged before or during the outage is in the tree,
    // without being submitted again.
    let client = LogClient::new(&base).expect("client");
    let head = client.get_tree_head().await.expect("get-tree-head");
    let size = head.tree_head().size;
    for (n, m) in acknowledged.iter().enumerate() {
        let leaf_hash = cairn_sigsum::leaf::Leaf::sign(&key, m).leaf_hash();
        client
            .get_inclusion_proof(size, &leaf_hash)
            .await
            .unwrap_or_else(|e| {
                panic!("acknowledged leaf {n} is not in the tree of size {size}: {e}")
            });
    }
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_tiles_put_back_are_rebuilt_from_the_committed_leaves() {
    let grown = grow("tiles", 5, 7).await;
    replace_dir(&grown.data.join("tiles"), &grown.snapshot);
    assert_eq!(checkpoint_size(&grown.data), 5);
    let mut cairnd = Cairnd::start(&grown.data, grown.listen);
    cairnd.wait_ready().await;
    // Tiles and checkpoint are back at size 12, and every leaf proves.
    let client = LogClient::new(&cairnd.base_url()).expect("client");
    let head = client.get_tree_head().await.expect("get-tree-head");
    assert_eq!(head.tree_head().size, 12);
    let deadline = Instant::now() + DEADLINE;
    while checkpoint_size(&grown.data) != 12 {
        assert!(Instant::now() < deadline, "checkpoint not re-written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leaves = client.get_leaves(0, 12).await.expect("get-leaves");
    assert_eq!(leaves.len(), 12);
    for leaf in &leaves {
        client
            .get_inclusion_proof(12, &leaf.leaf_hash())
            .await
            .expect("proof")
            .verify(&leaf.leaf_hash(), head.tree_head())
            .expect("verifies");
    }
    submit(&cairnd.policy(), "after", 2).await;
    cairnd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_byte_in_a_full_tile_is_never_served_and_is_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let listen = free_port();
    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    submit(&policy, "tiles", 300).await;
    cairnd.stop();
    // One flipped bit in the first full level-0 tile and entry bundle.
    for object in ["tiles/dev/tile/0/000", "tiles/dev/tile/entries/000"] {
        let path = data.join(object);
        let mut bytes = std::fs::read(&path).expect("full tile");
        bytes[100] ^= 0x01;
        std::fs::write(&path, bytes).expect("write");
    }
    let mut cairnd = Cairnd::start(&data, listen);
    cairnd.wait_ready().await;
    let base = cairnd.base_url();
    let client = LogClient::new(&base).expect("client");
    let head = client.get_tree_head().await.expect("get-tree-head");
    let size = head.tree_head().size;
    let key = SigningKey::from_seed(&[0x5a; 32]);
    let leaf_hash = cairn_sigsum::leaf::Leaf::sign(&key, &message("tiles", 3)).leaf_hash();
    let http = reqwest::Client::new();
    for path in [
        format!("get-inclusion-proof/{size}/{}", hex::encode(leaf_hash)),
        "get-leaves/0/10".to_owned(),
        "tile/0/000".to_owned(),
        "tile/entries/000".to_owned(),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.expect("get");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(
            status,
            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {body}"
        );
        assert!(
            body.contains("tile/"),
            "{path}: the body names no object: {body}"
        );
    }
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("cairn_storage_corrupt_objects_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "corrupt reads not counted:\n{metrics}");
    cairnd.stop();
}
