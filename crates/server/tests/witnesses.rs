//! Quorum-gated publishing end to end, every role its own process: `cairnd
//! dev` sequences (its embedded collector off), `cairnd collector` collects
//! cosignatures from three `cairnd witness` processes under a 2-of-3 policy
//! quorum and publishes, and Cairn's submitter gets proofs that verify
//! offline under that policy.
//!
//! The story: with witnesses 1 and 2 up (3 never started) heads are
//! published with exactly their cosignatures; with only witness 1 up a new
//! leaf stays unpublished (fail-closed) and the collector counts failed
//! rounds; once witness 3 starts, the leaf is published. The collector's
//! log lines give the time cosigning added to each publication, reported
//! as p50/p99 (a measurement, not an assertion).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::{Hash, KeyHash, SigningKey};
use support::{Cairnd, Proc, cosigners, free_port, start_role, write_private_key};

/// Leaves submitted while witnesses 1 and 2 are up (many rounds for the
/// latency report).
const LEAVES: usize = 200;

struct TestWitness {
    n: u8,
    name: String,
    key: SigningKey,
    listen: SocketAddr,
    config: PathBuf,
}

impl TestWitness {
    fn new(dir: &Path, n: u8) -> TestWitness {
        let key = SigningKey::from_seed(&[0x70 + n; 32]);
        write_private_key(&dir.join(format!("w{n}.key")), &key);
        TestWitness {
            n,
            name: format!("w{n}.cairn.test/witness"),
            key,
            listen: free_port(),
            config: dir.join(format!("w{n}.toml")),
        }
    }

    fn policy_line(&self) -> String {
        format!(
            "witness w{} {} http://{}\n",
            self.n,
            self.key.public_key().to_hex(),
            self.listen
        )
    }

    fn write_config(&self, dir: &Path, log_key_hex: &str) {
        let n = self.n;
        let text = format!(
            "listen = \"{listen}\"\n\
             key_name = \"{name}\"\n\
             key_file = \"w{n}.key\"\n\
             state_dir = \"w{n}-state\"\n\
             [[log]]\n\
             public_key = \"{log_key_hex}\"\n",
            listen = self.listen,
            name = self.name,
        );
        std::fs::write(dir.join(&self.config), text).expect("witness config");
    }

    fn start(&self) -> Proc {
        start_role(
            "cairnd witness",
            "witness",
            &self.config,
            "warn",
            Stdio::null(),
        )
    }
}

fn message(i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn witness e2e {i}\n").as_bytes())
}

/// The collector's `publish_ms` values from its log lines.
fn publish_latencies(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("published cosigned tree head"))
        .filter_map(|l| {
            let v = l.split("publish_ms=").nth(1)?;
            v.split_ascii_whitespace().next()?.parse().ok()
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

/// The value of a metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn tree_size(client: &LogClient) -> u64 {
    client
        .get_tree_head()
        .await
        .map_or(0, |h| h.tree_head().size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_of_three_quorum_gates_publication_across_separate_processes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let data = dir.join("data");
    let witnesses: Vec<TestWitness> = (1..=3).map(|n| TestWitness::new(dir, n)).collect();
    let mut lines: String = witnesses.iter().map(TestWitness::policy_line).collect();
    lines.push_str("group two-of-three 2 w1 w2 w3\nquorum two-of-three\n");
    let witnesses_file = dir.join("witnesses");
    std::fs::write(&witnesses_file, lines).expect("witnesses file");

    // The log: sequencer and frontend, publishing left to the collector.
    let listen = free_port();
    let grpc = free_port();
    let mut log = Cairnd::start_without_collector(&data, listen, &witnesses_file, grpc);
    log.wait_for_policy().await;
    let log_key = log.log_key();
    let policy = log.policy();
    assert_eq!(
        policy.witnesses().len(),
        3,
        "the embedded witness is left out unless named"
    );

    // Witnesses 1 and 2 up; 3 stays down for now.
    for w in &witnesses {
        w.write_config(dir, &log_key.to_hex());
    }
    let mut w1 = witnesses[0].start();
    let mut w2 = Some(witnesses[1].start());

    // The collector, with its log lines kept for the latency report.
    let metrics_addr = free_port();
    let collector_config = dir.join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "listen = \"{metrics_addr}\"\n\
             sequencer = \"http://{grpc}\"\n\
             [[shard]]\n\
             name = \"dev\"\n\
             log_key = \"data/log.key.pub\"\n\
             policy = \"data/policy\"\n\
             tiles = \"data/tiles\"\n\
             witness_timeout_ms = 2000\n"
        ),
    )
    .expect("collector config");
    let collector_log = dir.join("collector.log");
    let mut collector = Proc::spawn(
        "cairnd collector",
        Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .args(["collector", "--config"])
            .arg(&collector_config)
            .env("RUST_LOG", "warn,cairn_collector=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&collector_log).expect("log file")),
    );
    log.wait_ready().await;
    collector.assert_running();

    // Phase 1: leaves get proofs whose heads carry w1's and w2's
    // cosignatures and satisfy the 2-of-3 policy offline.
    let submitter_key = SigningKey::from_seed(&[0x33; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig {
            concurrency: 8,
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..LEAVES).map(message).collect();
    let wanted: Vec<KeyHash> = witnesses[..2]
        .iter()
        .map(|w| w.key.public_key().key_hash())
        .collect();
    for (i, result) in submitter
        .submit_and_prove(&messages)
        .await
        .into_iter()
        .enumerate()
    {
        let proof = result.unwrap_or_else(|e| panic!("message {i}: {e}"));
        proof
            .verify(&messages[i], &[submitter_key.public_key()], &policy)
            .expect("proof verifies under the 2-of-3 policy");
        let mut want = wanted.clone();
        want.sort();
        assert_eq!(
            cosigners(&proof),
            want,
            "cosigned by exactly the two live witnesses"
        );
    }
    let client = LogClient::new(&log.base_url()).expect("client");
    let published = tree_size(&client).await;
    assert_eq!(published, LEAVES as u64);

    let mut latencies = publish_latencies(&collector_log);
    assert!(!latencies.is_empty(), "collector logged no publications");
    latencies.sort_by(f64::total_cmp);
    println!(
        "cosigning latency (new signed head -> published, 2 of 3 local witnesses up, {} rounds): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );

    // Phase 2: witness 2 goes down; one cosignature is not a quorum, so a
    // new leaf is sequenced but not published (fail-closed).
    drop(w2.take());
    let late = message(LEAVES);
    let stalled = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig {
            timeout: Duration::from_secs(3),
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let r = stalled.submit_and_prove(&[late]).await;
    assert!(r[0].is_err(), "no proof without a quorum");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(metrics_addr).await;
        if metric(&m, "cairn_collector_quorum_failed_total{").unwrap_or(0.0) >= 1.0 {
            assert_eq!(
                metric(&m, "cairn_collector_published_without_quorum_total{"),
                Some(0.0),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed round counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(tree_size(&client).await, published, "nothing was published");

    // Phase 3: witness 3 comes up; w1 + w3 is a quorum again and the leaf
    // is published. w3 learns the log from scratch (old size 0).
    let _w3 = witnesses[2].start();
    let proof = submitter
        .submit_and_prove(&[late])
        .await
        .pop()
        .expect("one result")
        .expect("proof once w3 cosigns");
    proof
        .verify(&late, &[submitter_key.public_key()], &policy)
        .expect("verifies");
    assert!(
        proof
            .tree_head
            .cosignatures()
            .iter()
            .any(|c| c.key_hash == witnesses[2].key.public_key().key_hash()),
        "w3 cosigned"
    );
    w1.assert_running();
    collector.assert_running();
    let m = scrape(metrics_addr).await;
    assert!(
        metric(&m, "cairn_collector_published_total{").unwrap_or(0.0) >= 2.0,
        "{m}"
    );

    log.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_witness_from_the_policy_restarts_without_errors_about_its_old_cosignatures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let data = dir.join("data");
    let w = TestWitness::new(dir, 1);
    let witnesses_file = dir.join("witnesses");
    std::fs::write(
        &witnesses_file,
        format!(
            "{}group both all w1 cairn-dev-witness\nquorum both\n",
            w.policy_line()
        ),
    )
    .expect("witnesses file");
    let listen = free_port();
    let mut log = Cairnd::start_with(
        &data,
        listen,
        &["--witnesses".as_ref(), witnesses_file.as_os_str()],
        "warn",
        Stdio::inherit(),
    );
    log.wait_for_policy().await;
    w.write_config(dir, &log.log_key().to_hex());
    let _w = w.start();
    log.wait_ready().await;
    // Heads cosigned by both witnesses are published.
    let submitter = Submitter::new(
        log.policy(),
        SigningKey::from_seed(&[0x34; 32]),
        SubmitConfig::default(),
    )
    .expect("submitter");
    for r in submitter.submit_and_prove(&[message(1), message(2)]).await {
        let proof = r.expect("proof");
        assert_eq!(cosigners(&proof).len(), 2);
    }
    log.stop();

    // Restart with the default policy: the embedded witness alone.
    let stderr = dir.join("restart.log");
    let mut log = Cairnd::start_with(
        &data,
        listen,
        &[],
        "info",
        Stdio::from(std::fs::File::create(&stderr).expect("log file")),
    );
    log.wait_ready().await;
    let submitter = Submitter::new(
        log.policy(),
        SigningKey::from_seed(&[0x34; 32]),
        SubmitConfig::default(),
    )
    .expect("submitter");
    for r in submitter.submit_and_prove(&[message(3)]).await {
        r.expect("proof under the new policy");
    }
    log.stop();
    let text = std::fs::read_to_string(&stderr).expect("log");
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("unknown witness"))
        .collect();
    assert!(
        errors.is_empty(),
        "errors after dropping a witness: {errors:#?}"
    );
}
