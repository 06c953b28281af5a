//! Running the built `cairn` binary from integration tests, shared by the
//! CLI's test files (each includes it with `mod common;`).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a `cairn` run produced.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cairn` with `args`, optional stdin, and an empty named-policy
/// directory (so a host's /etc/sigsum/policy cannot change the results).
pub fn cairn(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let policy_dir = dir.join("empty-policy-dir");
    std::fs::create_dir_all(&policy_dir).unwrap();
    cairn_with_policy_dir(dir, &policy_dir, args, stdin)
}

/// Runs `cairn` in `dir` with `SIGSUM_POLICY_DIR=policy_dir`.
pub fn cairn_with_policy_dir(
    dir: &Path,
    policy_dir: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .env("SIGSUM_POLICY_DIR", policy_dir)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    if let Some(input) = stdin {
        // A command that refuses its arguments exits without reading stdin;
        // the broken pipe that leaves us is not a test failure.
        match child.stdin.take().unwrap().write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("write stdin: {e}"),
        }
    }
    let out = child.wait_with_output().expect("wait for cairn");
    Output {
        code: out.status.code().expect("exit code, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// Asserts that `cairn COMMAND... --help` succeeds and prints usage for
/// every command given.
pub fn assert_every_command_has_help(commands: &[&[&str]]) {
    let dir = tempfile::tempdir().unwrap();
    for command in commands {
        let args = [command, &["--help"][..]].concat();
        let o = cairn(dir.path(), &args, None);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        assert!(o.stdout.contains("Usage:"), "{args:?}: {}", o.stdout);
    }
}
