//! A real OpenSSH `ssh-agent` for tests, on a socket in a temporary
//! directory, killed when dropped. Shared by the client and CLI tests.
//!
//! No test is skipped when `ssh-agent` is missing: starting one panics with
//! what to install.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `ssh-agent -D` and its socket.
pub struct SshAgent {
    child: Child,
    socket: PathBuf,
    // Holds the socket's directory until the agent is gone.
    _dir: tempfile::TempDir,
}

fn missing(tool: &str, e: &std::io::Error) -> String {
    format!(
        "cannot run {tool} ({e}): these tests need OpenSSH's ssh-agent and ssh-add; install openssh-client (Debian: apt-get install openssh-client, as scripts/bootstrap.sh does)"
    )
}

impl SshAgent {
    /// Starts an agent holding no keys.
    pub fn start() -> SshAgent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .arg("-D")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing("ssh-agent", &e)));
        // ssh-agent prints its environment lines once it listens.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading ssh-agent's first line");
        assert!(
            line.starts_with("SSH_AUTH_SOCK="),
            "ssh-agent did not start: {line:?}"
        );
        SshAgent {
            child,
            socket,
            _dir: dir,
        }
    }

    /// The agent's socket (the value for `SSH_AUTH_SOCK`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adds the OpenSSH private key in `private_key_file` with `ssh-add`.
    pub fn add(&self, private_key_file: &Path) {
        let out = Command::new("ssh-add")
            .arg(private_key_file)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}", missing("ssh-add", &e)));
        assert!(
            out.status.success(),
            "ssh-add {} failed: {}",
            private_key_file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
