//! The built `cairn` binary on the known-answer vectors: `verify` (exit 0 valid,
//! 1 invalid with the failed step named, 2 unusable input) and `key`.
//!
//! Vectors: `sigsum-go/go-test-proofs.json` (raw-hash mode),
//! `derived/sigsum-v1-deterministic.json` (`proof_cases` with sigsum-go's
//! results, and `keys`), `sigsum-rs/readme-proof.json` (builtin policy
//! `sigsum-test-2025-3`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_sigsum::PublicKey;
use cairn_sigsum::crypto::hash;
use cairn_sigsum::key::{PublicKeyFile, format_public_key_file, parse_private_key_file};
use cairn_testvectors::{JsonExt, json, unhex32};
use common::{Output, cairn, write};
use serde_json::Value;

fn pubkey_file(hex_key: &str) -> String {
    format_public_key_file(&PublicKey(unhex32(hex_key)))
}

fn assert_valid(o: &Output) {
    assert_eq!(o.code, 0, "expected valid; stderr: {}", o.stderr);
}

fn assert_invalid(o: &Output, needle: &str) {
    assert_eq!(o.code, 1, "expected invalid; stderr: {}", o.stderr);
    assert!(
        o.stderr.contains("invalid proof") && o.stderr.contains(needle),
        "stderr lacks {needle:?}: {}",
        o.stderr
    );
}

// ------------------------------------------------------ sigsum-go proofs

fn go_case(name: &str) -> Value {
    json("sigsum-go/go-test-proofs.json")
        .arr_at("verify_cases")
        .iter()
        .find(|c| c.str_at("name") == name)
        .unwrap_or_else(|| panic!("no verify case {name}"))
        .clone()
}

/// Lays out a go-test-proofs case: message file (raw 32 bytes), its
/// proof, the submitter key and the policy.
fn go_layout(dir: &Path, c: &Value) {
    write(dir, "msg", unhex32(c.str_at("message_hex")));
    write(dir, "msg.proof", c.str_at("proof"));
    write(
        dir,
        "submitter.pub",
        format!("{}\n", c.str_at("submitter_public_key_openssh")),
    );
    write(dir, "policy", c.str_at("policy"));
}

#[test]
fn go_proofs_verify_in_raw_hash_mode_from_raw_bytes_and_from_hex() {
    for name in ["no-cosignatures", "one-witness"] {
        let dir = tempfile::tempdir().unwrap();
        let c = go_case(name);
        go_layout(dir.path(), &c);
        let args = [
            "verify",
            "-p",
            "policy",
            "-k",
            "submitter.pub",
            "--raw-hash",
            "msg",
        ];
        assert_valid(&cairn(dir.path(), &args, None));

        write(
            dir.path(),
            "hexmsg",
            format!("{}\n", c.str_at("message_hex")),
        );
        let args = [
            "verify",
            "-p",
            "policy",
            "-k",
            "submitter.pub",
            "--raw-hash",
            "hexmsg",
            "--proof",
            "msg.proof",
        ];
        assert_valid(&cairn(dir.path(), &args, None));

        // Without --raw-hash the file is data to hash: another message.
        let args = ["verify", "-p", "policy", "-k", "submitter.pub", "msg"];
        assert_invalid(&cairn(dir.path(), &args, None), "leaf signature");
    }
}

#[test]
fn go_one_witness_proof_without_its_cosignature_fails_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let c = go_case("one-witness");
    go_layout(dir.path(), &c);
    let stripped: String = c
        .str_at("proof")
        .lines()
        .filter(|l| !l.starts_with("cosignature="))
        .map(|l| format!("{l}\n"))
        .collect();
    write(dir.path(), "msg.proof", stripped);
    let args = [
        "verify",
        "-p",
        "policy",
        "-k",
        "submitter.pub",
        "--raw-hash",
        "msg",
    ];
    assert_invalid(&cairn(dir.path(), &args, None), "quorum not satisfied");
}

// --------------------------------------------------------- derived cases

fn derived() -> Value {
    json("derived/sigsum-v1-deterministic.json")
}

/// Lays out a derived proof case as data file, proof, key and policy.
fn derived_layout(dir: &Path, c: &Value) {
    write(dir, "artifact", c.str_at("data_utf8"));
    write(dir, "artifact.proof", c.str_at("proof"));
    write(
        dir,
        "submitter.pub",
        pubkey_file(c.str_at("submitter_public_key_hex")),
    );
    write(dir, "policy", c.str_at("policy"));
}

#[test]
fn derived_proof_cases_give_sigsum_go_results() {
    let v = derived();
    let cases = v.arr_at("proof_cases");
    assert_eq!(cases.len(), 9);
    for c in cases {
        let name = c.str_at("name");
        let dir = tempfile::tempdir().unwrap();
        derived_layout(dir.path(), c);
        let out = cairn(
            dir.path(),
            &["verify", "-p", "policy", "-k", "submitter.pub", "artifact"],
            None,
        );
        // The failed step, in words sigsum-go's message also uses.
        let expected = match c.str_at("expected_under_sigsum_go_semantics") {
            "OK" => None,
            "leaf signature not valid" => Some("leaf signature not valid"),
            "duplicate cosignature keyhash" => Some("duplicate cosignature"),
            "unknown log" => Some("unknown log"),
            s if s.starts_with("not enough cosignatures") => Some("quorum not satisfied"),
            other => panic!("{name}: unmapped expectation {other:?}"),
        };
        match expected {
            None => assert_valid(&out),
            Some(needle) => assert_invalid(&out, needle),
        }
        eprintln!("{name}: ok");
    }
}

#[test]
fn version_1_proof_is_read_and_its_short_checksum_checked() {
    let v = derived();
    let c = v
        .arr_at("proof_cases")
        .iter()
        .find(|c| c.str_at("name") == "valid-2of2")
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    derived_layout(dir.path(), &c);
    let checksum = hash(&unhex32(c.str_at("message_hex")));
    let v1_for = |short: &str| -> String {
        let v2 = c.str_at("proof");
        let mut lines: Vec<String> = v2.lines().map(str::to_owned).collect();
        lines[0] = "version=1".into();
        let fields: Vec<&str> = lines[2].trim_start_matches("leaf=").split(' ').collect();
        lines[2] = format!("leaf={short} {} {}", fields[0], fields[1]);
        lines.iter().map(|l| format!("{l}\n")).collect()
    };
    let args = ["verify", "-p", "policy", "-k", "submitter.pub", "artifact"];
    write(
        dir.path(),
        "artifact.proof",
        v1_for(&hex::encode(&checksum[..2])),
    );
    assert_valid(&cairn(dir.path(), &args, None));

    let wrong = hex::encode([checksum[0] ^ 1, checksum[1]]);
    write(dir.path(), "artifact.proof", v1_for(&wrong));
    assert_invalid(&cairn(dir.path(), &args, None), "checksum");
}

#[test]
fn data_on_stdin_needs_an_explicit_proof() {
    let v = derived();
    let c = v.arr_at("proof_cases")[0].clone();
    let dir = tempfile::tempdir().unwrap();
    derived_layout(dir.path(), &c);
    let data = c.str_at("data_utf8").as_bytes();
    let ok = cairn(
        dir.path(),
        &[
            "verify",
            "-p",
            "policy",
            "-k",
            "submitter.pub",
            "-",
            "--proof",
            "artifact.proof",
        ],
        Some(data),
    );
    assert_valid(&ok);
    let usage = cairn(
        dir.path(),
        &["verify", "-p", "policy", "-k", "submitter.pub", "-"],
        Some(data),
    );
    assert_eq!(usage.code, 2, "{}", usage.stderr);
}

#[test]
fn unusable_inputs_exit_2_and_say_why() {
    let v = derived();
    let c = v.arr_at("proof_cases")[0].clone();
    let dir = tempfile::tempdir().unwrap();
    derived_layout(dir.path(), &c);
    write(dir.path(), "bad.pub", "ssh-rsa AAAA\n");
    write(dir.path(), "bad-policy", "quorum nobody\n");
    let cases: [(&[&str], &str); 6] = [
        (
            &["verify", "-k", "submitter.pub", "artifact"],
            "no trust policy",
        ),
        (
            &["verify", "-p", "policy", "-k", "submitter.pub", "missing"],
            "missing",
        ),
        (
            &[
                "verify",
                "-p",
                "policy",
                "-k",
                "submitter.pub",
                "artifact",
                "--proof",
                "nope",
            ],
            "nope",
        ),
        (
            &["verify", "-p", "policy", "-k", "bad.pub", "artifact"],
            "bad.pub",
        ),
        (
            &[
                "verify",
                "-p",
                "bad-policy",
                "-k",
                "submitter.pub",
                "artifact",
            ],
            "bad-policy",
        ),
        (
            &[
                "verify",
                "-p",
                "policy",
                "-P",
                "sigsum-test-2025-3",
                "-k",
                "submitter.pub",
                "artifact",
            ],
            "cannot be used with",
        ),
    ];
    for (args, needle) in cases {
        let o = cairn(dir.path(), args, None);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
}

// ------------------------------------------------------ sigsum-rs README

fn readme_layout(dir: &Path, key_prefix: &str) -> Value {
    let v = json("sigsum-rs/readme-proof.json");
    write(dir, "hello.txt", v.str_at("data_utf8"));
    write(dir, "hello.txt.proof", v.str_at("proof"));
    write(
        dir,
        "submitter.pub",
        format!(
            "{key_prefix}{}",
            pubkey_file(v.str_at("submitter_public_key_hex"))
        ),
    );
    v
}

#[test]
fn readme_proof_verifies_under_the_builtin_sigsum_test_2025_3_only() {
    let dir = tempfile::tempdir().unwrap();
    let v = readme_layout(dir.path(), "");
    assert_eq!(v.str_at("policy_name"), "sigsum-test-2025-3");
    let ok = cairn(
        dir.path(),
        &[
            "verify",
            "-P",
            "sigsum-test-2025-3",
            "-k",
            "submitter.pub",
            "hello.txt",
        ],
        None,
    );
    assert_valid(&ok);
    for other in [
        "sigsum-test1-2025",
        "sigsum-test2-2025",
        "sigsum-generic-2025-1",
    ] {
        let o = cairn(
            dir.path(),
            &["verify", "-P", other, "-k", "submitter.pub", "hello.txt"],
            None,
        );
        assert_invalid(&o, "unknown log");
    }
    write(dir.path(), "hello.txt", "Hello, Sigsum?\n");
    let o = cairn(
        dir.path(),
        &[
            "verify",
            "-P",
            "sigsum-test-2025-3",
            "-k",
            "submitter.pub",
            "hello.txt",
        ],
        None,
    );
    assert_invalid(&o, "leaf signature");
}

#[test]
fn policy_named_in_the_key_file_is_used_without_p_options() {
    let dir = tempfile::tempdir().unwrap();
    readme_layout(dir.path(), "sigsum-policy=\"sigsum-test-2025-3\" ");
    let o = cairn(
        dir.path(),
        &["verify", "-k", "submitter.pub", "hello.txt"],
        None,
    );
    assert_valid(&o);
}

#[test]
fn named_policy_from_sigsum_policy_dir_overrides_the_builtin() {
    let dir = tempfile::tempdir().unwrap();
    readme_layout(dir.path(), "");
    let policies = dir.path().join("empty-policy-dir");
    std::fs::create_dir_all(&policies).unwrap();
    // Same name as the builtin, but a policy without the proof's log.
    write(
        &policies,
        "sigsum-test-2025-3.sigsum-policy",
        format!("log {}\nquorum none\n", "ab".repeat(32)),
    );
    let o = cairn(
        dir.path(),
        &[
            "verify",
            "-P",
            "sigsum-test-2025-3",
            "-k",
            "submitter.pub",
            "hello.txt",
        ],
        None,
    );
    assert_invalid(&o, "unknown log");
}

// ------------------------------------------------------------------ keys

#[test]
fn key_generate_writes_a_sigsum_key_pair_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let o = cairn(dir.path(), &["key", "generate", "-o", "k"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let private = std::fs::read(dir.path().join("k")).unwrap();
    let public = std::fs::read(dir.path().join("k.pub")).unwrap();
    let mode = std::fs::metadata(dir.path().join("k"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(private.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    let key = parse_private_key_file(&private).expect("private key parses");
    let file = PublicKeyFile::parse(&public).expect("public key parses");
    assert_eq!(file.keys().copied().collect::<Vec<_>>(), [key.public_key()]);
    assert_eq!(
        String::from_utf8(public).unwrap(),
        format_public_key_file(&key.public_key())
    );

    // A second key pair differs (the seed is random).
    let o = cairn(dir.path(), &["key", "generate", "-o", "k2"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let key2 = parse_private_key_file(&std::fs::read(dir.path().join("k2")).unwrap()).unwrap();
    assert_ne!(key2.public_key(), key.public_key());

    let again = cairn(dir.path(), &["key", "generate", "-o", "k"], None);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read(dir.path().join("k")).unwrap(), private);
}

#[test]
fn key_conversions_match_the_derived_keys() {
    let v = derived();
    let keys = &v["keys"];
    let dir = tempfile::tempdir().unwrap();
    for (who, k) in keys.as_object().unwrap() {
        let file = format!("{who}.pub");
        write(
            dir.path(),
            &file,
            format!("{}\n", k.str_at("openssh_public")),
        );
        let hex_out = cairn(dir.path(), &["key", "to-hex", "-k", &file], None);
        assert_eq!(hex_out.code, 0, "{}", hex_out.stderr);
        assert_eq!(hex_out.stdout, format!("{}\n", k.str_at("public_key_hex")));
        let hash_out = cairn(dir.path(), &["key", "to-hash", "-k", &file], None);
        assert_eq!(hash_out.stdout, format!("{}\n", k.str_at("key_hash_hex")));
        // from-hex on stdin gives back the OpenSSH line sigsum-key writes.
        let back = cairn(
            dir.path(),
            &["key", "from-hex"],
            Some(format!("{}\n", k.str_at("public_key_hex")).as_bytes()),
        );
        assert_eq!(back.stdout, format!("{}\n", k.str_at("openssh_public")));
    }

    let log = &keys["log"];
    write(
        dir.path(),
        "log.pub",
        format!("{}\n", log.str_at("openssh_public")),
    );
    let vkey = cairn(dir.path(), &["key", "to-vkey", "-k", "log.pub"], None);
    assert_eq!(vkey.stdout, format!("{}\n", log.str_at("vkey")));

    let w1 = &keys["witness1"];
    let wvkey = cairn(
        dir.path(),
        &[
            "key",
            "to-vkey",
            "-k",
            "witness1.pub",
            "-n",
            w1.str_at("note_key_name"),
            "-t",
            "cosignature/v1",
        ],
        None,
    );
    assert_eq!(wvkey.stdout, format!("{}\n", w1.str_at("vkey")));
    let no_name = cairn(
        dir.path(),
        &[
            "key",
            "to-vkey",
            "-k",
            "witness1.pub",
            "-t",
            "cosignature/v1",
        ],
        None,
    );
    assert_eq!(no_name.code, 1);
    assert!(no_name.stderr.contains("-n"), "{}", no_name.stderr);

    // to-hex reads stdin by default; from-vkey inverts to-vkey.
    let stdin_hex = cairn(
        dir.path(),
        &["key", "to-hex"],
        Some(log.str_at("openssh_public").as_bytes()),
    );
    assert_eq!(
        stdin_hex.stdout,
        format!("{}\n", log.str_at("public_key_hex"))
    );
    let from_vkey = cairn(
        dir.path(),
        &["key", "from-vkey"],
        Some(w1.str_at("vkey").as_bytes()),
    );
    assert_eq!(
        from_vkey.stdout,
        format!("{}\n", w1.str_at("openssh_public"))
    );

    // -o writes the output to a file.
    let o = cairn(
        dir.path(),
        &["key", "to-hash", "-k", "log.pub", "-o", "log.hash"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log.hash")).unwrap(),
        format!("{}\n", log.str_at("key_hash_hex"))
    );
}

#[test]
fn bad_key_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (args, input) in [
        (&["key", "to-hex"][..], &b"ssh-ed25519 !!!\n"[..]),
        (&["key", "from-hex"][..], &b"abcd\n"[..]),
        (&["key", "from-vkey"][..], &b"name+00000000+AQ==\n"[..]),
    ] {
        let o = cairn(dir.path(), args, Some(input));
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("cairn key: error: "), "{}", o.stderr);
    }
}
