//! Running the built `cairn` binary from integration tests, shared by the
//! CLI's test files (each includes it with `mod common;`).
//!
//! Every run is isolated from the developer's environment: the named-policy
//! directory is an empty one (so a host's /etc/sigsum/policy cannot change
//! the results), `RUST_LOG` is removed, and so is `SSH_AUTH_SOCK` unless a
//! test's own agent is given.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest a [`Cairn::run_async`] may take: only keeps a broken loop (a
/// monitor that never stops) from hanging the suite.
const ASYNC_RUN_LIMIT: Duration = Duration::from_secs(120);

/// What a `cairn` run produced.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn from_std(out: std::process::Output) -> Self {
        Output {
            code: out.status.code().expect("exit code, not a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit status and that standard error contains `needle`.
    pub fn assert_exit(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "{needle:?} missing: {}",
            self.stderr
        );
    }
}

/// One way of running `cairn`: its working directory, policy directory,
/// ssh-agent and standard input.
pub struct Cairn {
    dir: PathBuf,
    policy_dir: PathBuf,
    agent: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Cairn {
    /// Runs in `dir`, with the empty policy directory `dir/empty-policy-dir`
    /// (created here), no agent and no standard input.
    pub fn new(dir: &Path) -> Self {
        let policy_dir = dir.join("empty-policy-dir");
        std::fs::create_dir_all(&policy_dir).unwrap();
        Cairn {
            dir: dir.to_owned(),
            policy_dir,
            agent: None,
            stdin: None,
        }
    }

    /// `SIGSUM_POLICY_DIR=dir`.
    pub fn policy_dir(mut self, dir: &Path) -> Self {
        self.policy_dir = dir.to_owned();
        self
    }

    /// `SSH_AUTH_SOCK=socket`, if given.
    pub fn agent(mut self, socket: Option<&Path>) -> Self {
        self.agent = socket.map(Path::to_owned);
        self
    }

    /// Feeds `input` to standard input (otherwise it is empty).
    pub fn stdin(mut self, input: &[u8]) -> Self {
        self.stdin = Some(input.to_owned());
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(args)
            .current_dir(&self.dir)
            .env("SIGSUM_POLICY_DIR", &self.policy_dir)
            .env_remove("RUST_LOG")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(socket) = &self.agent {
            cmd.env("SSH_AUTH_SOCK", socket);
        }
        cmd
    }

    /// Runs `cairn args...` and waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut child = self.command(args).spawn().expect("spawn cairn");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            tolerate_broken_pipe(child.stdin.take().unwrap().write_all(input));
        }
        Output::from_std(child.wait_with_output().expect("wait for cairn"))
    }

    /// [`Cairn::run`] without blocking the test's async runtime, which
    /// must keep serving the fake log or DNS server `cairn` talks to.
    pub async fn run_async(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::from(self.command(args));
        let mut child = cmd.kill_on_drop(true).spawn().expect("spawn cairn");
        if let Some(input) = &self.stdin {
            use tokio::io::AsyncWriteExt;
            tolerate_broken_pipe(child.stdin.take().unwrap().write_all(input).await);
        }
        let out = tokio::time::timeout(ASYNC_RUN_LIMIT, child.wait_with_output())
            .await
            .expect("cairn finished in time")
            .expect("wait for cairn");
        Output::from_std(out)
    }
}

/// A command that refuses its arguments exits without reading stdin; the
/// broken pipe that leaves us is not a test failure.
fn tolerate_broken_pipe(written: std::io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("write stdin: {e}"),
    }
}

/// Runs `cairn` in `dir` with `args` and optional stdin (see [`Cairn`]).
pub fn cairn(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    with_stdin(Cairn::new(dir), stdin).run(args)
}

/// Runs `cairn` in `dir` with `SIGSUM_POLICY_DIR=policy_dir`.
pub fn cairn_with_policy_dir(
    dir: &Path,
    policy_dir: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    with_stdin(Cairn::new(dir).policy_dir(policy_dir), stdin).run(args)
}

/// Runs `cairn` in `dir` from an async test (see [`Cairn::run_async`]).
pub async fn cairn_async(dir: &Path, args: &[&str]) -> Output {
    Cairn::new(dir).run_async(args).await
}

fn with_stdin(c: Cairn, stdin: Option<&[u8]>) -> Cairn {
    match stdin {
        Some(input) => c.stdin(input),
        None => c,
    }
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}
