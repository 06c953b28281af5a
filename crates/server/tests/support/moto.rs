//! moto's S3 server (`python3 -m moto.server`, installed by
//! `scripts/bootstrap.sh`) for the tests that run `cairnd` on S3. Fails,
//! rather than skips, without python3 and moto.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_storage::{S3Config, TileStore, TileStoreOptions};

/// Every wait on moto ends by then.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const BUCKET: &str = "cairn-dev-tiles";

/// moto's S3 server on a free loopback port, killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto, waits (bounded) until it listens, and creates
    /// [`BUCKET`] with an unsigned `PUT /<bucket>`, which moto accepts.
    pub async fn start() -> Moto {
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
        drain_stderr(&mut child);
        let moto = Moto { child, port };
        let response = http()
            .put(format!("{}/{BUCKET}", moto.endpoint()))
            .send()
            .await
            .expect("PUT bucket");
        assert!(response.status().is_success(), "{}", response.status());
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Writes credential files `key-id` and `secret` into `dir` and an
    /// object store file `object-store.toml` for the bucket prefix `logs`
    /// at `endpoint` (moto's, or a proxy in front of it); returns its path.
    pub fn store_file(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
        // Relative paths in the file are relative to its directory.
        std::fs::write(dir.join("key-id"), "testing\n").unwrap();
        std::fs::write(dir.join("secret"), "testing\n").unwrap();
        let store_file = dir.join("object-store.toml");
        std::fs::write(
            &store_file,
            format!(
                "[s3]\nendpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"logs\"\n\
                 allow_http = true\naccess_key_id_file = \"key-id\"\n\
                 secret_access_key_file = \"secret\"\n"
            ),
        )
        .unwrap();
        store_file
    }

    /// The shard's objects as the bucket holds them, read with the storage
    /// crate (moto refuses unsigned reads of objects), under the bucket
    /// prefix `logs`.
    pub fn tiles(&self, credentials: &std::path::Path) -> TileStore {
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

/// Reads moto's standard error to its end in a thread of its own, once moto
/// serves: it logs every request there, and a pipe nobody reads fills up
/// (64 KiB) and then blocks every moto thread that logs — moto hangs after
/// a few hundred requests.
pub fn drain_stderr(child: &mut Child) {
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}
