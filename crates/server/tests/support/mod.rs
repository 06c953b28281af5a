//! Running the real `cairnd` binary from integration tests.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod cluster;
pub mod faultproxy;
pub mod moto;
pub mod tiles;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::SigsumProof;
use cairn_sigsum::{KeyHash, PublicKey, SigningKey};

/// Generous: the first start creates RocksDB and elects the single node.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running `cairnd dev`, stopped (SIGTERM, then kill) on drop.
pub struct Cairnd {
    child: Child,
    listen: SocketAddr,
    dir: PathBuf,
}

impl Cairnd {
    pub fn start(dir: &Path, listen: SocketAddr) -> Cairnd {
        Self::start_with(dir, listen, &[], "warn", Stdio::inherit())
    }

    /// `cairnd dev` with `extra` arguments, `RUST_LOG=log_filter` (unset if
    /// empty: cairnd's default filter), and its standard error going to
    /// `stderr`.
    pub fn start_with(
        dir: &Path,
        listen: SocketAddr,
        extra: &[&std::ffi::OsStr],
        log_filter: &str,
        stderr: Stdio,
    ) -> Cairnd {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairnd"));
        command
            .args(["dev", "--data-dir"])
            .arg(dir)
            .args(["--listen", &listen.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr);
        if log_filter.is_empty() {
            command.env_remove("RUST_LOG");
        } else {
            command.env("RUST_LOG", log_filter);
        }
        let child = command.spawn().expect("spawn cairnd");
        Cairnd {
            child,
            listen,
            dir: dir.to_owned(),
        }
    }

    /// `cairnd dev` as the sequencer and frontend only: witnesses from
    /// `witnesses` (policy lines), gRPC on `grpc`, and publishing left to
    /// a `cairnd collector` pointed there.
    pub fn start_without_collector(
        dir: &Path,
        listen: SocketAddr,
        witnesses: &Path,
        grpc: SocketAddr,
    ) -> Cairnd {
        Self::start_with(
            dir,
            listen,
            &[
                "--witnesses".as_ref(),
                witnesses.as_os_str(),
                "--grpc-listen".as_ref(),
                grpc.to_string().as_ref(),
                "--external-collector".as_ref(),
            ],
            "warn",
            Stdio::inherit(),
        )
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/dev/", self.listen)
    }

    /// The process id of `cairnd dev`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn policy(&self) -> Policy {
        let text = std::fs::read(self.dir.join("policy")).expect("policy file");
        Policy::parse(&text).expect("policy parses")
    }

    pub fn log_key(&self) -> PublicKey {
        let text = std::fs::read(self.dir.join("log.key.pub")).expect("log.key.pub");
        cairn_sigsum::key::parse_public_key_file(&text).expect("public key")[0].0
    }

    /// Waits until the first start has written the policy and the log's
    /// public key (before any witness needs to be up).
    pub async fn wait_for_policy(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        while !self.dir.join("policy").exists() || !self.dir.join("log.key.pub").exists() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("cairnd exited early: {status}");
            }
            assert!(Instant::now() < deadline, "cairnd dev wrote no policy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200 (a leader and a cosigned head).
    pub async fn wait_ready(&mut self) {
        let url = format!("http://{}/readyz", self.listen);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("cairnd exited early: {status}");
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cairnd not ready within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/readyz` answers 200 (`None`) or the process exits
    /// (`Some(status)`).
    pub async fn wait_ready_or_exit(&mut self) -> Option<std::process::ExitStatus> {
        let url = format!("http://{}/readyz", self.listen);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == reqwest::StatusCode::OK
            {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "cairnd neither ready nor exited within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        terminate(&mut self.child, "cairnd dev");
    }
}

impl Drop for Cairnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to `child` and asserts that it exits successfully within
/// 30 seconds (`what` names it in failures).
pub fn terminate(child: &mut Child, what: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "{what} exited with {status} after SIGTERM"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process (another `cairnd` role) killed on drop.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc { name, child }
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairnd <role> --config <config>` with `RUST_LOG=log_filter`.
pub fn start_role(
    name: &'static str,
    role: &str,
    config: &Path,
    log_filter: &str,
    stdout: Stdio,
) -> Proc {
    Proc::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_cairnd"))
            .args([role, "--config"])
            .arg(config)
            .env("RUST_LOG", log_filter)
            .stdout(stdout)
            .stderr(Stdio::inherit()),
    )
}

/// Writes `key` as an OpenSSH private key file, mode 0600 as for a real
/// witness key.
pub fn write_private_key(path: &Path, key: &SigningKey) {
    std::fs::write(path, cairn_sigsum::key::write_openssh_private_key(key, 7)).expect("key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// The key hashes of the witnesses that cosigned `proof`'s tree head, sorted.
pub fn cosigners(proof: &SigsumProof) -> Vec<KeyHash> {
    let mut hashes: Vec<KeyHash> = proof
        .tree_head
        .cosignatures()
        .iter()
        .map(|c| c.key_hash)
        .collect();
    hashes.sort();
    hashes
}

/// The `/metrics` text of the operator endpoints at `base` (`http://HOST:PORT`).
pub async fn scrape_metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Ed25519 verifications per second on this machine, one thread: the
/// yardstick throughput figures are reported against.
pub fn verify_rate() -> f64 {
    cairn_cli::hammer::verify_rate()
}
