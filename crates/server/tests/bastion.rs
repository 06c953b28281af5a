//! Witnesses behind a C2SP https-bastion, end to end, every role its own
//! process: `cairnd dev` sequences (its embedded collector off), `cairnd
//! bastion` terminates TLS for `localhost` with a certificate made here,
//! two `cairnd witness` processes dial out to it (`[bastion]`, trusting
//! that certificate), and `cairnd collector` reaches them only through it
//! (`witness_roots`): the policy's witness URLs are
//! `https://localhost:PORT/<key hash>`, and its quorum needs both.
//!
//! The story: leaves get proofs that verify offline under the policy and
//! carry both witnesses' cosignatures; then the bastion is killed and a
//! new one started on the same port, the witnesses reconnect on their own,
//! and a new leaf is published again.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_client::{SubmitConfig, Submitter};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::{Hash, KeyHash, SigningKey};
use support::{Cairnd, Proc, cosigners, free_port, start_role, write_private_key};

/// A witness whose only route in is the bastion.
struct BastionWitness {
    n: u8,
    key: SigningKey,
    config: PathBuf,
    stdout: PathBuf,
}

impl BastionWitness {
    fn new(dir: &Path, n: u8) -> BastionWitness {
        let key = SigningKey::from_seed(&[0x50 + n; 32]);
        write_private_key(&dir.join(format!("w{n}.key")), &key);
        BastionWitness {
            n,
            key,
            config: dir.join(format!("w{n}.toml")),
            stdout: dir.join(format!("w{n}.out")),
        }
    }

    fn key_hash(&self) -> KeyHash {
        self.key.public_key().key_hash()
    }

    /// The submission prefix logs use: the bastion, then the key hash.
    fn url(&self, bastion: SocketAddr) -> String {
        format!(
            "https://localhost:{}/{}",
            bastion.port(),
            self.key_hash().to_hex()
        )
    }

    fn write_config(&self, log_key_hex: &str, bastion: SocketAddr) {
        let n = self.n;
        // `listen` is served too, but nothing in this test uses it.
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\
             key_name = \"w{n}.bastion.test/witness\"\n\
             key_file = \"w{n}.key\"\n\
             state_dir = \"w{n}-state\"\n\
             [[log]]\n\
             public_key = \"{log_key_hex}\"\n\
             [bastion]\n\
             address = \"localhost:{port}\"\n\
             roots = \"bastion.pem\"\n",
            port = bastion.port(),
        );
        std::fs::write(&self.config, text).expect("witness config");
    }

    fn start(&self) -> Proc {
        let stdout = std::fs::File::create(&self.stdout).expect("stdout file");
        start_role(
            "cairnd witness",
            "witness",
            &self.config,
            "warn,cairn_bastion=info",
            stdout.into(),
        )
    }

    /// Waits for the start banner and returns it.
    async fn banner(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if text.contains("\nwitness ") {
                return text;
            }
            assert!(Instant::now() < deadline, "w{} printed no banner", self.n);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A self-signed certificate for `localhost` and its key, as PEM files in
/// `dir`: the bastion's identity, and the root the witnesses and the
/// collector are told to trust.
fn write_localhost_certificate(dir: &Path) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.join("bastion.pem"), certified.cert.pem()).expect("certificate file");
    std::fs::write(
        dir.join("bastion.key"),
        certified.signing_key.serialize_pem(),
    )
    .expect("key file");
}

fn start_bastion(config: &Path) -> Proc {
    start_role("cairnd bastion", "bastion", config, "warn", Stdio::null())
}

fn message(i: usize) -> Hash {
    cairn_sigsum::crypto::hash(format!("cairn bastion e2e {i}\n").as_bytes())
}

/// Submits `messages`, verifies every proof offline under `policy`, and
/// checks each tree head carries exactly the cosignatures of `witnesses`.
async fn submit_and_verify(
    policy: &Policy,
    submitter_key: &SigningKey,
    messages: &[Hash],
    witnesses: &[BastionWitness],
) {
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig {
            poll_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(120),
            ..SubmitConfig::default()
        },
    )
    .expect("submitter");
    let mut want: Vec<KeyHash> = witnesses.iter().map(BastionWitness::key_hash).collect();
    want.sort();
    for (i, result) in submitter
        .submit_and_prove(messages)
        .await
        .into_iter()
        .enumerate()
    {
        let proof = result.unwrap_or_else(|e| panic!("message {i}: {e}"));
        proof
            .verify(&messages[i], &[submitter_key.public_key()], policy)
            .expect("proof verifies under the policy");
        assert_eq!(
            cosigners(&proof),
            want,
            "cosigned by both witnesses behind the bastion"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn witnesses_behind_a_bastion_cosign_and_reconnect_after_it_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_localhost_certificate(dir);
    let bastion_addr = free_port();
    let bastion_config = dir.join("bastion.toml");
    std::fs::write(
        &bastion_config,
        format!(
            "listen = \"{bastion_addr}\"\n\
             certificate = \"bastion.pem\"\n\
             private_key = \"bastion.key\"\n"
        ),
    )
    .expect("bastion config");

    let witnesses: Vec<BastionWitness> = (1..=2).map(|n| BastionWitness::new(dir, n)).collect();
    let mut lines = String::new();
    for w in &witnesses {
        lines.push_str(&format!(
            "witness w{} {} {}\n",
            w.n,
            w.key.public_key().to_hex(),
            w.url(bastion_addr)
        ));
    }
    lines.push_str("group both 2 w1 w2\nquorum both\n");
    let witnesses_file = dir.join("witnesses");
    std::fs::write(&witnesses_file, lines).expect("witnesses file");

    // The log, publishing left to the collector.
    let data = dir.join("data");
    let grpc = free_port();
    let mut log = Cairnd::start_without_collector(&data, free_port(), &witnesses_file, grpc);
    log.wait_for_policy().await;
    let log_key = log.log_key();
    let policy = log.policy();

    let mut bastion = start_bastion(&bastion_config);
    let mut running: Vec<Proc> = Vec::new();
    for w in &witnesses {
        w.write_config(&log_key.to_hex(), bastion_addr);
        running.push(w.start());
    }
    for w in &witnesses {
        let banner = w.banner().await;
        assert!(
            banner.contains(&format!(
                "witness w{}.bastion.test/witness {} {}\n",
                w.n,
                w.key.public_key().to_hex(),
                w.url(bastion_addr)
            )),
            "the policy line names the bastion URL:\n{banner}"
        );
    }

    let collector_config = dir.join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "listen = \"{}\"\n\
             sequencer = \"http://{grpc}\"\n\
             [[shard]]\n\
             name = \"dev\"\n\
             log_key = \"data/log.key.pub\"\n\
             policy = \"data/policy\"\n\
             tiles = \"data/tiles\"\n\
             witness_timeout_ms = 2000\n\
             witness_roots = \"bastion.pem\"\n",
            free_port()
        ),
    )
    .expect("collector config");
    let mut collector = start_role(
        "cairnd collector",
        "collector",
        &collector_config,
        "warn",
        Stdio::null(),
    );
    // Ready means a cosigned head was published: the whole chain works.
    log.wait_ready().await;

    // Phase 1: proofs carry both witnesses' cosignatures, obtained through
    // the bastion only (the policy names no other route to them).
    let submitter_key = SigningKey::from_seed(&[0x44; 32]);
    let first: Vec<Hash> = (0..5).map(message).collect();
    submit_and_verify(&policy, &submitter_key, &first, &witnesses).await;

    // Phase 2: the bastion dies and a new one takes its port; the witnesses
    // find it without being restarted, and publication resumes.
    bastion.assert_running();
    drop(bastion);
    let _bastion = start_bastion(&bastion_config);
    submit_and_verify(&policy, &submitter_key, &[message(5)], &witnesses).await;

    for w in &mut running {
        w.assert_running();
    }
    collector.assert_running();
    log.stop();
}
