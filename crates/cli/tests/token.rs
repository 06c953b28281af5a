//! The built `cairn token` against the derived vectors' submit token and a
//! real UDP DNS server on 127.0.0.1 (`cairn-client`'s test server, included
//! by path): `create` and `record` output byte for byte as sigsum-token's,
//! and `verify` exit statuses (0 valid, 1 invalid, 2 unusable).

#[path = "../../client/tests/fake_dns/mod.rs"]
mod fake_dns;
#[path = "../../client/tests/ssh_agent/mod.rs"]
mod ssh_agent;

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_sigsum::SigningKey;
use cairn_sigsum::key::{format_public_key_file, write_openssh_private_key};
use cairn_testvectors::{JsonExt, json, unhex32};
use common::{Cairn, Output, cairn, write};
use fake_dns::{Entry, FakeDns};
use serde_json::Value;
use ssh_agent::SshAgent;

fn derived() -> Value {
    json("derived/sigsum-v1-deterministic.json")
}

/// Writes the vectors' rate-limit key pair (`rl.key`, `rl.pub`) and the
/// log's public key (`log.pub`, OpenSSH; `log.hex`, 64 hex characters).
fn key_files(dir: &Path, v: &Value) {
    let keys = &v["keys"];
    let rl = SigningKey::from_seed(&unhex32(keys["ratelimit"].str_at("seed_hex")));
    write(dir, "rl.key", write_openssh_private_key(&rl, 0x0102_0304));
    write(dir, "rl.pub", format_public_key_file(&rl.public_key()));
    write(
        dir,
        "log.pub",
        format!("{}\n", keys["log"].str_at("openssh_public")),
    );
    write(
        dir,
        "log.hex",
        format!("{}\n", keys["log"].str_at("public_key_hex")),
    );
}

fn other_key_hex() -> String {
    SigningKey::from_seed(&[0x99; 32]).public_key().to_hex()
}

/// The zone of the verify tests: example.org publishes the rate-limit key,
/// wrong.example another key, old.example only the v0 record, many.example
/// twelve records of which only the eleventh is the key, broken.example
/// fails.
fn zone(v: &Value) -> FakeDns {
    let good = v["submit_token"].str_at("dns_txt_value").to_owned();
    let mut many: Vec<String> = (0..12).map(|_| other_key_hex()).collect();
    many[10] = good.clone();
    let entries: HashMap<String, Entry> = [
        (
            "_sigsum_v1.example.org",
            Entry::txt(std::slice::from_ref(&good)),
        ),
        ("_sigsum_v1.wrong.example", Entry::txt(&[other_key_hex()])),
        ("_sigsum_v0.old.example", Entry::txt(&[good])),
        ("_sigsum_v1.many.example", Entry::txt(&many)),
        ("_sigsum_v1.broken.example", Entry::ServFail),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e))
    .collect();
    FakeDns::start(entries)
}

/// A directory with the vectors' key files and a DNS server for [`zone`].
struct Setup {
    v: Value,
    dir: tempfile::TempDir,
    dns: FakeDns,
}

impl Setup {
    fn new() -> Setup {
        let v = derived();
        let dir = tempfile::tempdir().unwrap();
        key_files(dir.path(), &v);
        let dns = zone(&v);
        Setup { v, dir, dns }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn token(&self) -> &str {
        self.v["submit_token"].str_at("token_hex")
    }

    fn header(&self, domain: &str) -> String {
        format!("sigsum-token: {domain} {}", self.token())
    }

    /// `cairn token verify --log-key log.pub --dns-server <ours> EXTRA...`.
    fn verify(&self, extra: &[&str], stdin: Option<&[u8]>) -> Output {
        let server = self.dns.addr().to_string();
        let mut args = vec![
            "token",
            "verify",
            "--log-key",
            "log.pub",
            "--dns-server",
            &server,
        ];
        args.extend_from_slice(extra);
        cairn(self.path(), &args, stdin)
    }

    /// Verifies the vectors' token in a header naming `domain`.
    fn verify_header(&self, domain: &str) -> Output {
        self.verify(&[&self.header(domain)], None)
    }
}

#[test]
fn create_prints_the_known_token_and_header() {
    let s = Setup::new();
    for log_key in ["log.pub", "log.hex"] {
        let o = cairn(
            s.path(),
            &["token", "create", "-k", "rl.key", "--log-key", log_key],
            None,
        );
        o.assert_exit(0, "");
        assert_eq!(o.stdout, format!("{}\n", s.token()));
    }
    let o = cairn(
        s.path(),
        &[
            "token",
            "create",
            "-k",
            "rl.key",
            "--log",
            "log.pub",
            "-d",
            "example.org",
            "-o",
            "header.txt",
        ],
        None,
    );
    o.assert_exit(0, "");
    assert_eq!(
        std::fs::read_to_string(s.path().join("header.txt")).unwrap(),
        format!("{}\n", s.v["submit_token"].str_at("http_header"))
    );
}

#[test]
fn create_signs_through_ssh_agent_when_given_a_public_key() {
    let s = Setup::new();
    let agent = SshAgent::start();
    let private = s.path().join("rl.key");
    // ssh-add refuses private keys others can read.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    agent.add(&private);
    let args = ["token", "create", "-k", "rl.pub", "--log-key", "log.pub"];
    let o = Cairn::new(s.path()).agent(Some(agent.socket())).run(&args);
    o.assert_exit(0, "");
    assert_eq!(o.stdout, format!("{}\n", s.token()));
    cairn(s.path(), &args, None).assert_exit(1, "SSH_AUTH_SOCK is not set");
}

#[test]
fn create_refuses_a_domain_no_log_could_parse() {
    let s = Setup::new();
    let o = cairn(
        s.path(),
        &[
            "token",
            "create",
            "-k",
            "rl.key",
            "--log-key",
            "log.pub",
            "-d",
            "a b.org",
        ],
        None,
    );
    o.assert_exit(1, "domain \"a b.org\"");
    assert!(o.stdout.is_empty());
}

#[test]
fn record_prints_the_zone_file_line() {
    let s = Setup::new();
    let o = cairn(s.path(), &["token", "record", "-k", "rl.pub"], None);
    o.assert_exit(0, "");
    assert_eq!(
        o.stdout,
        format!(
            "_sigsum_v1 IN TXT \"{}\"\n",
            s.v["submit_token"].str_at("dns_txt_value")
        )
    );
}

#[test]
fn record_of_the_test_domain_key_is_the_published_one() {
    // test.sigsum.org publishes the key of the Ed25519 seed 00…01.
    let mut seed = [0u8; 32];
    seed[31] = 1;
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed(&seed).public_key();
    write(dir.path(), "test.pub", format_public_key_file(&key));
    let o = cairn(dir.path(), &["token", "record", "-k", "test.pub"], None);
    o.assert_exit(0, "");
    assert_eq!(
        o.stdout,
        "_sigsum_v1 IN TXT \"4cb5abf6ad79fbf5abbccafcc269d85cd2651ed4b885b5869f241aedf0a5ba29\"\n"
    );
}

#[test]
fn verify_accepts_a_header_whose_domain_publishes_the_key() {
    let s = Setup::new();
    let header = format!("{}\n", s.header("example.org"));
    // Silent, as sigsum-token verify; -v says what vouched.
    let o = s.verify(&[], Some(header.as_bytes()));
    assert_eq!(
        (o.code, o.stdout, o.stderr),
        (0, String::new(), String::new())
    );
    let o = s.verify(&["-v"], Some(header.as_bytes()));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stderr,
        "cairn token verify: valid: verified by a key at _sigsum_v1.example.org.\n"
    );
    // The same as an argument, and a bare token with --domain.
    s.verify(&["-v", &s.header("example.org")], None)
        .assert_exit(0, "valid");
    s.verify(&["-v", "-d", "example.org", s.token()], None)
        .assert_exit(0, "valid");
    assert_eq!(s.dns.queries().len(), 4);
}

#[test]
fn verify_falls_back_to_sigsum_v0_when_v1_does_not_exist() {
    let s = Setup::new();
    s.verify(&["-v", &s.header("old.example")], None)
        .assert_exit(0, "_sigsum_v0.old.example.");
}

#[test]
fn verify_rejects_a_domain_publishing_another_key() {
    let s = Setup::new();
    s.verify_header("wrong.example").assert_exit(
        1,
        "invalid token: domain wrong.example: no key at _sigsum_v1.wrong.example.",
    );
}

#[test]
fn verify_tries_only_the_first_ten_records() {
    let s = Setup::new();
    let o = s.verify_header("many.example");
    o.assert_exit(1, "10 key(s) tried");
    o.assert_exit(1, "2 record(s) beyond the first 10");
}

#[test]
fn verify_reports_missing_records_as_invalid_and_dns_failures_as_errors() {
    let s = Setup::new();
    s.verify_header("nowhere.example")
        .assert_exit(1, "no TXT record at");
    s.verify_header("broken.example")
        .assert_exit(2, "DNS lookup of _sigsum_v1.broken.example. failed");
}

#[test]
fn verify_with_a_key_needs_no_dns() {
    let s = Setup::new();
    let base = ["token", "verify", "--log-key", "log.hex", "-k"];
    let run = |rest: &[&str]| cairn(s.path(), &[&base[..], rest].concat(), None);
    run(&["rl.pub", "-v", s.token()]).assert_exit(0, "the key in rl.pub");
    // The log key itself is not the rate-limit key.
    run(&["log.pub", s.token()]).assert_exit(1, "does not verify it");
    let quiet = run(&["rl.pub", "-q", &s.token().replace('1', "2")]);
    quiet.assert_exit(1, "");
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert!(s.dns.queries().is_empty());
}

#[test]
fn verify_without_a_way_to_check_or_with_bad_input_is_a_usage_error() {
    let s = Setup::new();
    for (extra, needle) in [
        (&[s.token()][..], "a bare token needs --domain"),
        (&["abcd"], "token:"),
        (&["x-token: example.org abcd"], "expected a bare hex token"),
        (&["sigsum-token: example.org"], "sigsum-token header"),
    ] {
        let o = cairn(
            s.path(),
            &[&["token", "verify", "--log-key", "log.pub"][..], extra].concat(),
            None,
        );
        o.assert_exit(2, needle);
    }
    // A header for another domain than --domain is not that domain's token.
    let header = s.header("example.org");
    s.verify(&["-d", "other.org", &header], None)
        .assert_exit(1, "not \"other.org\"");
}
