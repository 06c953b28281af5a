//! Key formats against recorded known answers.
//!
//! Vectors exercised:
//! * `derived/sigsum-v1-deterministic.json` `keys`: all five key pairs (log,
//!   submitter, witness1, witness2, ratelimit): public key hex, key hash and
//!   `openssh_public` line reproduced byte-exact from the seed; log origin,
//!   note key IDs and vkeys (log type 0x01, witnesses type 0x04).
//! * `sigsum-go/go-test-known-answers.json`:
//!   `openssh_private_key_parse` (ssh-keygen file, 70 columns),
//!   `openssh_private_key_write` (byte-exact sigsum-key output, 64 columns),
//!   `openssh_public_key_parse` (`cases` and `policy_option_cases`),
//!   `test_domain_key` (seed 00…01, also as a raw-hex private key file),
//!   `vkeys` (`cases` and the three `rules`), and every other
//!   `*_openssh` / `public_openssh` field in the file (signed tree heads).

use cairn_sigsum::key::{
    PublicKeyFile, format_openssh_public_key, format_public_key_file, log_origin, log_vkey,
    parse_hex_seed, parse_key_hash_hex, parse_openssh_private_key, parse_openssh_public_key,
    parse_policy_option, parse_private_key_file, parse_public_key_file, parse_public_key_hex,
    parse_vkey, witness_vkey, write_openssh_private_key,
};
use cairn_sigsum::{PublicKey, SigningKey};
use cairn_testvectors::{JsonExt, json, unhex32};
use serde_json::Value;

fn known_answers() -> Value {
    json("sigsum-go/go-test-known-answers.json")
}

fn derived_keys() -> Value {
    json("derived/sigsum-v1-deterministic.json")["keys"].clone()
}

#[test]
fn derived_keys_reproduce_hex_hash_and_openssh_line_from_seed() {
    let keys = derived_keys();
    let obj = keys.as_object().expect("keys is an object");
    assert_eq!(
        obj.len(),
        5,
        "log, submitter, witness1, witness2, ratelimit"
    );
    for (role, k) in obj {
        let signer = SigningKey::from_seed(&unhex32(k.str_at("seed_hex")));
        let public = signer.public_key();
        assert_eq!(public.to_hex(), k.str_at("public_key_hex"), "{role}");
        assert_eq!(
            public.key_hash().to_hex(),
            k.str_at("key_hash_hex"),
            "{role}"
        );
        // sigsum-key writes the line with the comment "sigsum key" and a newline.
        assert_eq!(
            format_public_key_file(&public),
            format!("{}\n", k.str_at("openssh_public")),
            "{role}"
        );
        let parsed = parse_openssh_public_key(k.str_at("openssh_public").as_bytes()).unwrap();
        assert_eq!(parsed.key, public, "{role}");
        assert_eq!(parsed.policy_name, None, "{role}");
        assert_eq!(parse_public_key_hex(k.str_at("public_key_hex")), Ok(public));
        assert_eq!(
            parse_key_hash_hex(k.str_at("key_hash_hex")),
            Ok(public.key_hash())
        );
    }
}

#[test]
fn derived_log_vkey_is_named_by_origin_with_type_ed25519() {
    let log = &derived_keys()["log"];
    let key = PublicKey(unhex32(log.str_at("public_key_hex")));
    assert_eq!(log_origin(&key), log.str_at("origin"));
    let vkey = log_vkey(&key).unwrap();
    assert_eq!(vkey.to_string(), log.str_at("vkey"));
    assert_eq!(hex::encode(vkey.key_id()), log.str_at("note_key_id_hex"));
    let (parsed, parsed_key) = parse_vkey(log.str_at("vkey")).unwrap();
    assert_eq!(parsed_key, key);
    assert_eq!(parsed.sig_type(), 0x01);
}

#[test]
fn derived_witness_vkeys_have_their_names_and_type_cosignature_v1() {
    let keys = derived_keys();
    for role in ["witness1", "witness2"] {
        let w = &keys[role];
        let key = PublicKey(unhex32(w.str_at("public_key_hex")));
        let vkey = witness_vkey(w.str_at("note_key_name"), &key).unwrap();
        assert_eq!(vkey.to_string(), w.str_at("vkey"), "{role}");
        assert_eq!(hex::encode(vkey.key_id()), w.str_at("note_key_id_hex"));
        let (parsed, parsed_key) = parse_vkey(w.str_at("vkey")).unwrap();
        assert_eq!(parsed_key, key, "{role}");
        assert_eq!(parsed.sig_type(), 0x04, "{role}");
        assert_eq!(parsed.name(), w.str_at("note_key_name"), "{role}");
    }
}

#[test]
fn known_answer_vkeys_parse_and_inconsistent_key_ids_are_rejected() {
    let v = &known_answers()["vkeys"];
    assert_eq!(v.arr_at("rules").len(), 3, "rules covered below");
    for case in v.arr_at("cases") {
        let (vkey, key) = parse_vkey(case.str_at("vkey")).unwrap();
        assert_eq!(vkey.name(), case.str_at("key_name"));
        assert_eq!(u64::from(vkey.sig_type()), case.u64_at("type"));
        assert_eq!(key.to_hex(), case.str_at("public_key_hex"));
        assert_eq!(case["key_id_consistent"], Value::Bool(true));

        // Rule 3: a key ID inconsistent with name/type/key is rejected.
        let (name, rest) = case.str_at("vkey").split_once('+').unwrap();
        let (id, b64) = rest.split_once('+').unwrap();
        let flipped = format!("{:08x}", u32::from_str_radix(id, 16).unwrap() ^ 1);
        assert!(parse_vkey(&format!("{name}+{flipped}+{b64}")).is_err());
        assert!(parse_vkey(&format!("{name}x+{id}+{b64}")).is_err());
    }
    // Rules 1 and 2: default log name is the origin with type 0x01; witness
    // vkeys need a name and get type 0x04.
    let key = PublicKey(unhex32(
        "54c4862caba4ef942fe1abc6afb65d63cba0a55d3e6313ff59154b8586d882e2",
    ));
    let log = log_vkey(&key).unwrap();
    assert_eq!(log.name(), log_origin(&key));
    assert_eq!(log.sig_type(), 0x01);
    assert!(witness_vkey("", &key).is_err());
    assert_eq!(
        witness_vkey("example.org/witness", &key)
            .unwrap()
            .sig_type(),
        0x04
    );
}

#[test]
fn ssh_keygen_private_key_parses_to_the_recorded_seed() {
    let v = &known_answers()["openssh_private_key_parse"];
    let key = parse_openssh_private_key(v.str_at("pem").as_bytes()).unwrap();
    assert_eq!(hex::encode(key.seed()), v.str_at("seed_hex"));
    assert_eq!(key.public_key().to_hex(), v.str_at("public_key_hex"));
    assert_eq!(
        format_openssh_public_key(&key.public_key(), None),
        v.str_at("public_openssh")
    );
    // The generic entry point takes the same file.
    let again = parse_private_key_file(v.str_at("pem").as_bytes()).unwrap();
    assert_eq!(again.seed(), key.seed());
}

#[test]
fn private_key_is_written_byte_exact_like_sigsum_key() {
    let v = &known_answers()["openssh_private_key_write"];
    let key = SigningKey::from_seed(&unhex32(v.str_at("seed_hex")));
    assert_eq!(key.public_key().to_hex(), v.str_at("public_key_hex"));
    let check: [u8; 4] = v.str_at("checkint_ascii").as_bytes().try_into().unwrap();
    let written = write_openssh_private_key(&key, u32::from_be_bytes(check));
    assert_eq!(written, v.str_at("expected_file"));
    let back = parse_openssh_private_key(written.as_bytes()).unwrap();
    assert_eq!(back.seed(), key.seed());
}

#[test]
fn public_key_line_cases_match_sigsum_go() {
    let v = &known_answers()["openssh_public_key_parse"];
    let want = v.str_at("public_key_hex");
    let cases = v.arr_at("cases");
    assert_eq!(cases.len(), 11);
    for case in cases {
        let (line, ok, policy) = (
            case[0].as_str().unwrap(),
            case[1].as_bool().unwrap(),
            case[2].as_str().unwrap(),
        );
        match parse_openssh_public_key(line.as_bytes()) {
            Ok(parsed) => {
                assert!(ok, "{line:?} accepted, sigsum-go rejects it");
                assert_eq!(parsed.key.to_hex(), want, "{line:?}");
                let expected = (!policy.is_empty()).then(|| policy.to_owned());
                assert_eq!(parsed.policy_name, expected, "{line:?}");
            }
            Err(e) => assert!(!ok, "{line:?} rejected ({e}), sigsum-go accepts it"),
        }
        // A one-line key file behaves the same.
        assert_eq!(
            parse_public_key_file(line.as_bytes()).is_ok(),
            ok,
            "file {line:?}"
        );
    }
}

#[test]
fn policy_option_cases_match_sigsum_go() {
    let v = &known_answers()["openssh_public_key_parse"];
    let key_line = v.arr_at("cases")[0][0].as_str().unwrap().to_owned();
    let cases = v.arr_at("policy_option_cases");
    assert_eq!(cases.len(), 15);
    for case in cases {
        let (field, ok, policy) = (
            case[0].as_str().unwrap(),
            case[1].as_bool().unwrap(),
            case[2].as_str().unwrap(),
        );
        match parse_policy_option(field.as_bytes()) {
            Ok(name) => {
                assert!(ok, "{field:?} accepted, sigsum-go rejects it");
                assert_eq!(name, policy, "{field:?}");
            }
            Err(e) => assert!(!ok, "{field:?} rejected ({e}), sigsum-go accepts it"),
        }
        // And in front of a key, as it appears in a key file.
        let line = format!("{field} {key_line}");
        let parsed = parse_openssh_public_key(line.as_bytes());
        assert_eq!(parsed.is_ok(), ok, "{line:?}");
    }
}

#[test]
fn test_domain_key_is_the_key_of_seed_one() {
    let v = &known_answers()["test_domain_key"];
    let key = SigningKey::from_seed(&unhex32(v.str_at("seed_hex")));
    assert_eq!(key.public_key().to_hex(), v.str_at("public_key_hex"));
    assert_eq!(
        format_openssh_public_key(&key.public_key(), None),
        v.str_at("public_openssh")
    );
    // tests/policyinpubkey-test writes the token key as `printf '%064x' 1`.
    let raw = format!("{:064x}", 1);
    assert_eq!(raw, v.str_at("seed_hex"));
    for text in [raw.clone(), format!("{raw}\n")] {
        let parsed = parse_private_key_file(text.as_bytes()).unwrap();
        assert_eq!(parsed.public_key(), key.public_key());
    }
    assert_eq!(
        parse_hex_seed(raw.to_uppercase().as_bytes())
            .unwrap()
            .public_key(),
        key.public_key()
    );
}

#[test]
fn every_openssh_public_key_in_the_known_answers_decodes_to_its_hex() {
    fn walk(v: &Value, path: &str, found: &mut usize) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let is_openssh = k.ends_with("_openssh") || k == "public_openssh";
                    if let (true, Some(line)) = (is_openssh, child.as_str()) {
                        let hex_field = if k == "public_openssh" {
                            "public_key_hex".to_owned()
                        } else {
                            k.replace("_openssh", "_hex")
                        };
                        let want = map
                            .get(&hex_field)
                            .and_then(Value::as_str)
                            .unwrap_or_else(|| panic!("{path}/{k} has no {hex_field}"));
                        let parsed = parse_openssh_public_key(line.as_bytes())
                            .unwrap_or_else(|e| panic!("{path}/{k}: {e}"));
                        assert_eq!(parsed.key.to_hex(), want, "{path}/{k}");
                        assert_eq!(
                            format_openssh_public_key(&parsed.key, None),
                            line,
                            "{path}/{k}"
                        );
                        *found += 1;
                    }
                    walk(child, &format!("{path}/{k}"), found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = 0;
    walk(&known_answers(), "", &mut found);
    // signed_tree_head_v1, signed_tree_head_v0, openssh_private_key_parse,
    // test_domain_key.
    assert_eq!(found, 4);
}

#[test]
fn derived_public_keys_form_a_multi_key_file_with_agreeing_policy() {
    let keys = derived_keys();
    let mut text = String::from("# submitters\n\n");
    for role in ["submitter", "witness1", "witness2"] {
        text.push_str(&format!(
            "sigsum-policy=\"my-policy\" {}\n",
            keys[role].str_at("openssh_public")
        ));
    }
    let file = PublicKeyFile::parse(text.as_bytes()).unwrap();
    assert_eq!(file.keys().count(), 3);
    assert_eq!(file.policy_name(), Ok(Some("my-policy")));
    let listed = parse_public_key_file(text.as_bytes()).unwrap();
    assert_eq!(
        listed[0].0.to_hex(),
        keys["submitter"].str_at("public_key_hex")
    );
}
