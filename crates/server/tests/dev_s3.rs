//! `cairnd dev --object-store FILE` with its tiles in S3: the real binary
//! against a real S3-compatible server (moto's, `python3 -m moto.server`,
//! installed by `scripts/bootstrap.sh`). Fails, rather than skips, without
//! python3 and moto.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::{LogClient, SubmitConfig, Submitter};
use cairn_sigsum::{Hash, SigningKey};
use cairn_storage::{S3Config, TileStore, TileStoreOptions};
use support::{Cairnd, free_port};

/// Every wait in this test ends by then.
const DEADLINE: Duration = Duration::from_secs(60);

const BUCKET: &str = "cairn-dev-tiles";

/// moto's S3 server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto, waits (bounded) until it listens, and creates
    /// [`BUCKET`] with an unsigned `PUT /<bucket>`, which moto accepts.
    async fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run python3 ({e}): this test needs python3 with moto's server \
                     (`python3 -m pip install 'moto[server]'`, done by scripts/bootstrap.sh)"
                )
            });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().expect("poll moto") {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!(
                    "moto's server exited ({status}): this test needs python3 with moto's \
                     server (`python3 -m pip install 'moto[server]'`). Its stderr:\n{stderr}"
                );
            }
            assert!(started.elapsed() < DEADLINE, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let moto = Moto { child, port };
        let response = http()
            .put(format!("{}/{BUCKET}", moto.endpoint()))
            .send()
            .await
            .expect("PUT bucket");
        assert!(response.status().is_success(), "{}", response.status());
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The shard's objects as the bucket holds them, read with the storage
    /// crate (moto refuses unsigned reads of objects), under the bucket
    /// prefix `logs`.
    fn tiles(&self, credentials: &std::path::Path) -> TileStore {
        let mut config = S3Config::new(BUCKET);
        config.endpoint = Some(self.endpoint());
        config.allow_http = true;
        config.prefix = Some("logs".into());
        config.access_key_id_file = Some(credentials.join("key-id"));
        config.secret_access_key_file = Some(credentials.join("secret"));
        TileStore::s3(&config, "dev", TileStoreOptions::default()).expect("s3 store")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_log_keeps_its_tiles_in_s3_and_serves_verified_proofs_from_them() {
    let moto = Moto::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // Credential files and the store file side by side; relative paths in
    // the file are relative to its directory.
    std::fs::write(tmp.path().join("key-id"), "testing\n").unwrap();
    std::fs::write(tmp.path().join("secret"), "testing\n").unwrap();
    let store_file = tmp.path().join("object-store.toml");
    std::fs::write(
        &store_file,
        format!(
            "[s3]\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nprefix = \"logs\"\n\
             allow_http = true\naccess_key_id_file = \"key-id\"\n\
             secret_access_key_file = \"secret\"\n",
            moto.endpoint()
        ),
    )
    .unwrap();

    let listen = free_port();
    let mut cairnd = Cairnd::start_with(
        &dir,
        listen,
        &["--object-store".as_ref(), store_file.as_os_str()],
        "warn",
        Stdio::inherit(),
    );
    cairnd.wait_ready().await;
    let policy = cairnd.policy();
    let submitter_key = SigningKey::from_seed(&[0x55; 32]);
    let submitter = Submitter::new(
        policy.clone(),
        submitter_key.clone(),
        SubmitConfig::default(),
    )
    .expect("submitter");
    let messages: Vec<Hash> = (0..300)
        .map(|i| cairn_sigsum::crypto::hash(format!("s3 artifact {i}\n").as_bytes()))
        .collect();
    let results = tokio::time::timeout(DEADLINE, submitter.submit_and_prove(&messages))
        .await
        .expect("proofs within the deadline");
    for (i, result) in results.into_iter().enumerate() {
        let proof = result.unwrap_or_else(|e| panic!("message {i}: {e}"));
        proof
            .verify(&messages[i], &[submitter_key.public_key()], &policy)
            .expect("proof verifies");
    }

    // The tiles are in the bucket under `<prefix>/<shard>`, none on disk,
    // and the checkpoint the log serves is the bucket's object.
    assert!(!dir.join("tiles").exists(), "tiles written to DIR/tiles");
    let client = LogClient::new(&cairnd.base_url()).expect("client");
    let head = client.get_tree_head().await.expect("get-tree-head");
    assert!(head.tree_head().size >= 300);
    let bucket = moto.tiles(tmp.path());
    // Retried (bounded) in case the collector publishes in between.
    let started = Instant::now();
    loop {
        let served = http()
            .get(format!("http://{listen}/dev/checkpoint"))
            .send()
            .await
            .expect("GET checkpoint")
            .bytes()
            .await
            .expect("body");
        let stored = bucket
            .checkpoint()
            .await
            .expect("read the bucket")
            .expect("a checkpoint object in the bucket");
        if served == stored {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the served checkpoint is not the bucket's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bucket
            .get("tile/entries/000")
            .await
            .expect("read the bucket")
            .is_some(),
        "the first full entry bundle is in the bucket"
    );
    cairnd.stop();
}
