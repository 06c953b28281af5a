//! moto's S3 server (`python3 -m moto.server`, installed by
//! `scripts/bootstrap.sh`), the real S3-compatible server of the tests.
//! Fails, rather than skips, without python3 and moto: a passing run must
//! mean the S3 path was exercised.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for moto to start listening.
const STARTUP: Duration = Duration::from_secs(60);

/// moto's server on a free loopback port, killed when dropped. Buckets are
/// the caller's to create (moto accepts an unsigned `PUT /<bucket>`).
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl MotoServer {
    /// Starts moto and waits until it listens; panics with instructions if
    /// python3 or moto is missing.
    pub fn start() -> Self {
        // A port the OS just handed out and released; a race with another
        // process taking it in between shows as moto failing to start.
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
                    "cannot run python3 ({e}): the S3 tests need python3 with moto's server \
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
                    "moto's server exited ({status}) instead of serving S3: the S3 tests need \
                     python3 with moto's server (`python3 -m pip install 'moto[server]'`, done \
                     by scripts/bootstrap.sh). Its stderr:\n{stderr}"
                );
            }
            assert!(
                started.elapsed() < STARTUP,
                "moto did not listen on port {port} within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // moto logs every request to its standard error: a pipe nobody
        // reads fills up (64 KiB) and then blocks every moto thread that
        // logs, so it is drained from now on.
        if let Some(mut pipe) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
        }
        Self { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
