//! The built `cairn` where it was compared with sigsum-go v0.14.0's
//! `sigsum-key`, `sigsum-token` and `sigsum-policy` (docs/compatibility.md,
//! "Command-line tools"): the same options and byte-for-byte the same
//! output, taken from sigsum-go's source and the derived vectors.

mod common;

use std::path::Path;

use cairn_sigsum::SigningKey;
use cairn_sigsum::key::{format_public_key_file, write_openssh_private_key};
use cairn_testvectors::{JsonExt, json, unhex32};
use common::{Output, cairn, cairn_with_policy_dir, write};
use serde_json::Value;

fn derived() -> Value {
    json("derived/sigsum-v1-deterministic.json")
}

/// The policies built into sigsum-go v0.14.0, as `sigsum-policy list`
/// prints them with an empty policy directory.
const BUILTIN_LIST: &str =
    "sigsum-generic-2025-1\nsigsum-test-2025-3\nsigsum-test1-2025\nsigsum-test2-2025\n";

fn assert_success(o: &Output, stdout: &str, stderr: &str) {
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, stdout);
    assert_eq!(o.stderr, stderr);
}

// ------------------------------------------------------------ sigsum-key

#[test]
fn from_vkey_verbose_prints_the_key_name_and_type_as_sigsum_key_does() {
    let v = derived();
    let dir = tempfile::tempdir().unwrap();
    let log = &v["keys"]["log"];
    let w1 = &v["keys"]["witness1"];
    let log_line = format!(
        "Key name \"sigsum.org/v1/tree/{}\", key type: 0x01 (ed25519)\n",
        log.str_at("key_hash_hex")
    );
    let w1_line = "Key name \"example.org/witness1\", key type: 0x04 (cosignature/v1)\n";
    for (who, line) in [(log, log_line.as_str()), (w1, w1_line)] {
        let vkey = format!("{}\n", who.str_at("vkey"));
        let openssh = format!("{}\n", who.str_at("openssh_public"));
        for flag in ["-v", "--verbose"] {
            let o = cairn(
                dir.path(),
                &["key", "from-vkey", flag],
                Some(vkey.as_bytes()),
            );
            assert_success(&o, &openssh, line);
        }
        // Without the flag only the key, on stdout.
        let o = cairn(dir.path(), &["key", "from-vkey"], Some(vkey.as_bytes()));
        assert_success(&o, &openssh, "");
        // With -o the key goes to the file and the line still to stderr.
        write(dir.path(), "in.vkey", &vkey);
        let o = cairn(
            dir.path(),
            &["key", "from-vkey", "-k", "in.vkey", "-o", "out.pub", "-v"],
            None,
        );
        assert_success(&o, "", line);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.pub")).unwrap(),
            openssh
        );
    }
}

#[test]
fn from_vkey_verbose_quotes_the_name_as_go_quotes_it() {
    let v = derived();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.pub",
        format!("{}\n", v["keys"]["witness2"].str_at("openssh_public")),
    );
    let name = r#"ex"ample\org"#;
    let vkey = cairn(
        dir.path(),
        &[
            "key",
            "to-vkey",
            "-k",
            "w.pub",
            "-n",
            name,
            "-t",
            "cosignature/v1",
        ],
        None,
    );
    assert_eq!(vkey.code, 0, "{}", vkey.stderr);
    let o = cairn(
        dir.path(),
        &["key", "from-vkey", "-v"],
        Some(vkey.stdout.as_bytes()),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stderr,
        "Key name \"ex\\\"ample\\\\org\", key type: 0x04 (cosignature/v1)\n"
    );
}

#[test]
fn to_vkey_takes_an_empty_name_as_no_name() {
    let v = derived();
    let dir = tempfile::tempdir().unwrap();
    let log = &v["keys"]["log"];
    write(
        dir.path(),
        "log.pub",
        format!("{}\n", log.str_at("openssh_public")),
    );
    let o = cairn(
        dir.path(),
        &["key", "to-vkey", "-k", "log.pub", "-n", ""],
        None,
    );
    assert_success(&o, &format!("{}\n", log.str_at("vkey")), "");
    let o = cairn(
        dir.path(),
        &[
            "key",
            "to-vkey",
            "-k",
            "log.pub",
            "-n",
            "",
            "-t",
            "cosignature/v1",
        ],
        None,
    );
    o.assert_exit(1, "a key name (-n) is required");
    assert_eq!(o.stdout, "");
}

#[test]
fn generate_is_silent_and_answers_to_gen() {
    let dir = tempfile::tempdir().unwrap();
    let o = cairn(dir.path(), &["key", "gen", "-o", "a"], None);
    assert_success(&o, "", "");
    let public = std::fs::read_to_string(dir.path().join("a.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert!(public.ends_with(" sigsum key\n"), "{public}");
    assert!(dir.path().join("a").is_file());
    // -v names the files and the key hash.
    let o = cairn(dir.path(), &["key", "generate", "-o", "b", "-v"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "");
    let hash = cairn(dir.path(), &["key", "to-hash", "-k", "b.pub"], None);
    assert_eq!(
        o.stderr,
        format!(
            "wrote private key b and public key b.pub (key hash {})\n",
            hash.stdout.trim_end()
        )
    );
}

// ---------------------------------------------------------- sigsum-token

/// The vectors' rate-limit key pair (`rl.key`, `rl.pub`) and the log's key
/// (`log.pub`, OpenSSH; `log.hex`, 64 hex characters) in `dir`.
fn token_key_files(dir: &Path, v: &Value) {
    let keys = &v["keys"];
    let rl = SigningKey::from_seed(&unhex32(keys["ratelimit"].str_at("seed_hex")));
    write(dir, "rl.key", write_openssh_private_key(&rl, 7));
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

#[test]
fn token_create_takes_the_log_key_as_l_log_key_or_log() {
    let v = derived();
    let dir = tempfile::tempdir().unwrap();
    token_key_files(dir.path(), &v);
    let token = format!("{}\n", v["submit_token"].str_at("token_hex"));
    for flag in ["-l", "--log-key", "--log"] {
        for file in ["log.pub", "log.hex"] {
            let o = cairn(
                dir.path(),
                &["token", "create", "-k", "rl.key", flag, file],
                None,
            );
            assert_success(&o, &token, "");
        }
    }
    // sigsum-token's full set of short options: -k -l -d -o.
    let o = cairn(
        dir.path(),
        &[
            "token",
            "create",
            "-k",
            "rl.key",
            "-l",
            "log.pub",
            "-d",
            "example.org",
            "-o",
            "header",
        ],
        None,
    );
    assert_success(&o, "", "");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("header")).unwrap(),
        format!("{}\n", v["submit_token"].str_at("http_header"))
    );
    // The log key is required, as in sigsum-token.
    let o = cairn(dir.path(), &["token", "create", "-k", "rl.key"], None);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("--log-key <FILE>"), "{}", o.stderr);
}

#[test]
fn token_verify_takes_the_log_key_as_l_and_is_silent_when_valid() {
    let v = derived();
    let dir = tempfile::tempdir().unwrap();
    token_key_files(dir.path(), &v);
    let token = format!("{}\n", v["submit_token"].str_at("token_hex"));
    // The token on stdin, as sigsum-token verify reads it.
    for flag in ["-l", "--log-key", "--log"] {
        let o = cairn(
            dir.path(),
            &["token", "verify", flag, "log.pub", "-k", "rl.pub"],
            Some(token.as_bytes()),
        );
        assert_success(&o, "", "");
    }
    // Another log's token is not valid for this one; -q silences that.
    let o = cairn(
        dir.path(),
        &["token", "verify", "-l", "rl.pub", "-k", "rl.pub"],
        Some(token.as_bytes()),
    );
    o.assert_exit(1, "cairn token verify: invalid token: ");
    let o = cairn(
        dir.path(),
        &["token", "verify", "-l", "rl.pub", "-k", "rl.pub", "-q"],
        Some(token.as_bytes()),
    );
    assert_eq!(
        (o.code, o.stdout, o.stderr),
        (1, String::new(), String::new())
    );
}

// --------------------------------------------------------- sigsum-policy

#[test]
fn policy_list_prints_only_the_names_as_sigsum_policy_does() {
    let dir = tempfile::tempdir().unwrap();
    let o = cairn(dir.path(), &["policy", "list"], None);
    assert_success(&o, BUILTIN_LIST, "");

    // Files and links to files are listed once each, merged with the
    // builtins; directories and badly named files are not.
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let text = format!("log {}\nquorum none\n", "11".repeat(32));
    write(&policies, "zz-mine.sigsum-policy", &text);
    write(&policies, "sigsum-test2-2025.sigsum-policy", &text);
    write(&policies, "Upper.sigsum-policy", &text);
    std::os::unix::fs::symlink(
        "zz-mine.sigsum-policy",
        policies.join("aa-link.sigsum-policy"),
    )
    .unwrap();
    std::fs::create_dir(policies.join("a-dir.sigsum-policy")).unwrap();
    let o = cairn_with_policy_dir(dir.path(), &policies, &["policy", "list"], None);
    assert_success(&o, &format!("aa-link\n{BUILTIN_LIST}zz-mine\n"), "");
}

#[test]
fn policy_list_still_lists_the_builtins_when_the_directory_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = write(dir.path(), "file", "");
    let o = cairn_with_policy_dir(dir.path(), &not_a_dir, &["policy", "list"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, BUILTIN_LIST);
    assert!(
        o.stderr
            .starts_with("cairn policy: warning: reading policy directory"),
        "{}",
        o.stderr
    );
}
