//! The policy parser and quorum evaluation against recorded cases.
//!
//! Vectors exercised:
//! * `sigsum-go/policy-cases.json`: every `valid_policies` entry (counts and
//!   full quorum truth table), every `invalid_policies` entry (rejected, with
//!   sigsum-go's error substring and the line number), every `extra_cases`
//!   entry (validity; named tests where sigsum-go and sigsum-rs 0.3.0
//!   disagree, following sigsum-go).
//! * `sigsum-go/policy/*.builtin-policy`: all four parse, with the log,
//!   witness and group structure the vectors README states, and equal the
//!   embedded copies.
//! * `rekor-tiles/witness-policy.txt`: rejected (its key is a vkey; sigsum-go
//!   v0.14 takes hex only), and accepted once the vkey is converted to hex
//!   (a policy without logs is valid in sigsum-go).
//! * `derived/sigsum-v1-deterministic.json` `policies` (`two_of_two`, `any`)
//!   with the scenario's keys.

use std::collections::HashSet;

use cairn_sigsum::key::parse_vkey;
use cairn_sigsum::policy::{self, Member, Policy, PolicyError, Quorum};
use cairn_sigsum::{KeyHash, PublicKey};
use cairn_testvectors::{JsonExt, json, text, unhex32};
use serde_json::Value;

fn cases() -> Value {
    json("sigsum-go/policy-cases.json")
}

fn key_hash(hex: &str) -> KeyHash {
    PublicKey(unhex32(hex)).key_hash()
}

fn extra_case(name: &str) -> String {
    cases()
        .arr_at("extra_cases")
        .iter()
        .find(|c| c.str_at("name") == name)
        .unwrap_or_else(|| panic!("extra case {name:?} missing from the vectors"))
        .str_at("policy")
        .to_owned()
}

fn parse_err(text: &str) -> PolicyError {
    match Policy::parse(text.as_bytes()) {
        Ok(p) => panic!("accepted, expected an error: {p:?}"),
        Err(e) => e,
    }
}

fn error_line(e: &PolicyError) -> Option<usize> {
    match e {
        PolicyError::Line { line, .. } => Some(*line),
        _ => None,
    }
}

#[test]
fn valid_policies_have_their_counts_and_quorum_truth_tables() {
    let all = cases();
    let valid = all.arr_at("valid_policies");
    assert_eq!(valid.len(), 2);
    for case in valid {
        let name = case.str_at("name");
        let p = Policy::parse(case.str_at("policy").as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expect = &case["expect"];
        assert_eq!(p.logs().len() as u64, expect.u64_at("logs"), "{name}");
        assert_eq!(
            p.witnesses().len() as u64,
            expect.u64_at("witnesses"),
            "{name}"
        );
        if expect.get("logs_with_url").is_some() {
            let n = p.logs().iter().filter(|l| l.url().is_some()).count();
            assert_eq!(n as u64, expect.u64_at("logs_with_url"), "{name}");
            let n = p.witnesses().iter().filter(|w| w.url().is_some()).count();
            assert_eq!(n as u64, expect.u64_at("witnesses_with_url"), "{name}");
        }
        let table = case.arr_at("quorum_table");
        assert!(table.len() >= 9, "{name}");
        for row in table {
            let set: HashSet<KeyHash> = row
                .arr_at("witness_keys_hex")
                .iter()
                .map(|k| key_hash(k.as_str().unwrap()))
                .collect();
            let want = row["quorum_satisfied"].as_bool().unwrap();
            assert_eq!(p.quorum_satisfied(&set), want, "{name}: {row}");
        }
        // The canonical form means the same thing.
        assert_eq!(Policy::parse(&p.to_bytes()).as_ref(), Ok(&p), "{name}");
    }
}

#[test]
fn mixed_policy_urls_and_lookups_match_sigsum_go() {
    let all = cases();
    let p = Policy::parse(all.arr_at("valid_policies")[0].str_at("policy").as_bytes()).unwrap();
    let urls: Vec<_> = p
        .logs()
        .iter()
        .filter_map(|l| l.url().and_then(|u| u.as_str()))
        .collect();
    assert_eq!(urls, ["http://sigsum.example.org"]);
    let w1 = p
        .witness_by_key_hash(&key_hash(&"c".repeat(64)))
        .expect("W1 is listed");
    assert_eq!(w1.name().as_bytes(), b"W1");
    assert_eq!(w1.url().and_then(|u| u.as_str()), Some("http://w1"));
    // The same key as a log and a witness (W2) is allowed and found by both.
    let a = key_hash(&"a".repeat(64));
    assert!(p.log_by_key_hash(&a).is_some());
    assert_eq!(p.witness_by_key_hash(&a).unwrap().name().as_bytes(), b"W2");
    assert!(p.log_by_key_hash(&key_hash(&"d".repeat(64))).is_none());
}

#[test]
fn invalid_policies_are_rejected_with_sigsum_go_error_and_line() {
    // Where sigsum-go reports the problem (None: not a line error).
    let lines = [
        ("empty", None),
        ("invalid control char (formfeed)", Some(1)),
        ("invalid control char (DEL)", Some(1)),
        ("duplicate log", Some(3)),
        ("end-of-line comment", Some(2)),
        ("duplicate witness", Some(3)),
        ("duplicate name", Some(3)),
        ("duplicate none", Some(2)),
        ("undef name", Some(4)),
        ("missing quorum", None),
        ("repeated member", Some(4)),
        ("member in two groups", Some(6)),
        ("none as member", Some(4)),
    ];
    let all = cases();
    let invalid = all.arr_at("invalid_policies");
    assert_eq!(invalid.len(), lines.len());
    for case in invalid {
        let name = case.str_at("name");
        let e = parse_err(case.str_at("policy"));
        let msg = e.to_string();
        let want = case.str_at("sigsum_go_error_contains");
        assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
        let (_, line) = lines
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expected line for {name:?}"));
        assert_eq!(error_line(&e), *line, "{name}: {msg}");
    }
}

#[test]
fn every_extra_case_has_its_expected_validity() {
    let all = cases();
    let extra = all.arr_at("extra_cases");
    assert_eq!(extra.len(), 11);
    for case in extra {
        let name = case.str_at("name");
        let expected = case.str_at("expected");
        let result = Policy::parse(case.str_at("policy").as_bytes());
        if expected.starts_with("valid") {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else {
            assert!(expected.starts_with("invalid"), "{name}: {expected}");
            assert!(result.is_err(), "{name}: accepted");
        }
    }
}

#[test]
fn hash_sign_inside_a_url_is_data_not_a_comment() {
    let p =
        Policy::parse(extra_case("hash sign inside a field is data (not a comment)").as_bytes())
            .unwrap();
    assert_eq!(
        p.logs()[0].url().and_then(|u| u.as_str()),
        Some("http://example.org/#frag")
    );
}

#[test]
fn tabs_and_surrounding_whitespace_separate_fields() {
    let p = Policy::parse(extra_case("tab separated + leading/trailing whitespace").as_bytes())
        .unwrap();
    assert_eq!(p.logs().len(), 1);
    assert!(p.logs()[0].url().is_none());
    assert_eq!(p.quorum(), Quorum::None);
}

#[test]
fn uppercase_hex_keys_are_accepted() {
    let p = Policy::parse(extra_case("uppercase hex key").as_bytes()).unwrap();
    assert_eq!(p.logs()[0].key().to_hex(), "a".repeat(64));
}

#[test]
fn quorum_on_a_single_witness_needs_that_witness() {
    let p = Policy::parse(extra_case("quorum on a single witness").as_bytes()).unwrap();
    assert!(!p.quorum_satisfied(&HashSet::new()));
    assert!(p.quorum_satisfied(&HashSet::from([key_hash(&"a".repeat(64))])));
    assert_eq!(p.quorum(), Quorum::Node(Member::Witness(0)));
}

#[test]
fn two_quorum_lines_are_rejected_at_the_second() {
    let e = parse_err(&extra_case("two quorum lines"));
    assert_eq!(error_line(&e), Some(3));
    assert!(e.to_string().contains("quorum can only be set once"), "{e}");
}

#[test]
fn forward_reference_is_rejected_as_undefined_name() {
    let e = parse_err(&extra_case("forward reference"));
    assert_eq!(error_line(&e), Some(1));
    assert!(e.to_string().contains("undefined name: \"W\""), "{e}");
}

#[test]
fn threshold_zero_is_rejected_like_sigsum_go_unlike_sigsum_rs() {
    let e = parse_err(&extra_case("threshold 0"));
    assert_eq!(error_line(&e), Some(2));
    assert!(e.to_string().contains("threshold out of range"), "{e}");
}

#[test]
fn threshold_above_member_count_is_rejected_like_sigsum_go_unlike_sigsum_rs() {
    let e = parse_err(&extra_case("threshold > n"));
    assert_eq!(error_line(&e), Some(2));
    assert!(e.to_string().contains("threshold out of range"), "{e}");
}

#[test]
fn witness_named_none_is_rejected_like_sigsum_go_unlike_sigsum_rs() {
    let e = parse_err(&extra_case("witness named none (Go: duplicate name)"));
    assert_eq!(error_line(&e), Some(1));
    assert!(e.to_string().contains("duplicate name: \"none\""), "{e}");
}

#[test]
fn nul_and_cr_are_rejected_like_sigsum_go_unlike_sigsum_rs() {
    for (name, byte) in [("NUL byte in comment", 0x00), ("CR before LF", 0x0d)] {
        let e = parse_err(&extra_case(name));
        assert_eq!(error_line(&e), Some(1), "{name}");
        let want = format!("invalid control character 0x{byte:02x}");
        assert!(e.to_string().contains(&want), "{name}: {e}");
    }
}

#[test]
fn repeated_and_shared_members_are_rejected_like_sigsum_go_unlike_sigsum_rs() {
    // sigsum-rs 0.3.0 accepts these even with a quorum line added; sigsum-go
    // rejects them before reaching the end of the file.
    let all = cases();
    for name in ["repeated member", "member in two groups"] {
        let case = all
            .arr_at("invalid_policies")
            .iter()
            .find(|c| c.str_at("name") == name)
            .unwrap();
        let with_quorum = format!("{}quorum none\n", case.str_at("policy"));
        let e = parse_err(&with_quorum);
        assert!(e.to_string().contains("already a member"), "{name}: {e}");
    }
}

/// (name, logs, witnesses, groups, quorum group threshold, quorum members)
const BUILTINS: [(&str, usize, usize, usize, usize, usize); 4] = [
    ("sigsum-generic-2025-1", 2, 3, 1, 2, 3),
    ("sigsum-test-2025-3", 2, 8, 2, 4, 6),
    ("sigsum-test1-2025", 1, 3, 1, 2, 3),
    ("sigsum-test2-2025", 1, 7, 2, 4, 5),
];

#[test]
fn builtin_policies_parse_with_their_documented_structure() {
    for (name, logs, witnesses, groups, k, n) in BUILTINS {
        let file = text(&format!("sigsum-go/policy/{name}.builtin-policy"));
        let embedded = policy::builtin(name).expect("embedded");
        assert_eq!(embedded, file, "{name}: embedded copy differs");
        let p = Policy::parse(embedded.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.logs().len(), logs, "{name}");
        assert_eq!(p.witnesses().len(), witnesses, "{name}");
        assert_eq!(p.groups().len(), groups, "{name}");
        assert!(p.logs().iter().all(|l| l.url().is_some()), "{name}");
        let Quorum::Node(Member::Group(q)) = p.quorum() else {
            panic!("{name}: quorum is not a group");
        };
        let q = &p.groups()[q];
        assert_eq!(q.name().as_bytes(), b"quorum-rule", "{name}");
        assert_eq!((q.threshold(), q.members().len()), (k, n), "{name}");
        assert!(p.explain().contains("quorum-rule"), "{name}");
    }
}

#[test]
fn generic_builtin_needs_two_of_its_three_witnesses() {
    let p = Policy::parse(policy::builtin("sigsum-generic-2025-1").unwrap().as_bytes()).unwrap();
    let w: Vec<KeyHash> = p.witnesses().iter().map(|w| *w.key_hash()).collect();
    assert!(!p.quorum_satisfied(&HashSet::from([w[0]])));
    assert!(p.quorum_satisfied(&HashSet::from([w[0], w[2]])));
    assert!(p.quorum_satisfied(&HashSet::from([w[1], w[2]])));
    // A log key is not a witness.
    let log = *p.logs()[0].key_hash();
    assert!(!p.quorum_satisfied(&HashSet::from([w[0], log])));
}

#[test]
fn test_2025_3_builtin_nests_a_two_of_three_group_in_four_of_six() {
    let p = Policy::parse(policy::builtin("sigsum-test-2025-3").unwrap().as_bytes()).unwrap();
    let inner = &p.groups()[0];
    assert_eq!(inner.name().as_bytes(), b"glasklar-test-witnesses");
    assert_eq!((inner.threshold(), inner.members().len()), (2, 3));
    let hash_of = |name: &str| {
        *p.witnesses()
            .iter()
            .find(|w| w.name().as_bytes() == name.as_bytes())
            .unwrap_or_else(|| panic!("{name}"))
            .key_hash()
    };
    let outer_direct = [
        "witness.navigli.sunlight.geomys.org",
        "remora.n621.de",
        "witness.stagemole.eu",
        "tillitis.se/test-witness-1",
    ];
    // Four direct members: satisfied.
    let four: HashSet<KeyHash> = outer_direct.iter().map(|n| hash_of(n)).collect();
    assert!(p.quorum_satisfied(&four));
    // Three direct members and one Glasklar witness: the inner group fails.
    let mut three_plus_one: HashSet<KeyHash> =
        outer_direct[..3].iter().map(|n| hash_of(n)).collect();
    three_plus_one.insert(hash_of("poc.sigsum.org/nisse"));
    assert!(!p.quorum_satisfied(&three_plus_one));
    // ... and with a second Glasklar witness the inner group counts.
    three_plus_one.insert(hash_of("rgdd.se/poc-witness"));
    assert!(p.quorum_satisfied(&three_plus_one));
}

#[test]
fn rekor_tiles_policy_with_a_vkey_is_rejected_like_sigsum_go() {
    let file = text("rekor-tiles/witness-policy.txt");
    let e = parse_err(&file);
    assert_eq!(error_line(&e), Some(1), "{e}");
    assert!(e.to_string().contains("invalid public key"), "{e}");
}

#[test]
fn rekor_tiles_policy_with_its_key_in_hex_needs_only_its_witness() {
    // The same file with the vkey replaced by the hex key it holds (as
    // `sigsum-key from-vkey | sigsum-key to-hex` would give). It lists no
    // log: sigsum-go has no rule requiring one, so it parses; such a policy
    // accepts no tree head, but serves a witness-only check.
    let file = text("rekor-tiles/witness-policy.txt");
    let vkey = file.split_ascii_whitespace().nth(2).unwrap();
    let (_, key) = parse_vkey(vkey).unwrap();
    let hex_file = file.replace(vkey, &key.to_hex());
    let p = Policy::parse(hex_file.as_bytes()).unwrap();
    assert!(p.logs().is_empty());
    assert_eq!(p.witnesses().len(), 1);
    let w = &p.witnesses()[0];
    assert_eq!(w.name().as_bytes(), b"o1");
    assert_eq!(
        w.url().and_then(|u| u.as_str()),
        Some("http://witness:8100")
    );
    assert!(p.quorum_satisfied(&HashSet::from([key.key_hash()])));
    assert!(!p.quorum_satisfied(&HashSet::new()));
    assert!(p.explain().contains("No log is listed"));
}

#[test]
fn derived_scenario_policies_name_the_scenario_log_and_witnesses() {
    let d = json("derived/sigsum-v1-deterministic.json");
    let keys = &d["keys"];
    let log = key_hash(keys["log"].str_at("public_key_hex"));
    let w1 = key_hash(keys["witness1"].str_at("public_key_hex"));
    let w2 = key_hash(keys["witness2"].str_at("public_key_hex"));
    assert_eq!(log.to_hex(), keys["log"].str_at("key_hash_hex"));

    let two = Policy::parse(d["policies"].str_at("two_of_two").as_bytes()).unwrap();
    let l = two.log_by_key_hash(&log).expect("log listed");
    assert_eq!(
        l.url().and_then(|u| u.as_str()),
        Some("http://127.0.0.1:6965")
    );
    assert!(!two.quorum_satisfied(&HashSet::from([w1])));
    assert!(!two.quorum_satisfied(&HashSet::from([w2])));
    assert!(two.quorum_satisfied(&HashSet::from([w1, w2])));

    let any = Policy::parse(d["policies"].str_at("any").as_bytes()).unwrap();
    assert!(any.log_by_key_hash(&log).unwrap().url().is_none());
    assert!(!any.quorum_satisfied(&HashSet::new()));
    assert!(any.quorum_satisfied(&HashSet::from([w1])));
    assert!(any.quorum_satisfied(&HashSet::from([w2])));
    assert_eq!(d["policies"].as_object().unwrap().len(), 2);
}
