//! Test logs on disk: copying one, damaging the copy, and serving a
//! directory the way an operator's static web server would
//! (`python3 -m http.server`, none of Cairn's code in the read path).
//!
//! Test-only, like the rest of this crate: failures panic with what failed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a static server may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// Copies the directory tree `from` to `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

/// Flips the lowest bit of the byte at offset `at` of the file `path`.
pub fn flip_byte(path: &Path, at: usize) {
    let mut bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(at < bytes.len(), "{} has no byte {at}", path.display());
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A static web server serving a directory on 127.0.0.1, killed when
/// dropped.
#[derive(Debug)]
pub struct StaticServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl StaticServer {
    /// Starts `python3 -m http.server` on `dir` and waits until it listens.
    pub fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server (the tests need python3)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < LISTEN_DEADLINE,
                "python3 -m http.server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// The URL of the served directory, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
