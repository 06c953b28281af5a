//! The built `cairn policy`: `check` and `explain` on files and builtins
//! (exit 0 valid, 1 invalid, 2 unusable), `list` and `show` with a
//! `SIGSUM_POLICY_DIR`, and the derived vectors' policies.

mod common;

use cairn_testvectors::{JsonExt, json};
use common::{cairn, cairn_with_policy_dir, write};

fn key(c: char) -> String {
    c.to_string().repeat(64)
}

#[test]
fn check_accepts_a_valid_policy_and_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "# comment\nlog {} https://log.example/\nwitness A {}\nwitness B {}\nwitness C {}\n\
         group g 2 A B C\nquorum g\n",
        key('1'),
        key('a'),
        key('b'),
        key('c')
    );
    write(dir.path(), "p", text);
    let o = cairn(dir.path(), &["policy", "check", "-p", "p"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "policy p is valid: 1 log(s), 3 witness(es), 1 group(s); quorum g needs at least 2 witness cosignature(s)\n"
    );
}

#[test]
fn check_names_the_invalid_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // k > n is accepted by sigsum-rs 0.3.0 but not by sigsum-go.
    let text = format!(
        "log {}\nwitness A {}\ngroup g 2 A\nquorum g\n",
        key('1'),
        key('a')
    );
    write(dir.path(), "p", text);
    let o = cairn(dir.path(), &["policy", "check", "-p", "p"], None);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("policy p: line 3"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn check_without_a_readable_policy_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            &["policy", "check"][..],
            "give the policy with -p FILE or -P NAME",
        ),
        (&["policy", "check", "-p", "missing"], "missing"),
        (
            &["policy", "check", "-P", "no-such-policy"],
            "no policy named",
        ),
        (
            &["policy", "explain", "-P", "../etc"],
            "invalid policy name",
        ),
    ] {
        let o = cairn(dir.path(), args, None);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{args:?}: {}", o.stderr);
    }
}

#[test]
fn the_derived_vector_policies_pass_check_with_their_minimum() {
    let v = json("derived/sigsum-v1-deterministic.json");
    let dir = tempfile::tempdir().unwrap();
    for (name, needed) in [("two_of_two", 2), ("any", 1)] {
        write(dir.path(), name, v["policies"].str_at(name));
        let o = cairn(dir.path(), &["policy", "check", "-p", name], None);
        assert_eq!(o.code, 0, "{name}: {}", o.stderr);
        assert!(
            o.stdout.contains(&format!(
                "quorum G needs at least {needed} witness cosignature(s)"
            )),
            "{name}: {}",
            o.stdout
        );
    }
}

#[test]
fn explain_shows_the_quorum_tree_and_the_minimum_cosignatures() {
    let dir = tempfile::tempdir().unwrap();
    let o = cairn(
        dir.path(),
        &["policy", "explain", "-P", "sigsum-generic-2025-1"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    for needle in [
        "signed by any one of these 2 logs",
        "at https://seasalp.glasklar.is",
        "group quorum-rule: at least 2 of these 3 must cosign:",
        "    witness witness.glasklar.is (key ",
        "Witnesses (3):",
        "At least 2 witness cosignature(s) are needed to satisfy the quorum",
    ] {
        assert!(
            o.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            o.stdout
        );
    }
}

#[test]
fn list_shows_builtins_and_directory_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let own = format!("log {}\nquorum none\n", key('1'));
    write(&policies, "mine.sigsum-policy", &own);
    write(&policies, "sigsum-test1-2025.sigsum-policy", &own);
    write(&policies, "README", "not a policy");
    // Names only, sorted, as sigsum-policy list prints them.
    let o = cairn_with_policy_dir(dir.path(), &policies, &["policy", "list"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "mine\nsigsum-generic-2025-1\nsigsum-test-2025-3\nsigsum-test1-2025\nsigsum-test2-2025\n"
    );
    assert_eq!(o.stderr, "");
    // -v adds where each comes from.
    let o = cairn_with_policy_dir(dir.path(), &policies, &["policy", "list", "-v"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    let p = policies.display();
    assert_eq!(
        lines,
        [
            format!("mine\t{p}/mine.sigsum-policy"),
            "sigsum-generic-2025-1\tbuiltin".to_owned(),
            "sigsum-test-2025-3\tbuiltin".to_owned(),
            format!(
                "sigsum-test1-2025\t{p}/sigsum-test1-2025.sigsum-policy (overrides the builtin)"
            ),
            "sigsum-test2-2025\tbuiltin".to_owned(),
        ]
    );

    // The file wins for show and for -P.
    let o = cairn_with_policy_dir(
        dir.path(),
        &policies,
        &["policy", "show", "sigsum-test1-2025"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, own);
    let o = cairn_with_policy_dir(
        dir.path(),
        &policies,
        &["policy", "check", "-P", "mine"],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("quorum none"), "{}", o.stdout);
}

#[test]
fn show_prints_a_builtin_verbatim_and_flags_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let o = cairn(dir.path(), &["policy", "show", "sigsum-test1-2025"], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .starts_with("# Policy using the sigsum test log at test.sigsum.org/barreleye\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.ends_with("quorum quorum-rule\n"), "{}", o.stdout);

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(&policies, "broken.sigsum-policy", "quorum nobody\n");
    let o = cairn_with_policy_dir(dir.path(), &policies, &["policy", "show", "broken"], None);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(o.stdout, "quorum nobody\n");
    assert!(o.stderr.contains("line 1"), "{}", o.stderr);

    let o = cairn(dir.path(), &["policy", "show", "no-such-policy"], None);
    assert_eq!(o.code, 2, "{}", o.stderr);
}
