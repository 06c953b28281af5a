//! `cairnd dev` on S3 through a fault proxy (tests/support/faultproxy.rs)
//! in front of moto: under each fault — S3 down, slow, answering 500 or
//! 503, resetting connections mid-request, losing the responses of writes
//! that happened — with submitters posting all along, the log stalls
//! rather than fails, and recovers when the fault ends. Throughout, the
//! `checkpoint` object (read from moto directly, not through the proxy)
//! and the served tree heads never move back; afterwards every leaf that
//! got a 200 is provable in the final head, every object in the bucket
//! verifies against it and the leaves rebuild its root, and a restarted
//! `cairnd` carries on from where it was. Stall and recovery times are
//! printed (measured, never asserted).

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::LogClient;
use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::{Hash, SigningKey};
use cairn_storage::{TileStore, TrustedHead};
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::compact::CompactRange;
use cairn_tlog::tile::parse_path;
use futures::TryStreamExt as _;
use support::faultproxy::{Fault, FaultProxy};
use support::moto::Moto;
use support::{Cairnd, free_port, scrape_metrics};

/// How long each fault lasts.
const FAULT: Duration = Duration::from_secs(3);

/// Longest wait for the log to publish a new head once a fault has ended,
/// and for anything else in this test.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

/// Concurrent submitters, each posting one leaf at a time.
const SUBMITTERS: usize = 4;

/// The proxy's delay in `slow`: well above a request's usual milliseconds,
/// below object_store's 10 s request timeout.
const SLOW: Duration = Duration::from_secs(2);

/// The proxy's delay in `stuck`: past object_store's request timeout
/// (`cairn_storage::S3_REQUEST_TIMEOUT`, 10 s).
const STUCK: Duration = Duration::from_secs(12);

/// What the submitters saw.
#[derive(Default)]
struct Submissions {
    /// Leaves that got a 200, in order.
    committed: Vec<Leaf>,
    /// Answers by status (`"transport"` for no answer).
    answers: BTreeMap<String, u64>,
    /// Answers that break the contract: 5xx without `Retry-After`, or any
    /// status other than 200, 202 and 503.
    violations: Vec<String>,
}

/// Most leaves one submitter has in flight (posted, no 200 yet).
const MAX_PENDING: usize = 16;

/// New leaves one submitter posts per round (a round ends when every post
/// of it has an answer).
const NEW_PER_ROUND: usize = 4;

/// Posts [`NEW_PER_ROUND`] new leaves of `key` every round until `stop`, and every leaf
/// without a 200 yet again (a 202 means the log has it, a 503 that it
/// refused it for now), until each has its 200.
async fn submit(
    base: String,
    key: SigningKey,
    tag: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Submissions>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let mut pending: Vec<(Hash, String)> = Vec::new();
    for i in 0.. {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && pending.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "submitter ran away"
        );
        for j in 0..NEW_PER_ROUND {
            if stopping || pending.len() >= MAX_PENDING {
                break;
            }
            let message = cairn_sigsum::crypto::hash(format!("fault {tag} {i} {j}\n").as_bytes());
            pending.push((message, AddLeafRequest::sign(&key, &message).to_ascii()));
        }
        // All of them at once, as independent clients would.
        let answers = futures::future::join_all(pending.iter().map(|(_, body)| {
            http.post(format!("{base}add-leaf"))
                .body(body.clone())
                .send()
        }))
        .await;
        let mut still = Vec::with_capacity(pending.len());
        {
            let mut s = seen.lock().unwrap();
            for ((message, body), answer) in pending.into_iter().zip(answers) {
                let status = match &answer {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(_) => "transport".to_owned(),
                };
                *s.answers.entry(status).or_default() += 1;
                match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        s.committed.push(Leaf::sign(&key, &message));
                        continue;
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {}
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        if r.headers().get("retry-after").is_none() {
                            s.violations.push("503 without Retry-After".into());
                        }
                    }
                    Ok(r) => s
                        .violations
                        .push(format!("add-leaf answered {}", r.status())),
                    // The frontend waits for the sequencer at most its own
                    // deadline; a client timeout is not a wrong answer.
                    Err(_) => {}
                }
                still.push((message, body));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `what` every 50 ms until `stop`, asserting the (size, root) it
/// returns never moves back or sideways; returns each change and when it
/// was seen.
async fn watch_heads<F, Fut>(
    what: &'static str,
    stop: Arc<AtomicBool>,
    mut read: F,
) -> Vec<(Instant, u64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<(u64, Hash)>>,
{
    let mut changes = Vec::new();
    let mut last: Option<(u64, Hash)> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Some((size, root)) = read().await {
            if let Some((old_size, old_root)) = last {
                assert!(
                    size >= old_size,
                    "{what} moved back from {old_size} to {size}"
                );
                assert!(
                    size > old_size || root == old_root,
                    "{what} changed its root at size {size}"
                );
            }
            if last.map(|(s, _)| s) != Some(size) {
                changes.push((Instant::now(), size));
            }
            last = Some((size, root));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    changes
}

/// The (size, root) of the bucket's checkpoint, read from moto directly.
async fn bucket_head(bucket: &TileStore) -> Option<(u64, Hash)> {
    // moto itself never fails here; a failed read is just skipped.
    let note = bucket.checkpoint().await.ok()??;
    let parsed = SignedCheckpoint::parse(&note).expect("the checkpoint parses");
    let c = parsed.checkpoint();
    Some((c.size, c.root))
}

async fn served_head(client: &LogClient) -> Option<(u64, Hash)> {
    let head = client.get_tree_head().await.ok()?;
    Some((head.tree_head().size, head.tree_head().root_hash))
}

/// Waits until the served tree head is larger than `size`; returns it.
async fn wait_past(client: &LogClient, size: u64) -> u64 {
    let started = Instant::now();
    loop {
        if let Some((now, _)) = served_head(client).await
            && now > size
        {
            return now;
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "no tree head past {size} within {RECOVERY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of every series of `name` whose labels contain `labels`.
fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every object under the shard's prefix verifies against `head`, the
/// leaves rebuild its root; returns the leaf hashes in order.
async fn verify_bucket(bucket: &TileStore, head: TrustedHead) -> Vec<Hash> {
    let prefix = object_store::path::Path::from(bucket.prefix());
    let objects: Vec<_> = bucket
        .object_store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .expect("list the bucket");
    let mut checked = 0;
    for meta in &objects {
        let key = meta
            .location
            .as_ref()
            .strip_prefix(&format!("{}/", bucket.prefix()))
            .expect("under the prefix")
            .to_owned();
        if key == "checkpoint" {
            continue;
        }
        let path = parse_path(&key).unwrap_or_else(|e| panic!("{key}: not a tile path: {e}"));
        let object = bucket
            .get_verified(path, head)
            .await
            .unwrap_or_else(|e| panic!("{key} does not verify against the checkpoint: {e}"))
            .unwrap_or_else(|| panic!("{key} listed but not found"));
        // Everything in the bucket is covered by the final checkpoint:
        // nothing was written beyond what was published.
        assert!(object.is_verified(), "{key} is beyond the final checkpoint");
        checked += 1;
    }
    assert!(checked > 0, "no tiles in the bucket");
    let mut hashes = Vec::new();
    let mut range = CompactRange::new();
    while (hashes.len() as u64) < head.size {
        let leaves = bucket
            .leaves(hashes.len() as u64, head.size, head)
            .await
            .expect("leaves verify");
        for leaf in leaves {
            let hash = cairn_tlog::leaf_hash(&leaf);
            range.append(hash).expect("append");
            hashes.push(hash);
        }
    }
    assert_eq!(
        range.root(),
        head.root,
        "the leaves do not rebuild the root"
    );
    hashes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_log_on_s3_stalls_under_each_fault_and_recovers_without_losing_a_leaf() {
    let test_started = Instant::now();
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(moto.addr()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let store_file = Moto::store_file(tmp.path(), &proxy.endpoint());
    let listen = free_port();
    let start = || {
        Cairnd::start_with(
            &dir,
            listen,
            &["--object-store".as_ref(), store_file.as_os_str()],
            // CAIRN_TEST_LOG=info shows the retries and publications.
            &std::env::var("CAIRN_TEST_LOG").unwrap_or_else(|_| "error".into()),
            Stdio::inherit(),
        )
    };
    let mut cairnd = start();
    cairnd.wait_ready().await;
    let base = cairnd.base_url();
    let client = LogClient::new(&base).expect("client");
    let bucket = moto.tiles(tmp.path());

    let stop_submitting = Arc::new(AtomicBool::new(false));
    let stop_watching = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Submissions::default()));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|tag| {
            tokio::spawn(submit(
                base.clone(),
                SigningKey::from_seed(&[0x70 + tag as u8; 32]),
                tag,
                Arc::clone(&stop_submitting),
                Arc::clone(&seen),
            ))
        })
        .collect();
    let checkpoints = tokio::spawn({
        let stop = Arc::clone(&stop_watching);
        let bucket = bucket.clone();
        async move { watch_heads("the bucket's checkpoint", stop, || bucket_head(&bucket)).await }
    });
    let heads = tokio::spawn({
        let stop = Arc::clone(&stop_watching);
        let client = client.clone();
        async move { watch_heads("the served tree head", stop, || served_head(&client)).await }
    });

    let errors_before = metric_sum(
        &scrape_metrics(&format!("http://{listen}")).await,
        "cairn_object_store_errors_total",
        "",
    );
    // Some traffic first, then each fault in turn.
    wait_past(&client, 8).await;
    let faults = [
        ("down", Fault::Down),
        ("slow", Fault::Slow(SLOW)),
        ("503", Fault::Status(503)),
        ("500", Fault::Status(500)),
        ("reset", Fault::Reset),
        ("lost write responses", Fault::LoseWriteResponses),
        // Requests held past object_store's 10 s request timeout, then
        // forwarded anyway: late writes landing after the client gave up.
        ("stuck past the timeout", Fault::Slow(STUCK)),
    ];
    let mut report = Vec::new();
    for (name, fault) in faults {
        let (size_before, _) = served_head(&client).await.expect("a head");
        proxy.set(fault);
        let fault_started = Instant::now();
        tokio::time::sleep(FAULT).await;
        if matches!(fault, Fault::LoseWriteResponses) {
            // Held until a lost response has met both kinds of write (the
            // checks after the loop): a checkpoint is written only when a
            // new head is cosigned, so a fixed window sometimes saw none.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let text = scrape_metrics(&format!("http://{listen}")).await;
                let met = |op: &str| {
                    metric_sum(
                        &text,
                        "cairn_object_store_operation_duration_seconds_count",
                        &format!("op=\"{op}\",outcome=\"conflict\""),
                    ) > 0.0
                };
                if met("put_create") && met("put_update") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let (size_during, _) = served_head(&client).await.expect("the frontend answers");
        proxy.set(Fault::Pass);
        let ended = Instant::now();
        let recovered_to = wait_past(&client, size_during).await;
        let line = format!(
            "{name:>22}: head {size_before} -> {size_during} during {:?}, -> {recovered_to} \
             {:?} after it ended",
            ended - fault_started,
            ended.elapsed()
        );
        eprintln!("{line}");
        report.push(line);
    }

    // The faults show in the object store metrics, by operation and cause.
    let text = scrape_metrics(&format!("http://{listen}")).await;
    let errors_after = metric_sum(&text, "cairn_object_store_errors_total", "shard=\"dev\"");
    assert!(
        errors_after > errors_before,
        "no object store errors counted: {errors_before} -> {errors_after}\n{text}"
    );
    assert!(
        metric_sum(
            &text,
            "cairn_object_store_operation_duration_seconds_count",
            "op=\"put_create\",outcome=\"ok\""
        ) > 0.0,
        "{text}"
    );
    // A lost response's retry met the write it had made, both for tiles
    // (create-only) and for the checkpoint's compare-and-swap, and the log
    // carried on (the checks below): neither was taken for a fork.
    for op in ["put_create", "put_update"] {
        assert!(
            metric_sum(
                &text,
                "cairn_object_store_operation_duration_seconds_count",
                &format!("op=\"{op}\",outcome=\"conflict\"")
            ) > 0.0,
            "lost write responses made no {op} retry meet its own write\n{text}"
        );
    }
    let error_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("cairn_object_store_errors_total{")
                || (l.starts_with("cairn_object_store_operation_duration_seconds_count{")
                    && l.contains("outcome=\"conflict\""))
        })
        .collect();

    // Quiesce: the submitters finish the leaf they are on, then every head
    // and checkpoint settles.
    stop_submitting.store(true, Ordering::Relaxed);
    for s in submitters {
        tokio::time::timeout(RECOVERY_DEADLINE, s)
            .await
            .expect("queued leaves get a 200 after the faults")
            .expect("submitter");
    }
    let committed = seen.lock().unwrap().committed.len() as u64;
    let settled = Instant::now();
    let final_head = loop {
        let served = served_head(&client).await.expect("a head");
        let stored = bucket_head(&bucket).await.expect("a checkpoint");
        if served == stored && served.0 >= committed {
            break served;
        }
        assert!(
            settled.elapsed() < RECOVERY_DEADLINE,
            "served {served:?} and stored {stored:?} heads do not settle"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop_watching.store(true, Ordering::Relaxed);
    let checkpoint_changes = checkpoints.await.expect("checkpoint watcher");
    let head_changes = heads.await.expect("head watcher");

    // Every 200'd leaf is in the final tree, by inclusion proof and in the
    // bucket's verified bundles.
    let head = TrustedHead::new(final_head.0, final_head.1);
    let in_bucket: std::collections::HashSet<Hash> =
        verify_bucket(&bucket, head).await.into_iter().collect();
    let served = client.get_tree_head().await.expect("get-tree-head");
    let submissions = std::mem::take(&mut *seen.lock().unwrap());
    for leaf in &submissions.committed {
        let hash = leaf.leaf_hash();
        assert!(
            in_bucket.contains(&hash),
            "a 200'd leaf is not in the bucket"
        );
        let proof = client
            .get_inclusion_proof(final_head.0, &hash)
            .await
            .expect("a 200'd leaf has an inclusion proof");
        proof
            .verify(&hash, served.tree_head())
            .expect("inclusion proof verifies");
    }
    assert!(
        submissions.violations.is_empty(),
        "add-leaf broke its contract: {:?}",
        submissions.violations
    );

    // A restart carries on from the same state.
    cairnd.stop();
    let mut cairnd = start();
    cairnd.wait_ready().await;
    let (size_after_restart, root_after_restart) = served_head(&client).await.expect("a head");
    assert!(size_after_restart >= final_head.0);
    if size_after_restart == final_head.0 {
        assert_eq!(root_after_restart, final_head.1);
    }
    let key = SigningKey::from_seed(&[0x7f; 32]);
    let message = cairn_sigsum::crypto::hash(b"after the restart\n");
    let body = AddLeafRequest::sign(&key, &message).to_ascii();
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http
        .post(format!("{base}add-leaf"))
        .body(body.clone())
        .send()
        .await
        .map(|r| r.status())
        .ok()
        != Some(reqwest::StatusCode::OK)
    {
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "no 200 after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grown = wait_past(&client, final_head.0).await;
    let leaf = Leaf::sign(&key, &message);
    let proof_head = client.get_tree_head().await.expect("get-tree-head");
    client
        .get_inclusion_proof(proof_head.tree_head().size, &leaf.leaf_hash())
        .await
        .expect("proof after restart")
        .verify(&leaf.leaf_hash(), proof_head.tree_head())
        .expect("verifies");
    let after = bucket_head(&bucket).await.expect("checkpoint");
    assert!(after.0 >= final_head.0, "the checkpoint moved back");
    cairnd.stop();

    eprintln!("S3 faults, {FAULT:?} each, {SUBMITTERS} submitters:");
    for line in &report {
        eprintln!("  {line}");
    }
    eprintln!(
        "  leaves with a 200: {}; final head {}; after restart {grown}",
        submissions.committed.len(),
        final_head.0
    );
    eprintln!("  add-leaf answers: {:?}", submissions.answers);
    eprintln!(
        "  checkpoint changes seen in the bucket: {}; served head changes: {}",
        checkpoint_changes.len(),
        head_changes.len()
    );
    let stats = proxy.stats();
    eprintln!(
        "  proxy: forwarded {} refused {} 5xx {} reset {} lost responses {}",
        stats.forwarded.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.failed_with_status.load(Ordering::Relaxed),
        stats.reset.load(Ordering::Relaxed),
        stats.lost_responses.load(Ordering::Relaxed)
    );
    eprintln!("  object store errors and conflicts: {error_lines:#?}");
    eprintln!("  whole test: {:?}", test_started.elapsed());
}
