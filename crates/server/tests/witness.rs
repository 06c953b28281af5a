//! End-to-end tests of `cairnd witness --config FILE`: the real binary in its
//! own process, configured by a file in a tempdir, sent real add-checkpoint
//! requests over HTTP for checkpoints signed by a test log key.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_sigsum::SigningKey;
use cairn_tlog::Hash;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::compact::CompactRange;
use cairn_tlog::cosignature::cosignature_from_witness_response;
use cairn_tlog::note::{Ed25519NoteSigner, SIG_TYPE_COSIGNATURE_V1, VerifierKey};
use cairn_witness::AddCheckpointRequest;

/// Start-up reads one small config and key; this is only a hang guard.
const DEADLINE: Duration = Duration::from_secs(30);

const LOG_SEED: [u8; 32] = [0x4c; 32];
const FILE_LOG_SEED: [u8; 32] = [0x46; 32];
const UNKNOWN_LOG_SEED: [u8; 32] = [0x55; 32];
const KEY_NAME: &str = "example.org/witness";

/// A running `cairnd witness`, killed on drop, and what it printed at start.
struct WitnessProcess {
    child: Child,
    /// Its submission prefix, from the printed policy line.
    url: String,
    /// Its printed vkey.
    vkey: String,
    /// Its printed policy line.
    policy_line: String,
}

impl WitnessProcess {
    /// Starts `cairnd witness --config CONFIG [extra]` and waits for the
    /// policy line, which it prints once it listens.
    fn start(config: &Path, extra: &[&str]) -> WitnessProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .arg("witness")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cairnd");
        // Built first so that a failed start below still kills the child.
        let mut w = WitnessProcess {
            child,
            url: String::new(),
            vkey: String::new(),
            policy_line: String::new(),
        };
        let stdout = w.child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("no policy line from cairnd witness: {e}"));
            if let Some(v) = line.trim().strip_prefix("vkey:") {
                v.trim().clone_into(&mut w.vkey);
            }
            if line.starts_with("witness ") {
                assert!(!w.vkey.is_empty(), "vkey printed before the policy line");
                line.rsplit(' ').next().expect("url").clone_into(&mut w.url);
                w.policy_line = line;
                return w;
            }
        }
    }

    fn get(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        support::terminate(&mut self.child, "cairnd witness");
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit (killing it after [`DEADLINE`]) and returns
/// its status and its standard error if that was piped.
fn wait_with_deadline(child: &mut Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairnd witness did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("stderr");
    }
    (status, stderr)
}

/// Runs `cairnd witness --config CONFIG [extra]` expecting it to exit at
/// once; returns its status and standard error.
fn run_to_exit(config: &Path, extra: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnd"))
        .arg("witness")
        .arg("--config")
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairnd");
    wait_with_deadline(&mut child)
}

/// A config in `dir` for the log of [`LOG_SEED`] (by hex key) and the log of
/// [`FILE_LOG_SEED`] (by its OpenSSH public key file), listening on an
/// ephemeral port.
fn write_config(dir: &Path) -> PathBuf {
    let file_log = SigningKey::from_seed(&FILE_LOG_SEED).public_key();
    std::fs::write(
        dir.join("log.pub"),
        cairn_sigsum::key::format_public_key_file(&file_log),
    )
    .expect("write log.pub");
    write_config_text(
        dir,
        &format!(
            "listen = \"127.0.0.1:0\"\n\
             key_name = \"{KEY_NAME}\"\n\
             key_file = \"witness.key\"\n\
             state_dir = \"state\"\n\
             [[log]]\n\
             public_key = \"{}\"\n\
             [[log]]\n\
             public_key_file = \"log.pub\"\n",
            SigningKey::from_seed(&LOG_SEED).public_key().to_hex()
        ),
    )
}

fn write_config_text(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("witness.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The test log's tree: leaf `i` is the hash of the byte `i`.
fn leaves(size: u64) -> Vec<Hash> {
    (0..size)
        .map(|i| cairn_tlog::leaf_hash(&[u8::try_from(i).expect("small tree")]))
        .collect()
}

fn root_of(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.append(*leaf).expect("append");
    }
    range.root()
}

fn consistency_proof(old: u64, new: u64) -> Vec<Hash> {
    let leaves = leaves(new);
    cairn_tlog::proof::consistency_proof(old, new, |node| {
        let r = node.leaf_range().expect("range");
        let slice = leaves
            .get(r.start as usize..r.end as usize)
            .expect("in tree");
        Ok::<_, ()>(root_of(slice))
    })
    .expect("proof")
}

/// An add-checkpoint body for the tree of `size` leaves of the log with
/// `seed`, claiming `old` as the witness's size.
fn request(seed: [u8; 32], old: u64, size: u64) -> (Vec<u8>, Checkpoint) {
    let origin = cairn_sigsum::key::log_origin(&SigningKey::from_seed(&seed).public_key());
    let signer = Ed25519NoteSigner::new(&origin, &seed).expect("key name");
    let checkpoint = Checkpoint::new(origin, size, root_of(&leaves(size)));
    let note = signer
        .sign_note(&checkpoint.to_body())
        .expect("note")
        .to_bytes();
    let proof = if old == 0 || old == size {
        Vec::new()
    } else {
        consistency_proof(old, size)
    };
    let body = AddCheckpointRequest {
        old_size: old,
        proof,
        note: &note,
    }
    .encode();
    (body, checkpoint)
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

async fn add_checkpoint(http: &reqwest::Client, w: &WitnessProcess, body: Vec<u8>) -> Reply {
    let r = http
        .post(w.get("/add-checkpoint"))
        .body(body)
        .send()
        .await
        .expect("add-checkpoint");
    Reply {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: r.text().await.expect("body"),
    }
}

/// Checks `reply` is a 200 whose cosignature by the printed vkey verifies.
fn assert_cosigned(w: &WitnessProcess, checkpoint: &Checkpoint, reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let vkey = VerifierKey::parse(&w.vkey).expect("printed vkey parses");
    assert_eq!(vkey.name(), KEY_NAME);
    let key = vkey
        .ed25519_key(SIG_TYPE_COSIGNATURE_V1)
        .expect("a cosignature/v1 vkey");
    cosignature_from_witness_response(&key, checkpoint, reply.body.as_bytes())
        .expect("the cosignature verifies under the printed vkey");
    assert!(
        reply.body.starts_with(&format!("\u{2014} {KEY_NAME} ")),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_standalone_witness_cosigns_and_keeps_its_state_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let http = reqwest::Client::new();

    // Phase 1: first start creates the key; the policy line names it.
    let w = WitnessProcess::start(&config, &["--generate-key"]);
    let public = std::fs::read(dir.path().join("witness.key.pub")).expect("witness.key.pub");
    let public = cairn_sigsum::key::parse_public_key_file(&public).expect("public key")[0].0;
    assert_eq!(
        w.policy_line,
        format!("witness {KEY_NAME} {} {}", public.to_hex(), w.url)
    );
    let policy = format!(
        "log {}\n{}\nquorum {KEY_NAME}\n",
        SigningKey::from_seed(&LOG_SEED).public_key().to_hex(),
        w.policy_line
    );
    cairn_sigsum::policy::Policy::parse(policy.as_bytes()).expect("the policy line is valid");

    // Phase 2: both logs are cosigned, consistently growing; others are 404.
    let (body, cp) = request(LOG_SEED, 0, 5);
    assert_cosigned(&w, &cp, &add_checkpoint(&http, &w, body).await);
    let (body, cp) = request(LOG_SEED, 5, 9);
    assert_cosigned(&w, &cp, &add_checkpoint(&http, &w, body).await);
    let (body, cp) = request(FILE_LOG_SEED, 0, 3);
    assert_cosigned(&w, &cp, &add_checkpoint(&http, &w, body).await);
    let (body, _) = request(UNKNOWN_LOG_SEED, 0, 3);
    let reply = add_checkpoint(&http, &w, body).await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    // Phase 3: operator endpoints.
    for path in ["/livez", "/readyz"] {
        let r = http.get(w.get(path)).send().await.expect(path);
        assert_eq!(r.status(), 200, "{path}");
    }
    let metrics = http
        .get(w.get("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    for line in [
        "cairn_witness_cosignatures_total 3",
        "cairn_witness_requests_total{status=\"200\"} 3",
        "cairn_witness_requests_total{status=\"404\"} 1",
        "cairn_witness_logs 2",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }

    // Phase 4: SIGTERM, restart with the same key (no --generate-key): a
    // stale old size gets 409 with the remembered size.
    let vkey = w.vkey.clone();
    w.stop();
    let w = WitnessProcess::start(&config, &[]);
    assert_eq!(w.vkey, vkey, "same key after a restart");
    let (body, _) = request(LOG_SEED, 5, 12);
    let reply = add_checkpoint(&http, &w, body).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.content_type, "text/x.tlog.size");
    assert_eq!(reply.body, "9\n");
    let (body, cp) = request(LOG_SEED, 9, 12);
    assert_cosigned(&w, &cp, &add_checkpoint(&http, &w, body).await);
    w.stop();

    // Phase 5: --generate-key never replaces an existing key.
    let (status, stderr) = run_to_exit(&config, &["--generate-key"]);
    assert!(!status.success());
    assert!(
        stderr.contains("key_file") && stderr.contains("already exists"),
        "{stderr}"
    );
}

#[test]
fn a_missing_key_file_is_refused_without_generate_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let (status, stderr) = run_to_exit(&config, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("key_file") && stderr.contains("--generate-key"),
        "{stderr}"
    );
    assert!(!dir.path().join("witness.key").exists());
}

#[test]
fn a_bad_config_exits_non_zero_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "listen = \"127.0.0.1:0\"\nkey_name = \"w\"\nkey_file = \"k\"\nstate_dir = \"s\"\n";
    let log = format!(
        "[[log]]\npublic_key = \"{}\"\n",
        SigningKey::from_seed(&LOG_SEED).public_key().to_hex()
    );
    for (text, expected) in [
        (
            format!("{base}lisen = \"x\"\n{log}"),
            "unknown field `lisen`",
        ),
        (
            format!("{base}[[log]]\npublic_key = \"00\"\n"),
            "[[log]] #1 public_key",
        ),
        (format!("{base}{log}{log}"), "also the origin of [[log]] #1"),
        (base.to_owned(), "log: no [[log]] entries"),
    ] {
        let config = write_config_text(dir.path(), &text);
        let (status, stderr) = run_to_exit(&config, &["--generate-key"]);
        assert!(!status.success(), "{text}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(stderr.contains("witness.toml"), "names the file: {stderr}");
        assert!(
            !dir.path().join("k").exists(),
            "no key made for a bad config"
        );
    }
}
