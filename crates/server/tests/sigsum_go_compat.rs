//! sigsum-go v0.14.0's clients against a real `cairnd dev` on loopback.
//!
//! sigsum-go's tools cannot be built here, so `support/sigsum_go.rs`
//! reproduces their algorithms step by step (`sigsum-submit`'s
//! `SubmitLeafRequests`, `sigsum-monitor`'s `MonitorLog`, the token header;
//! see `docs/compatibility.md`). These tests then use the log the way those
//! tools do and check every proof offline twice: with sigsum-go's
//! `SigsumProof.Verify` steps, and by reading the proof file sigsum-submit
//! would write with Cairn's verifier (what `cairn verify` does).
//!
//! Issue 10: `sigsum-submit` of a second file failed with `Inclusion proof
//! invalid: invalid proof: root mismatch` when add-leaf answered 200 while
//! get-tree-head still served the size-1 head: for size 1 sigsum-go asks
//! for no proof and compares the leaf hash with the root, and that failure
//! is fatal. `sigsum_go_submits_twenty_files_back_to_back_...` is that
//! scenario.

mod support;

#[path = "support/sigsum_go.rs"]
mod sigsum_go;

#[path = "../../client/tests/fake_dns/mod.rs"]
mod fake_dns;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use cairn_sigsum::policy::Policy;
use cairn_sigsum::{PublicKey, SigningKey};
use fake_dns::{Entry, FakeDns};
use sigsum_go::{
    ClientError, CosignedTreeHead, Event, Hash, LeafRequest, LogClient, MonitorConfig,
    MonitorRecord, MonitorState, MonitoringLogClient, SigsumProof, SubmitConfig, SubmitRun,
    TokenConfig, submit_leaf_requests,
};
use support::{Cairnd, free_port};
use tokio::time::Instant;

/// `sigsum-submit --timeout`: how long one invocation may take.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a test waits for the log to publish leaves it posted itself.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);
/// The whole of one test, start and stop of `cairnd dev` included.
const TEST_DEADLINE: Duration = Duration::from_secs(420);

const DOMAIN: &str = "example.org";

/// A fresh `cairnd dev` with its policy, read as sigsum-submit reads
/// `cairn-data/policy`.
struct DevLog {
    cairnd: Cairnd,
    policy: Policy,
    log_key: PublicKey,
    url: String,
    _tmp: tempfile::TempDir,
}

impl DevLog {
    async fn start(extra: &[&OsStr]) -> DevLog {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cairnd = Cairnd::start_with(
            &tmp.path().join("data"),
            free_port(),
            extra,
            "warn",
            Stdio::inherit(),
        );
        cairnd.wait_ready().await;
        let policy = cairnd.policy();
        let log_key = cairnd.log_key();
        let url = policy.logs()[0]
            .url()
            .and_then(|u| u.as_str())
            .expect("the dev policy gives the log's URL")
            .to_owned();
        DevLog {
            cairnd,
            policy,
            log_key,
            url,
            _tmp: tmp,
        }
    }

    /// `sigsum-submit -p cairn-data/policy --timeout 60s`.
    fn submit_config(&self) -> SubmitConfig {
        SubmitConfig {
            timeout: SUBMIT_TIMEOUT,
            ..SubmitConfig::new(self.policy.clone())
        }
    }

    fn client(&self) -> LogClient {
        LogClient::new(&self.url, "cairn compatibility test")
    }

    fn monitor(&self) -> MonitoringLogClient {
        MonitoringLogClient::new(self.log_key, &self.url)
    }

    fn stop(self) {
        self.cairnd.stop();
    }
}

/// Fails the test instead of letting it hang.
async fn within_deadline(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_DEADLINE:?}"));
}

/// The message `sigsum-submit -k KEY FILE` signs for a file with these
/// contents.
fn file_message(name: &str, i: usize) -> Hash {
    sigsum_go::message_for_file(format!("{name} release artifact {i}\n").as_bytes())
}

fn leaf_hash(request: &LeafRequest) -> Hash {
    request.verify().expect("valid request").leaf_hash()
}

/// The steps of a submission, for failure messages.
fn describe(events: &[Event]) -> String {
    let result = |r: &Result<u64, ClientError>| match r {
        Ok(n) => n.to_string(),
        Err(e) => format!("error {e}"),
    };
    events
        .iter()
        .map(|e| match e {
            Event::AddLeaf {
                request,
                result: Ok(true),
            } => format!("add-leaf #{request} 200"),
            Event::AddLeaf {
                request,
                result: Ok(false),
            } => format!("add-leaf #{request} 202"),
            Event::AddLeaf {
                request,
                result: Err(e),
            } => format!("add-leaf #{request} error {e}"),
            Event::GetTreeHead { result: r } => format!("get-tree-head size {}", result(r)),
            Event::HeadRejected { size, reason } => format!("head {size} rejected: {reason}"),
            Event::InclusionProof { size, result: r } => {
                format!("inclusion proof at size {size}: leaf index {}", result(r))
            }
            Event::Sleep => "sleep".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one proof of a one-file `sigsum-submit`, or a panic with
/// sigsum-go's error and every step that led to it.
fn one_proof(run: SubmitRun, what: &str) -> SigsumProof {
    match run.result {
        Ok(mut proofs) => {
            assert_eq!(proofs.len(), 1, "{what}: one proof per file");
            proofs.pop().expect("one proof")
        }
        Err(e) => panic!(
            "{what}: Submit failed: {e}\n  steps: {}",
            describe(&run.events)
        ),
    }
}

/// Checks `proof` as sigsum-go's `SigsumProof.Verify` does, and checks the
/// proof file sigsum-submit would write for it with Cairn's offline
/// verifier.
fn verify_offline(proof: &SigsumProof, message: &Hash, submitter: &PublicKey, policy: &Policy) {
    let keys = HashMap::from([(submitter.key_hash().0, *submitter)]);
    proof
        .verify(message, &keys, policy)
        .expect("the proof verifies as sigsum-go verifies it");
    let file = proof.to_ascii();
    let parsed = cairn_sigsum::proof::SigsumProof::parse(file.as_bytes())
        .unwrap_or_else(|e| panic!("Cairn reads sigsum-submit's proof file: {e}\n{file}"));
    parsed
        .verify(message, &[*submitter], policy)
        .unwrap_or_else(|e| panic!("Cairn's verifier accepts the proof file: {e}\n{file}"));
}

/// Polls get-tree-head until the published size reaches `size`.
async fn wait_published(client: &LogClient, size: u64) -> CosignedTreeHead {
    let deadline = Instant::now() + PUBLISH_DEADLINE;
    loop {
        let head = client.get_tree_head(deadline).await;
        if let Ok(head) = &head
            && head.tree_head.size >= size
        {
            return head.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the log did not publish size {size} within {PUBLISH_DEADLINE:?} (last: {head:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts add-leaf once, as `sigsum-submit`'s first step does, requiring
/// 200 or 202.
async fn post(client: &LogClient, request: &LeafRequest) {
    let deadline = Instant::now() + sigsum_go::DEFAULT_REQUEST_TIMEOUT;
    client
        .add_leaf(request, None, deadline)
        .await
        .unwrap_or_else(|e| panic!("add-leaf: {e}"));
}

/// One `MonitorLog` iteration that must leave the monitor caught up with
/// the head it saw, without alerts.
async fn monitor_pass(
    monitor: &MonitoringLogClient,
    state: &mut MonitorState,
    config: &MonitorConfig,
    record: &mut MonitorRecord,
) {
    monitor.monitor_pass(state, config, record).await;
    assert!(
        record.alerts.is_empty(),
        "monitor alerts: {:?}",
        record.alerts
    );
    assert_eq!(
        state.next_leaf_index, state.tree_head.size,
        "the monitor processed every leaf of its head"
    );
}

/// (a) Issue 10: `sigsum-submit -p policy -k key fileN` twenty times in a
/// row, with no pause between invocations. Each must end with a proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigsum_go_submits_twenty_files_back_to_back_each_with_a_proof_that_verifies() {
    within_deadline(async {
        let log = DevLog::start(&[]).await;
        let key = SigningKey::from_seed(&[0x61; 32]);
        let config = log.submit_config();
        for i in 0..20 {
            let message = file_message("sequential", i);
            let run = submit_leaf_requests(&config, &[LeafRequest::sign(&key, &message)]).await;
            let proof = one_proof(run, &format!("file {} of 20", i + 1));
            verify_offline(&proof, &message, &key.public_key(), &log.policy);
            assert!(
                proof.tree_head.tree_head.size > i as u64,
                "file {}: the head holds the files before it too",
                i + 1
            );
        }
        log.stop();
    })
    .await;
}

/// (b) Eight `sigsum-submit` users at once, each submitting five files one
/// invocation after the other; then a monitor pass sees all forty leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_sigsum_go_submitters_get_verified_proofs_for_all_forty_files() {
    const SUBMITTERS: u8 = 8;
    const FILES: usize = 5;
    within_deadline(async {
        let log = DevLog::start(&[]).await;
        let mut tasks = Vec::new();
        for s in 0..SUBMITTERS {
            let config = log.submit_config();
            tasks.push(tokio::spawn(async move {
                let key = SigningKey::from_seed(&[0x80 + s; 32]);
                let mut done = Vec::new();
                for f in 0..FILES {
                    let message = file_message(&format!("submitter {s}"), f);
                    let request = LeafRequest::sign(&key, &message);
                    let run = submit_leaf_requests(&config, &[request]).await;
                    match run.result {
                        Ok(mut proofs) => {
                            done.push((message, request, proofs.pop().expect("one proof")));
                        }
                        Err(e) => {
                            return Err(format!(
                                "submitter {s}, file {}: Submit failed: {e}\n  steps: {}",
                                f + 1,
                                describe(&run.events)
                            ));
                        }
                    }
                }
                Ok((key.public_key(), done))
            }));
        }
        let mut failures = Vec::new();
        let mut expected = HashSet::new();
        for task in tasks {
            match task.await.expect("submitter task") {
                Ok((key, done)) => {
                    for (message, request, proof) in done {
                        verify_offline(&proof, &message, &key, &log.policy);
                        expected.insert(leaf_hash(&request));
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {SUBMITTERS} submitters failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert_eq!(expected.len(), usize::from(SUBMITTERS) * FILES);

        // Every proof came from a head holding its leaf, so the head served
        // now holds all forty.
        let (mut state, mut record) = (MonitorState::default(), MonitorRecord::default());
        monitor_pass(
            &log.monitor(),
            &mut state,
            &MonitorConfig::default(),
            &mut record,
        )
        .await;
        let seen: HashSet<Hash> = record.leaves.iter().map(|(_, l)| l.leaf_hash()).collect();
        assert_eq!(
            seen, expected,
            "the monitor sees exactly the submitted leaves"
        );
        assert_eq!(record.processed, expected.len() as u64);
        log.stop();
    })
    .await;
}

/// (c) Running `sigsum-submit` again for a file whose leaf is already
/// published: the first add-leaf answers 200 (not 202), the proof is for
/// the leaf already in the log, and the log does not grow a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitting_a_published_leaf_answers_200_at_once_and_proves_the_same_leaf() {
    within_deadline(async {
        let log = DevLog::start(&[]).await;
        let client = log.client();
        let key = SigningKey::from_seed(&[0x63; 32]);
        let requests: Vec<(Hash, LeafRequest)> = (0..5)
            .map(|i| {
                let message = file_message("resubmitted", i);
                (message, LeafRequest::sign(&key, &message))
            })
            .collect();
        for (_, request) in &requests {
            post(&client, request).await;
        }
        let head = wait_published(&client, 5).await;
        assert_eq!(head.tree_head.size, 5);
        let logged = client
            .get_leaves(0, 5, Instant::now() + PUBLISH_DEADLINE)
            .await
            .expect("get-leaves");
        let (message, request) = requests[2];
        let index = logged
            .iter()
            .position(|l| l.leaf_hash() == leaf_hash(&request))
            .expect("the leaf is logged") as u64;

        // The second `sigsum-submit` of the same file signs the same leaf
        // (Ed25519 is deterministic).
        let again = LeafRequest::sign(&key, &message);
        assert_eq!(again, request);
        let run = submit_leaf_requests(&log.submit_config(), &[again]).await;
        assert_eq!(
            run.events.first(),
            Some(&Event::AddLeaf {
                request: 0,
                result: Ok(true)
            }),
            "the first add-leaf of a published leaf answers 200; steps: {}",
            describe(&run.events)
        );
        let proof = one_proof(run, "resubmission");
        verify_offline(&proof, &message, &key.public_key(), &log.policy);
        assert_eq!(
            proof.inclusion.leaf_index, index,
            "the proof is for the logged leaf"
        );

        // A new leaf posted after the resubmission's 200: had the duplicate
        // been appended, it would be in every head holding the new leaf.
        let sentinel = LeafRequest::sign(&key, &file_message("sentinel", 0));
        post(&client, &sentinel).await;
        let head = wait_published(&client, 6).await;
        let logged = client
            .get_leaves(0, head.tree_head.size, Instant::now() + PUBLISH_DEADLINE)
            .await
            .expect("get-leaves");
        assert_eq!(
            logged.len(),
            6,
            "five leaves and the sentinel, no duplicate"
        );
        assert!(logged.iter().any(|l| l.leaf_hash() == leaf_hash(&sentinel)));
        log.stop();
    })
    .await;
}

/// (d) `sigsum-monitor`'s walk over a growing log: one monitor with the
/// default batch size and all keys, one with batches of 3 (ranges checked
/// with start and end proofs) that follows one submitter key. Between
/// passes the log grows in rounds; each new head must be consistent with
/// the last, and every leaf must be seen once, at its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigsum_go_monitor_walk_sees_every_leaf_once_under_consistent_heads() {
    within_deadline(async {
        let log = DevLog::start(&[]).await;
        let client = log.client();
        let followed = SigningKey::from_seed(&[0x64; 32]);
        let other = SigningKey::from_seed(&[0x65; 32]);
        let monitor = log.monitor();
        let all = MonitorConfig::default();
        let small = MonitorConfig {
            batch_size: 3,
            submit_keys: Some(HashMap::from([(
                followed.public_key().key_hash().0,
                followed.public_key(),
            )])),
            ..MonitorConfig::default()
        };
        let (mut all_state, mut all_record) = (MonitorState::default(), MonitorRecord::default());
        let (mut small_state, mut small_record) =
            (MonitorState::default(), MonitorRecord::default());

        // The empty log's head: nothing new, nothing to fetch.
        monitor_pass(&monitor, &mut all_state, &all, &mut all_record).await;
        monitor_pass(&monitor, &mut small_state, &small, &mut small_record).await;
        assert!(all_record.tree_heads.is_empty() && all_record.leaves.is_empty());

        let mut posted: HashMap<Hash, bool> = HashMap::new(); // leaf hash -> by `followed`
        let mut total = 0;
        for (round, count) in [1, 2, 6, 9].into_iter().enumerate() {
            for i in 0..count {
                let by_followed = (total + i) % 3 != 2;
                let key = if by_followed { &followed } else { &other };
                let request = LeafRequest::sign(key, &file_message(&format!("round {round}"), i));
                post(&client, &request).await;
                posted.insert(leaf_hash(&request), by_followed);
            }
            total += count;
            wait_published(&client, total as u64).await;
            monitor_pass(&monitor, &mut all_state, &all, &mut all_record).await;
            monitor_pass(&monitor, &mut small_state, &small, &mut small_record).await;
            assert_eq!(all_state.tree_head.size, total as u64, "round {round}");
            assert_eq!(small_state.tree_head, all_state.tree_head, "round {round}");
        }

        let indices: Vec<u64> = all_record.leaves.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, (0..total as u64).collect::<Vec<_>>());
        let seen: HashSet<Hash> = all_record
            .leaves
            .iter()
            .map(|(_, l)| l.leaf_hash())
            .collect();
        assert_eq!(seen, posted.keys().copied().collect::<HashSet<_>>());
        let followed_leaves: Vec<(u64, Hash)> = all_record
            .leaves
            .iter()
            .filter(|(_, l)| posted[&l.leaf_hash()])
            .map(|(i, l)| (*i, l.leaf_hash()))
            .collect();
        let small_leaves: Vec<(u64, Hash)> = small_record
            .leaves
            .iter()
            .map(|(i, l)| (*i, l.leaf_hash()))
            .collect();
        assert_eq!(
            small_leaves, followed_leaves,
            "the key filter keeps index and leaf"
        );
        assert_eq!(small_record.processed, total as u64);
        for record in [&all_record, &small_record] {
            let sizes: Vec<u64> = record.tree_heads.iter().map(|h| h.size).collect();
            assert!(
                sizes.windows(2).all(|w| w[0] < w[1]) && sizes.last() == Some(&(total as u64)),
                "heads grow: {sizes:?}"
            );
        }
        assert!(
            small_record.get_leaves_calls > all_record.get_leaves_calls,
            "batches of 3 took more get-leaves calls ({} vs {})",
            small_record.get_leaves_calls,
            all_record.get_leaves_calls
        );
        log.stop();
    })
    .await;
}

/// (e) `sigsum-submit --token-domain D --token-signing-key K` against a log
/// that does not check tokens: every add-leaf carries the header and the
/// submission ends with a proof. A header of the same shape with a token
/// that is not hex is refused, so the header is read, not ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigsum_go_submission_with_a_token_header_is_logged_when_tokens_are_unchecked() {
    within_deadline(async {
        let log = DevLog::start(&[]).await;
        let key = SigningKey::from_seed(&[0x66; 32]);
        let config = SubmitConfig {
            token: Some(TokenConfig {
                domain: DOMAIN.to_owned(),
                key: SigningKey::from_seed(&[0x67; 32]),
            }),
            ..log.submit_config()
        };
        let message = file_message("tokened", 0);
        let run = submit_leaf_requests(&config, &[LeafRequest::sign(&key, &message)]).await;
        let proof = one_proof(run, "tokened file");
        verify_offline(&proof, &message, &key.public_key(), &log.policy);

        let request = LeafRequest::sign(&key, &file_message("tokened", 1));
        let bad = format!("{DOMAIN} {}", "zz".repeat(64));
        let answer = log
            .client()
            .add_leaf(
                &request,
                Some(&bad),
                Instant::now() + sigsum_go::DEFAULT_REQUEST_TIMEOUT,
            )
            .await;
        assert!(
            matches!(answer, Err(ClientError::Status { code: 400, .. })),
            "a malformed token header is refused: {answer:?}"
        );
        log.stop();
    })
    .await;
}

/// The same with `--token-dns-server`: the token sigsum-go makes (the
/// namespaced log key signed by the rate-limit key) verifies against the
/// domain's `_sigsum_v1` TXT record holding that key in hex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigsum_go_token_verifies_against_the_domains_txt_record() {
    within_deadline(async {
        let rate_key = SigningKey::from_seed(&[0x68; 32]);
        let dns = FakeDns::start(HashMap::from([(
            format!("_sigsum_v1.{DOMAIN}"),
            Entry::txt(&[sigsum_go::hex(&rate_key.public_key().0)]),
        )]));
        let dns_addr = dns.addr().to_string();
        let log = DevLog::start(&["--token-dns-server".as_ref(), dns_addr.as_ref()]).await;
        let key = SigningKey::from_seed(&[0x69; 32]);
        let config = SubmitConfig {
            token: Some(TokenConfig {
                domain: DOMAIN.to_owned(),
                key: rate_key,
            }),
            ..log.submit_config()
        };
        let message = file_message("dns-tokened", 0);
        let run = submit_leaf_requests(&config, &[LeafRequest::sign(&key, &message)]).await;
        let proof = one_proof(run, "file with a DNS-checked token");
        verify_offline(&proof, &message, &key.public_key(), &log.policy);
        assert!(
            dns.queries()
                .iter()
                .any(|q| q.contains(&format!("_sigsum_v1.{DOMAIN}"))),
            "the token was looked up: {:?}",
            dns.queries()
        );
        log.stop();
    })
    .await;
}

/// A policy over both logs (`first` tried first, as a shuffle may do) whose
/// quorum is either log's embedded witness.
fn policy_of_both(first: &DevLog, second: &DevLog) -> Policy {
    let mut text = String::new();
    for log in [first, second] {
        text.push_str(&format!("log {} {}\n", log.log_key.to_hex(), log.url));
    }
    for (name, log) in [("wa", first), ("wb", second)] {
        let w = &log.policy.witnesses()[0];
        let url = w.url().and_then(|u| u.as_str()).expect("witness URL");
        text.push_str(&format!("witness {name} {} {url}\n", w.key().to_hex()));
    }
    text.push_str("group either 1 wa wb\nquorum either\n");
    Policy::parse(text.as_bytes()).expect("the combined policy parses")
}

/// Issue 15: a frozen log refuses new leaves with 410 naming its
/// successor; sigsum-submit's `submitLeaves` then moves on to the next log
/// of its policy, while a leaf the frozen log took before is still proved
/// by it (its re-post answers 200). The index lists the log as frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigsum_go_moves_on_from_a_frozen_log_which_still_proves_what_it_took() {
    use cairn_proto::v1::FreezeShardRequest;
    use cairn_proto::v1::admin_client::AdminClient;

    within_deadline(async {
        let grpc = free_port();
        let grpc_arg = grpc.to_string();
        let old = DevLog::start(&[OsStr::new("--grpc-listen"), OsStr::new(&grpc_arg)]).await;
        let new = DevLog::start(&[]).await;
        let key = SigningKey::from_seed(&[0x66; 32]);
        let before_message = file_message("before the freeze", 0);
        let before = LeafRequest::sign(&key, &before_message);
        one_proof(
            submit_leaf_requests(&old.submit_config(), &[before]).await,
            "before the freeze",
        );

        let frozen = AdminClient::connect(format!("http://{grpc}"))
            .await
            .expect("admin")
            .freeze_shard(FreezeShardRequest {
                shard: "dev".into(),
                successor: "next".into(),
            })
            .await
            .expect("FreezeShard")
            .into_inner()
            .frozen
            .expect("the freeze");
        assert_eq!((frozen.size, frozen.successor.as_str()), (1, "next"));

        // A new leaf: 410 from the frozen log, then the next log takes it.
        let policy = policy_of_both(&old, &new);
        let config = SubmitConfig {
            timeout: SUBMIT_TIMEOUT,
            ..SubmitConfig::new(policy.clone())
        };
        let after_message = file_message("after the freeze", 0);
        let run = submit_leaf_requests(&config, &[LeafRequest::sign(&key, &after_message)]).await;
        match run.events.first() {
            Some(Event::AddLeaf {
                result: Err(ClientError::Status { code: 410, body }),
                ..
            }) => {
                assert!(body.contains("frozen at tree size 1"), "{body}");
                assert!(body.contains("\"next\""), "{body}");
            }
            other => panic!(
                "the frozen log's first answer: {other:?}; steps: {}",
                describe(&run.events)
            ),
        }
        let proof = one_proof(run, "after the freeze");
        assert_eq!(proof.log_key_hash, new.log_key.key_hash().0);
        verify_offline(&proof, &after_message, &key.public_key(), &policy);

        // The leaf the frozen log took is still proved by it.
        let run = submit_leaf_requests(&config, &[before]).await;
        assert_eq!(
            run.events.first(),
            Some(&Event::AddLeaf {
                request: 0,
                result: Ok(true)
            }),
            "steps: {}",
            describe(&run.events)
        );
        let proof = one_proof(run, "the frozen log's leaf");
        assert_eq!(proof.log_key_hash, old.log_key.key_hash().0);
        verify_offline(&proof, &before_message, &key.public_key(), &policy);

        // The index says so, for tools and for people.
        let root = format!(
            "{}/",
            old.url.trim_end_matches('/').trim_end_matches("/dev")
        );
        let index = reqwest::get(format!("{root}shards.json"))
            .await
            .expect("GET shards.json")
            .text()
            .await
            .expect("body");
        let index: serde_json::Value =
            serde_json::from_str(&index).unwrap_or_else(|e| panic!("{e}: {index}"));
        let shard = &index["shards"][0];
        assert_eq!(shard["name"], "dev");
        assert_eq!(shard["state"], "frozen");
        assert_eq!(shard["frozen_size"], 1);
        assert_eq!(shard["successor"], "next");
        assert_eq!(shard["size"], 1);
        assert_eq!(
            shard["policy_line"],
            format!(
                "log {} {}/",
                old.log_key.to_hex(),
                old.url.trim_end_matches('/')
            )
        );
        let vkey = shard["vkey"].as_str().expect("vkey");
        assert!(
            vkey.starts_with(&format!(
                "{}+",
                cairn_sigsum::tree_head::origin_for_key(&old.log_key)
            )),
            "{vkey}"
        );
        let page = reqwest::get(&root).await.expect("GET /");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let page = page.text().await.expect("page");
        assert!(page.contains("frozen at 1, successor next"), "{page}");
        old.stop();
        new.stop();
    })
    .await;
}
