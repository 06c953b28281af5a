//! `cairn key sign` and `cairn key verify` as child processes: known
//! answers from the known-answer vectors, namespaces, exit statuses, and signing
//! through a real ssh-agent when `-k` names a public key.

mod common;
#[path = "../../client/tests/ssh_agent/mod.rs"]
mod ssh_agent;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_sigsum::key::{format_public_key_file, write_openssh_private_key};
use cairn_sigsum::{Signature, SigningKey};
use common::{Cairn, Output};
use ssh_agent::SshAgent;

const LEAF_NAMESPACE: &str = "sigsum.org/v1/tree-leaf";
const TOKEN_NAMESPACE: &str = "sigsum.org/v1/submit-token";

/// Runs `cairn` in `dir` with `stdin` as standard input and, if given,
/// `agent` as its ssh-agent.
fn cairn(dir: &Path, args: &[&str], stdin: &[u8], agent: Option<&SshAgent>) -> Output {
    Cairn::new(dir)
        .stdin(stdin)
        .agent(agent.map(SshAgent::socket))
        .run(args)
}

/// Writes `key` as `name` (OpenSSH, mode 0600) and `name.pub`.
fn write_key_pair(dir: &Path, name: &str, key: &SigningKey) {
    let private = dir.join(name);
    std::fs::write(&private, write_openssh_private_key(key, 7)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join(format!("{name}.pub")),
        format_public_key_file(&key.public_key()),
    )
    .unwrap();
}

fn derived() -> serde_json::Value {
    cairn_testvectors::json("derived/sigsum-v1-deterministic.json")
}

fn seed(v: &serde_json::Value, who: &str) -> SigningKey {
    SigningKey::from_seed(&cairn_testvectors::unhex32(
        v["keys"][who]["seed_hex"].as_str().unwrap(),
    ))
}

#[test]
fn sign_with_a_namespace_reproduces_the_vectors_leaf_and_token_signatures() {
    let v = derived();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_key_pair(dir, "submitter", &seed(&v, "submitter"));
    write_key_pair(dir, "ratelimit", &seed(&v, "ratelimit"));

    for leaf in v["leaves"].as_array().unwrap() {
        let checksum = cairn_testvectors::unhex(leaf["checksum_hex"].as_str().unwrap());
        let out = cairn(
            dir,
            &["key", "sign", "-k", "submitter", "-n", LEAF_NAMESPACE],
            &checksum,
            None,
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("{}\n", leaf["signature_hex"].as_str().unwrap())
        );
        assert_eq!(out.stderr, "");
    }

    let log_key = cairn_testvectors::unhex(v["keys"]["log"]["public_key_hex"].as_str().unwrap());
    let out = cairn(
        dir,
        &[
            "key",
            "sign",
            "-k",
            "ratelimit",
            "-n",
            TOKEN_NAMESPACE,
            "-o",
            "token.sig",
        ],
        &log_key,
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        std::fs::read_to_string(dir.join("token.sig")).unwrap(),
        format!("{}\n", v["submit_token"]["token_hex"].as_str().unwrap())
    );
}

#[test]
fn signatures_verify_only_under_the_namespace_and_message_they_were_made_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let generated = cairn(dir, &["key", "generate", "-o", "k"], b"", None);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let msg = b"release 1.2.3\n";
    let signed = cairn(
        dir,
        &[
            "key",
            "sign",
            "-k",
            "k",
            "-n",
            "example.org/ns",
            "-o",
            "sig",
        ],
        msg,
        None,
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);

    let verify = |ns: Option<&str>, message: &[u8]| {
        let mut args = vec!["key", "verify", "-k", "k.pub", "-s", "sig"];
        if let Some(n) = ns {
            args.extend(["-n", n]);
        }
        cairn(dir, &args, message, None)
    };
    let ok = verify(Some("example.org/ns"), msg);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!((ok.stdout, ok.stderr), (String::new(), String::new()));
    for (ns, message) in [
        (Some("example.org/other"), &msg[..]),
        (None, &msg[..]),
        (Some(""), &msg[..]),
        (Some("example.org/ns"), &b"release 1.2.4\n"[..]),
    ] {
        let bad = verify(ns, message);
        bad.assert_exit(1, "signature is not valid");
    }
}

#[test]
fn without_a_namespace_the_message_itself_is_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = SigningKey::from_seed(&[0x11; 32]);
    write_key_pair(dir, "k", &key);
    // An empty namespace is no namespace, as in sigsum-key.
    for extra in [&[][..], &["-n", ""][..]] {
        let mut args = vec!["key", "sign", "-k", "k"];
        args.extend_from_slice(extra);
        let out = cairn(dir, &args, b"plain", None);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout, format!("{}\n", key.sign(b"plain").to_hex()));
    }
}

#[test]
fn malformed_signature_files_and_keys_are_errors_with_exit_status_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_key_pair(dir, "k", &SigningKey::from_seed(&[0x11; 32]));
    std::fs::write(dir.join("short.sig"), "abcd\n").unwrap();
    let out = cairn(
        dir,
        &["key", "verify", "-k", "k.pub", "-s", "short.sig"],
        b"m",
        None,
    );
    out.assert_exit(1, "128 hex characters");
    let out = cairn(dir, &["key", "sign", "-k", "missing"], b"m", None);
    out.assert_exit(1, "missing");
}

#[test]
fn a_public_key_signs_through_ssh_agent_like_sigsum_go() {
    let v = derived();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let agent = SshAgent::start();

    // As sigsum-go's tests/sign-agent-test: generate, hand the private key
    // to the agent, delete it, sign with only the public key.
    let generated = cairn(dir, &["key", "generate", "-o", "test.key"], b"", None);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    agent.add(&dir.join("test.key"));
    std::fs::remove_file(dir.join("test.key")).unwrap();
    let signed = cairn(
        dir,
        &[
            "key",
            "sign",
            "-n",
            "sigsum-test",
            "-k",
            "test.key.pub",
            "-o",
            "test.msg.sig",
        ],
        b"foo\n",
        Some(&agent),
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let verified = cairn(
        dir,
        &[
            "key",
            "verify",
            "-k",
            "test.key.pub",
            "-s",
            "test.msg.sig",
            "-n",
            "sigsum-test",
        ],
        b"foo\n",
        None,
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);

    // Ed25519 is deterministic: the agent must give the vectors' bytes.
    write_key_pair(dir, "submitter", &seed(&v, "submitter"));
    agent.add(&dir.join("submitter"));
    let leaf = &v["leaves"][3];
    let out = cairn(
        dir,
        &["key", "sign", "-k", "submitter.pub", "-n", LEAF_NAMESPACE],
        &cairn_testvectors::unhex(leaf["checksum_hex"].as_str().unwrap()),
        Some(&agent),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("{}\n", leaf["signature_hex"].as_str().unwrap())
    );
}

#[test]
fn a_public_key_without_its_private_key_in_the_agent_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = SigningKey::from_seed(&[0x22; 32]);
    write_key_pair(dir, "k", &key);
    let agent = SshAgent::start();
    let out = cairn(dir, &["key", "sign", "-k", "k.pub"], b"m", Some(&agent));
    out.assert_exit(1, "is not in ssh-agent");
    out.assert_exit(1, &cairn_client::agent::fingerprint(&key.public_key()));
    assert_eq!(out.stdout, "");

    let no_agent = cairn(dir, &["key", "sign", "-k", "k.pub"], b"m", None);
    no_agent.assert_exit(1, "SSH_AUTH_SOCK is not set");
}

#[test]
fn verify_accepts_what_an_in_memory_key_signs() {
    // Cross-check of the verify side against the library, independent of
    // `cairn key sign`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = SigningKey::from_seed(&[0x33; 32]);
    write_key_pair(dir, "k", &key);
    let sig: Signature = key.sign_namespaced("ns", b"data");
    std::fs::write(
        dir.join("sig"),
        format!("  {}\n", sig.to_hex().to_uppercase()),
    )
    .unwrap();
    let out = cairn(
        dir,
        &["key", "verify", "-k", "k.pub", "-s", "sig", "-n", "ns"],
        b"data",
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}
