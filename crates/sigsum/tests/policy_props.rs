//! Property tests for the policy and key parsers.
//!
//! Vectors exercised: none from files (inputs are generated); the generator
//! follows the rules of sigsum-go `doc/policy.md` (protocol summary §11).
//!
//! * Arbitrary bytes, and policy-shaped token soup, never panic the policy
//!   parser; arbitrary bytes never panic any key parser, nor do mutations
//!   and truncations of a valid OpenSSH private key.
//! * Generated valid policies (up to 40 logs, 40 witnesses and their groups,
//!   with random SPACE/TAB runs, comments, blank lines, logs before and after
//!   the quorum, log keys reused by witnesses) parse, with the right counts,
//!   and round-trip through the canonical formatter.
//! * Quorum evaluation agrees with an independent model of the group tree,
//!   and is monotone: adding a satisfied witness never breaks a satisfied
//!   quorum.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn_sigsum::key::{
    PublicKeyFile, parse_openssh_private_key, parse_openssh_public_key, parse_policy_option,
    parse_private_key_file, parse_public_key_hex, parse_vkey, write_openssh_private_key,
};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::{KeyHash, PublicKey, SigningKey};
use proptest::prelude::*;

/// How to build one valid policy; every choice is reduced modulo what is
/// available, so any value is usable and shrinking stays meaningful.
#[derive(Debug, Clone)]
struct Recipe {
    log_urls: Vec<bool>,
    witness_urls: Vec<bool>,
    /// Witness `i` reuses log `i`'s key (allowed by the rules).
    shared_keys: Vec<bool>,
    /// Per group: member picks (indices into the free nodes) and threshold.
    groups: Vec<(Vec<usize>, usize)>,
    quorum: usize,
    uppercase: bool,
    whitespace: Vec<u8>,
    comments: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Witness(usize),
    Group(usize),
}

/// The policy the recipe describes, independent of the parser.
#[derive(Debug)]
struct Model {
    log_keys: Vec<String>,
    log_urls: Vec<Option<String>>,
    witness_keys: Vec<String>,
    witness_urls: Vec<Option<String>>,
    groups: Vec<(String, usize, Vec<Node>)>,
    quorum: Option<Node>,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        prop::collection::vec(any::<bool>(), 0..40),
        prop::collection::vec(any::<bool>(), 1..40),
        prop::collection::vec(any::<bool>(), 0..40),
        prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 1..6), any::<usize>()),
            0..40,
        ),
        any::<usize>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 1..64),
        prop::collection::vec(any::<u8>(), 1..16),
    )
        .prop_map(
            |(log_urls, witness_urls, shared_keys, groups, quorum, uppercase, ws, cm)| Recipe {
                log_urls,
                witness_urls,
                shared_keys,
                groups,
                quorum,
                uppercase,
                whitespace: ws,
                comments: cm,
            },
        )
}

fn build(r: &Recipe) -> Model {
    let log_keys: Vec<String> = (0..r.log_urls.len())
        .map(|i| format!("{:064x}", 1000 + i))
        .collect();
    let log_urls = r
        .log_urls
        .iter()
        .enumerate()
        .map(|(i, &u)| u.then(|| format!("https://log{i}.example/#x")))
        .collect();
    let witness_keys = (0..r.witness_urls.len())
        .map(|i| match (r.shared_keys.get(i), log_keys.get(i)) {
            (Some(true), Some(k)) => k.clone(),
            _ => format!("{:064x}", 5000 + i),
        })
        .collect();
    let witness_urls = r
        .witness_urls
        .iter()
        .enumerate()
        .map(|(i, &u)| u.then(|| format!("http://w{i}")))
        .collect();

    let mut free: Vec<Node> = (0..r.witness_urls.len()).map(Node::Witness).collect();
    let mut groups = Vec::new();
    for (picks, t) in &r.groups {
        if free.is_empty() {
            break;
        }
        let mut members = Vec::new();
        for p in picks {
            if free.is_empty() {
                break;
            }
            members.push(free.remove(p % free.len()));
        }
        let n = members.len();
        let k = match t % 3 {
            0 => n,
            1 => 1,
            _ => 1 + (t / 3) % n,
        };
        free.push(Node::Group(groups.len()));
        groups.push((format!("g{}", groups.len()), k, members));
    }
    let nodes = r.witness_urls.len() + groups.len();
    let q = r.quorum % (nodes + 1);
    let quorum = match q {
        0 => None,
        q if q <= r.witness_urls.len() => Some(Node::Witness(q - 1)),
        q => Some(Node::Group(q - 1 - r.witness_urls.len())),
    };
    Model {
        log_keys,
        log_urls,
        witness_keys,
        witness_urls,
        groups,
        quorum,
    }
}

/// Renders the model as a policy file with varied (valid) layout.
fn render(m: &Model, r: &Recipe) -> String {
    let mut ws = r.whitespace.iter().cycle();
    let mut cm = r.comments.iter().cycle();
    // Whether to pad a line; a separate stream so `gap` can own `ws`.
    let mut pad = r.whitespace.iter().rev().cycle();
    let mut gap = || match ws.next().copied().unwrap_or(0) % 4 {
        0 => " ",
        1 => "\t",
        2 => "  ",
        _ => " \t ",
    };
    let case = |k: &str| {
        if r.uppercase {
            k.to_uppercase()
        } else {
            k.to_owned()
        }
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    let half = m.log_keys.len() / 2;
    let log_line = |i: usize| {
        let mut f = vec!["log".to_owned(), case(&m.log_keys[i])];
        f.extend(m.log_urls[i].clone());
        f
    };
    for i in 0..half {
        lines.push(log_line(i));
    }
    for (i, k) in m.witness_keys.iter().enumerate() {
        let mut f = vec!["witness".to_owned(), format!("w{i}"), case(k)];
        f.extend(m.witness_urls[i].clone());
        lines.push(f);
    }
    let name = |n: Node| match n {
        Node::Witness(i) => format!("w{i}"),
        Node::Group(i) => format!("g{i}"),
    };
    for (g, k, members) in &m.groups {
        let n = members.len();
        let t = if *k == n && n > 1 && g.len() % 2 == 0 {
            "all".to_owned()
        } else if *k == 1 && g.len() % 2 == 1 {
            "any".to_owned()
        } else {
            k.to_string()
        };
        let mut f = vec!["group".to_owned(), g.clone(), t];
        f.extend(members.iter().map(|&c| name(c)));
        lines.push(f);
    }
    lines.push(vec![
        "quorum".to_owned(),
        m.quorum.map_or("none".to_owned(), name),
    ]);
    for i in half..m.log_keys.len() {
        lines.push(log_line(i));
    }

    let mut out = String::new();
    for fields in lines {
        match cm.next().copied().unwrap_or(0) % 5 {
            0 => out.push_str("# a comment, with log witness group quorum words\n"),
            1 => out.push_str(&format!("{}\n", gap())),
            2 => out.push_str(&format!("{}#indented\n", gap())),
            _ => {}
        }
        if pad.next().copied().unwrap_or(0) % 3 == 0 {
            out.push_str(gap());
        }
        for (j, f) in fields.iter().enumerate() {
            if j > 0 {
                out.push_str(gap());
            }
            out.push_str(f);
        }
        if pad.next().copied().unwrap_or(0) % 3 == 0 {
            out.push_str(gap());
        }
        out.push('\n');
    }
    out
}

fn model_satisfied(m: &Model, n: Node, sat: &HashSet<usize>) -> bool {
    match n {
        Node::Witness(i) => sat.contains(&i),
        Node::Group(g) => {
            let (_, k, members) = &m.groups[g];
            members
                .iter()
                .filter(|&&c| model_satisfied(m, c, sat))
                .count()
                >= *k
        }
    }
}

fn hashes(m: &Model, sat: &HashSet<usize>) -> HashSet<KeyHash> {
    sat.iter()
        .map(|&i| parse_public_key_hex(&m.witness_keys[i]).unwrap().key_hash())
        .collect()
}

fn subset(m: &Model, bits: &[bool]) -> HashSet<usize> {
    (0..m.witness_keys.len())
        .filter(|i| bits.get(i % bits.len().max(1)).copied().unwrap_or(false))
        .collect()
}

/// Lines made of policy words, names, keys, numbers, whitespace and the odd
/// control character: far more likely than random bytes to reach deep
/// parser states.
fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"log".to_vec()),
        Just(b"witness".to_vec()),
        Just(b"group".to_vec()),
        Just(b"quorum".to_vec()),
        Just(b"none".to_vec()),
        Just(b"all".to_vec()),
        Just(b"any".to_vec()),
        Just(b"W".to_vec()),
        Just(b"G".to_vec()),
        Just(b"#".to_vec()),
        Just(b"0".to_vec()),
        Just(b"1".to_vec()),
        Just(b"+2".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"99999999999999999999999".to_vec()),
        Just(vec![b'a'; 64]),
        Just(vec![b'b'; 64]),
        Just(vec![b'a'; 63]),
        Just(b"http://x".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(vec![0]),
        Just(vec![0xff, 0xfe]),
    ];
    prop::collection::vec(token, 0..200).prop_map(|ts| {
        let mut out = Vec::new();
        for t in ts {
            out.extend_from_slice(&t);
            out.push(b' ');
        }
        out
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_policy_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..4096)
    ) {
        let _ = Policy::parse(&bytes);
    }

    #[test]
    fn policy_shaped_token_soup_never_panics_and_round_trips_when_valid(
        bytes in token_soup()
    ) {
        if let Ok(p) = Policy::parse(&bytes) {
            let _ = p.explain();
            let _ = p.quorum_satisfied(&HashSet::new());
            prop_assert_eq!(Policy::parse(&p.to_bytes()), Ok(p));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_key_parsers(
        bytes in prop::collection::vec(any::<u8>(), 0..2048)
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_openssh_public_key(&bytes);
        let _ = PublicKeyFile::parse(&bytes);
        let _ = parse_private_key_file(&bytes);
        let _ = parse_openssh_private_key(&bytes);
        let _ = parse_policy_option(&bytes);
        let _ = parse_vkey(&text);
        let _ = parse_public_key_hex(&text);
        // Armoured garbage reaches the binary parser.
        let armoured = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            BASE64.encode(&bytes)
        );
        prop_assert!(parse_openssh_private_key(armoured.as_bytes()).is_err());
        // So does garbage after a valid public-key prefix.
        let mut blob = b"ssh-ed25519 ".to_vec();
        blob.extend_from_slice(BASE64.encode(&bytes).as_bytes());
        let _ = parse_openssh_public_key(&blob);
    }

    #[test]
    fn mutated_private_keys_never_panic_and_edits_are_caught(
        seed in any::<[u8; 32]>(),
        check_int in any::<u32>(),
        position in any::<usize>(),
        xor in 1u8..,
        cut in any::<usize>(),
    ) {
        let key = SigningKey::from_seed(&seed);
        let text = write_openssh_private_key(&key, check_int);
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut der = BASE64.decode(body).unwrap();
        let armour = |der: &[u8]| format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            BASE64.encode(der)
        );
        let truncated = &der[..cut % der.len()];
        prop_assert!(parse_openssh_private_key(armour(truncated).as_bytes()).is_err());
        let i = position % der.len();
        der[i] ^= xor;
        // Most single-byte edits are rejected; the ones that are not (in the
        // check-ints, or a comment byte) must still yield the same key.
        if let Ok(k) = parse_openssh_private_key(armour(&der).as_bytes()) {
            prop_assert_eq!(k.seed(), seed);
        }
    }

    #[test]
    fn generated_valid_policies_parse_and_round_trip(r in recipe()) {
        let m = build(&r);
        let text = render(&m, &r);
        let p = Policy::parse(text.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(p.logs().len(), m.log_keys.len());
        prop_assert_eq!(p.witnesses().len(), m.witness_keys.len());
        prop_assert_eq!(p.groups().len(), m.groups.len());
        for (log, want) in p.logs().iter().zip(&m.log_urls) {
            prop_assert_eq!(log.url().and_then(|u| u.as_str()), want.as_deref());
            prop_assert!(p.log_by_key_hash(log.key_hash()).is_some());
        }
        let canonical = p.to_bytes();
        let again = Policy::parse(&canonical)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&canonical))))?;
        prop_assert_eq!(again.to_bytes(), canonical);
        prop_assert_eq!(again, p);
    }

    #[test]
    fn quorum_evaluation_matches_a_model_of_the_group_tree(
        r in recipe(),
        bits in prop::collection::vec(any::<bool>(), 1..40),
    ) {
        let m = build(&r);
        let p = Policy::parse(render(&m, &r).as_bytes()).unwrap();
        let sat = subset(&m, &bits);
        let want = m.quorum.is_none_or(|q| model_satisfied(&m, q, &sat));
        prop_assert_eq!(p.quorum_satisfied(&hashes(&m, &sat)), want);
    }

    #[test]
    fn adding_a_satisfied_witness_never_breaks_a_satisfied_quorum(
        r in recipe(),
        bits in prop::collection::vec(any::<bool>(), 1..40),
        extra in any::<usize>(),
        stranger in any::<[u8; 32]>(),
    ) {
        let m = build(&r);
        let p = Policy::parse(render(&m, &r).as_bytes()).unwrap();
        let sat = hashes(&m, &subset(&m, &bits));
        if p.quorum_satisfied(&sat) {
            let mut more = sat.clone();
            more.extend(hashes(&m, &HashSet::from([extra % m.witness_keys.len()])));
            prop_assert!(p.quorum_satisfied(&more));
            // Hashes the policy does not know change nothing.
            more.insert(PublicKey(stranger).key_hash());
            prop_assert!(p.quorum_satisfied(&more));
        }
    }
}
