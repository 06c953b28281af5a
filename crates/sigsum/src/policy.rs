//! The Sigsum policy file and quorum evaluation, as strict as sigsum-go
//! since v0.13.0 (protocol summary §11; sigsum-go `doc/policy.md`).
//!
//! ```text
//! log <hex pubkey> [<url>]
//! witness <name> <hex pubkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! A tree head is valid under a policy iff it is signed by any listed log and
//! the quorum is satisfied: a witness is satisfied iff its cosignature
//! verifies, a group iff at least `k` of its members are.
//!
//! Parsing rules (each rejected input names its line):
//! * lines end with `\n`; fields are separated by runs of SPACE/TAB, with
//!   leading and trailing whitespace allowed; a line whose first field starts
//!   with `#` is a comment (there are no end-of-line comments);
//! * only the octets 0x09, 0x0a, 0x20–0x7e and 0x80–0xff may appear anywhere
//!   (so `\r` is rejected); non-ASCII octets are opaque and names are compared
//!   bytewise;
//! * logs and witnesses may appear in any order; groups and the quorum may
//!   only name witnesses and groups defined on earlier lines;
//! * witnesses and groups share one namespace, in which `none` is predefined:
//!   it may only be the quorum;
//! * exactly one quorum line; `1 ≤ k ≤ n` for every group (`any` = 1,
//!   `all` = n), and a name is a group member at most once in the whole file;
//! * no two logs and no two witnesses share a key (a log and a witness may).
//!
//! Where the Rust crate `sigsum` 0.3.0 is laxer (threshold 0, `k > n`,
//! control characters, a witness named `none`, repeated members) this module
//! follows sigsum-go, the reference.
//!
//! Implementation limits (sigsum-go's document asks for at least 32 of
//! each): [`MAX_LOGS`], [`MAX_WITNESSES`], [`MAX_GROUPS`], [`MAX_LINE_BYTES`],
//! [`MAX_POLICY_BYTES`].
//!
//! Named policies (`-P <name>`, or the `sigsum-policy` option of a key file)
//! resolve to `$SIGSUM_POLICY_DIR/<name>.sigsum-policy`, then to the four
//! policies built into sigsum-go, which are embedded here ([`builtin`]). The
//! file-system lookup belongs to the CLI; this module provides the pure parts.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::crypto::{KeyHash, PublicKey};
use crate::key::hex32;

/// Most `log` lines a policy may have.
pub const MAX_LOGS: usize = 256;
/// Most `witness` lines a policy may have.
pub const MAX_WITNESSES: usize = 256;
/// Most `group` lines a policy may have. Also bounds the nesting depth, and
/// so the recursion depth of quorum evaluation.
pub const MAX_GROUPS: usize = 256;
/// Longest line, in bytes: sigsum-go reads lines with Go's `bufio.Scanner`,
/// whose default limit this is, so longer lines fail there too.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Largest policy file, in bytes (real ones are a few KiB).
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// The predefined name of the empty quorum (no cosignature required).
pub const NONE: &str = "none";

/// The environment variable naming the directory of named policies.
pub const POLICY_DIR_ENV: &str = "SIGSUM_POLICY_DIR";
/// The directory of named policies when [`POLICY_DIR_ENV`] is unset.
pub const DEFAULT_POLICY_DIR: &str = "/etc/sigsum/policy";
/// The file-name suffix of a named policy in the policy directory.
pub const POLICY_FILE_SUFFIX: &str = ".sigsum-policy";

/// The policies built into sigsum-go (`pkg/policy/builtin/`), byte-identical,
/// by name.
const BUILTINS: [(&str, &str); 4] = [
    (
        "sigsum-generic-2025-1",
        include_str!("../builtin-policies/sigsum-generic-2025-1.builtin-policy"),
    ),
    (
        "sigsum-test-2025-3",
        include_str!("../builtin-policies/sigsum-test-2025-3.builtin-policy"),
    ),
    (
        "sigsum-test1-2025",
        include_str!("../builtin-policies/sigsum-test1-2025.builtin-policy"),
    ),
    (
        "sigsum-test2-2025",
        include_str!("../builtin-policies/sigsum-test2-2025.builtin-policy"),
    ),
];

/// Why a policy file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("policy is {0} bytes, more than the limit of {MAX_POLICY_BYTES}")]
    TooLarge(usize),
    /// A line is invalid.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: LineError,
    },
    /// The file has no `quorum` line.
    #[error("no quorum defined")]
    NoQuorum,
}

/// What is wrong with one policy line. Messages contain sigsum-go's wording
/// where it has one, so that users see familiar errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// A control character other than TAB, or DEL.
    #[error("invalid control character 0x{0:02x}")]
    ControlCharacter(u8),
    /// The first field is not `log`, `witness`, `group` or `quorum`.
    #[error("unknown keyword: {0:?}")]
    UnknownKeyword(PolicyText),
    /// A `log` line without a key, or with more than key and URL.
    #[error("invalid log policy line, public key required, url optional ({0} arguments)")]
    LogArguments(usize),
    /// A `witness` line without name and key, or with more than those and URL.
    #[error(
        "invalid witness policy line, public key and name required, url optional ({0} arguments)"
    )]
    WitnessArguments(usize),
    /// A `group` line without name, threshold and at least one member.
    #[error("too few arguments, name, threshold and at least one member is required")]
    GroupArguments,
    /// A `quorum` line without exactly one name.
    #[error("incorrect number of arguments: group or witness required ({0} arguments)")]
    QuorumArguments(usize),
    /// A public key that is not 64 hex characters.
    #[error("invalid public key {0:?}: expected 64 hex characters")]
    BadKey(PolicyText),
    /// A second log with the same key.
    #[error("duplicate log: {0}")]
    DuplicateLog(PublicKey),
    /// A second witness with the same key.
    #[error("duplicate witness: {0}")]
    DuplicateWitness(PublicKey),
    /// A witness or group name already defined (or `none`).
    #[error("duplicate name: {0:?}")]
    DuplicateName(PolicyText),
    /// A member or quorum name not defined on an earlier line.
    #[error("undefined name: {0:?}")]
    UndefinedName(PolicyText),
    /// `none` listed as a group member.
    #[error("group/witness \"none\" cannot be a group member")]
    NoneAsMember,
    /// A name listed as a member a second time (in this or another group).
    #[error("group/witness {member:?} is already a member of {group:?}")]
    AlreadyMember {
        /// The repeated member.
        member: PolicyText,
        /// The group it already belongs to.
        group: PolicyText,
    },
    /// A threshold that is not `all`, `any` or a decimal number.
    #[error("invalid threshold {0:?}: expected all, any or a number")]
    BadThreshold(PolicyText),
    /// A numeric threshold outside `1..=n`.
    #[error("threshold out of range: k = {k} for n = {n} members")]
    ThresholdOutOfRange {
        /// The threshold as written.
        k: PolicyText,
        /// The number of members.
        n: usize,
    },
    /// A second `quorum` line.
    #[error("quorum can only be set once (first set on line {0})")]
    DuplicateQuorum(usize),
    /// More than [`MAX_LOGS`] logs.
    #[error("too many logs (limit {MAX_LOGS})")]
    TooManyLogs,
    /// More than [`MAX_WITNESSES`] witnesses.
    #[error("too many witnesses (limit {MAX_WITNESSES})")]
    TooManyWitnesses,
    /// More than [`MAX_GROUPS`] groups.
    #[error("too many groups (limit {MAX_GROUPS})")]
    TooManyGroups,
}

/// A name or URL from a policy file: opaque octets (no SPACE, TAB or control
/// characters; usually, but not necessarily, UTF-8). Compared bytewise.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyText(Box<[u8]>);

impl PolicyText {
    fn new(bytes: &[u8]) -> Self {
        PolicyText(bytes.into())
    }

    /// The octets as written in the file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text if it is UTF-8. A URL that is not cannot be used to contact
    /// anyone; callers treat it as absent.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Display for PolicyText {
    /// The text, with invalid UTF-8 replaced by U+FFFD (for humans only).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for PolicyText {
    /// Quoted and escaped, like Go's `%q`, so error messages are unambiguous.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{s:?}"),
            None => write!(f, "\"{}\"", self.0.escape_ascii()),
        }
    }
}

/// A log the policy trusts to sign tree heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    key: PublicKey,
    key_hash: KeyHash,
    url: Option<PolicyText>,
}

impl Log {
    /// The log's public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// SHA-256 of the key: the log's identity in proofs and origins.
    pub fn key_hash(&self) -> &KeyHash {
        &self.key_hash
    }
    /// Where to submit, if given (submitters use only logs with a URL).
    pub fn url(&self) -> Option<&PolicyText> {
        self.url.as_ref()
    }
}

/// A witness the policy knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    name: PolicyText,
    key: PublicKey,
    key_hash: KeyHash,
    url: Option<PolicyText>,
}

impl Witness {
    /// The witness's name, meaningful only inside the policy file.
    pub fn name(&self) -> &PolicyText {
        &self.name
    }
    /// The witness's public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// SHA-256 of the key: identifies the witness's cosignatures.
    pub fn key_hash(&self) -> &KeyHash {
        &self.key_hash
    }
    /// Where a log reaches the witness, if given.
    pub fn url(&self) -> Option<&PolicyText> {
        self.url.as_ref()
    }
}

/// A member of a group, or the quorum: an index into [`Policy::witnesses`]
/// or [`Policy::groups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    /// `Policy::witnesses()[i]`.
    Witness(usize),
    /// `Policy::groups()[i]`.
    Group(usize),
}

/// A `k`-of-`n` witness group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    name: PolicyText,
    threshold: usize,
    members: Vec<Member>,
}

impl Group {
    /// The group's name.
    pub fn name(&self) -> &PolicyText {
        &self.name
    }
    /// `k`: how many members must be satisfied (`1 ≤ k ≤ n`).
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// The `n ≥ 1` members, each defined earlier in the file, in file order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// What the quorum line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// `quorum none`: no cosignature is required.
    None,
    /// A witness or group.
    Node(Member),
}

/// A parsed, validated Sigsum policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<Log>,
    witnesses: Vec<Witness>,
    groups: Vec<Group>,
    quorum: Quorum,
}

impl Policy {
    /// Parses a policy file (see the module documentation for the rules).
    /// The first invalid line is reported with its number; a file without a
    /// quorum line is [`PolicyError::NoQuorum`].
    pub fn parse(input: &[u8]) -> Result<Policy, PolicyError> {
        // Counted with the final newline that `to_bytes` always writes, so
        // that every policy this accepts also accepts its canonical form.
        let canonical_len = input.len() + usize::from(input.last() != Some(&b'\n'));
        if canonical_len > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(canonical_len));
        }
        let mut b = Builder::default();
        for (i, line) in input.split(|&c| c == b'\n').enumerate() {
            let n = i + 1;
            b.line(n, line)
                .map_err(|reason| PolicyError::Line { line: n, reason })?;
        }
        b.finish()
    }

    /// The logs, in file order.
    pub fn logs(&self) -> &[Log] {
        &self.logs
    }

    /// The witnesses, in file order.
    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// The groups, in file order; a group's members precede it.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The quorum.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// The log with this key hash, if the policy lists it.
    pub fn log_by_key_hash(&self, key_hash: &KeyHash) -> Option<&Log> {
        self.logs.iter().find(|l| &l.key_hash == key_hash)
    }

    /// The witness with this key hash, if the policy lists it.
    pub fn witness_by_key_hash(&self, key_hash: &KeyHash) -> Option<&Witness> {
        self.witnesses.iter().find(|w| &w.key_hash == key_hash)
    }

    /// Whether the quorum is satisfied when exactly the witnesses whose key
    /// hashes are in `satisfied` have valid cosignatures.
    ///
    /// The caller must put a key hash in the set only after verifying that
    /// witness's cosignature on the tree head; unknown hashes are ignored.
    /// Monotone: adding hashes never turns `true` into `false`.
    pub fn quorum_satisfied(&self, satisfied: &HashSet<KeyHash>) -> bool {
        match self.quorum {
            Quorum::None => true,
            Quorum::Node(m) => self.member_satisfied(m, satisfied),
        }
    }

    fn member_satisfied(&self, m: Member, satisfied: &HashSet<KeyHash>) -> bool {
        match m {
            Member::Witness(i) => self
                .witnesses
                .get(i)
                .is_some_and(|w| satisfied.contains(&w.key_hash)),
            // Members precede their group, so the recursion ends; its depth
            // is at most MAX_GROUPS.
            Member::Group(i) => self.groups.get(i).is_some_and(|g| {
                g.members
                    .iter()
                    .filter(|&&c| self.member_satisfied(c, satisfied))
                    .count()
                    >= g.threshold
            }),
        }
    }

    /// The name of a witness or group.
    pub fn member_name(&self, m: Member) -> Option<&PolicyText> {
        match m {
            Member::Witness(i) => self.witnesses.get(i).map(|w| &w.name),
            Member::Group(i) => self.groups.get(i).map(|g| &g.name),
        }
    }

    /// The policy in canonical form: logs, witnesses, groups, quorum, one
    /// space between fields, thresholds as `any` (k = 1 < n), `all` (k = n)
    /// or a number. Parses back to an equal [`Policy`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let push_url = |out: &mut Vec<u8>, url: &Option<PolicyText>| {
            if let Some(u) = url {
                out.push(b' ');
                out.extend_from_slice(u.as_bytes());
            }
            out.push(b'\n');
        };
        for l in &self.logs {
            out.extend_from_slice(format!("log {}", l.key).as_bytes());
            push_url(&mut out, &l.url);
        }
        for w in &self.witnesses {
            out.extend_from_slice(b"witness ");
            out.extend_from_slice(w.name.as_bytes());
            out.extend_from_slice(format!(" {}", w.key).as_bytes());
            push_url(&mut out, &w.url);
        }
        for g in &self.groups {
            out.extend_from_slice(b"group ");
            out.extend_from_slice(g.name.as_bytes());
            out.extend_from_slice(format!(" {}", threshold_word(g)).as_bytes());
            for &m in &g.members {
                out.push(b' ');
                out.extend_from_slice(self.member_name(m).map_or(&[][..], |n| n.as_bytes()));
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b"quorum ");
        match self.quorum {
            Quorum::None => out.extend_from_slice(NONE.as_bytes()),
            Quorum::Node(m) => {
                out.extend_from_slice(self.member_name(m).map_or(&[][..], |n| n.as_bytes()))
            }
        }
        out.push(b'\n');
        out
    }

    /// Describes the policy in words, for `cairn policy`: the logs, then the
    /// quorum as an indented tree, then witnesses the quorum does not count.
    /// Equal to the [`Display`](fmt::Display) output.
    pub fn explain(&self) -> String {
        self.to_string()
    }

    fn explain_member(&self, f: &mut fmt::Formatter<'_>, m: Member, depth: usize) -> fmt::Result {
        let indent = "  ".repeat(depth);
        match m {
            Member::Witness(i) => match self.witnesses.get(i) {
                Some(w) => writeln!(f, "{indent}witness {} (key {})", w.name, w.key),
                None => Ok(()),
            },
            Member::Group(i) => {
                let Some(g) = self.groups.get(i) else {
                    return Ok(());
                };
                let n = g.members.len();
                let rule = match (g.threshold, n) {
                    (1, 1) => "its only member must cosign".to_owned(),
                    (1, _) => format!("any 1 of these {n} must cosign"),
                    (k, n) if k == n => format!("all {n} of these must cosign"),
                    (k, n) => format!("at least {k} of these {n} must cosign"),
                };
                writeln!(f, "{indent}group {}: {rule}:", g.name)?;
                for &c in &g.members {
                    self.explain_member(f, c, depth + 1)?;
                }
                Ok(())
            }
        }
    }

    /// Witnesses reachable from the quorum.
    fn counted_witnesses(&self) -> HashSet<usize> {
        let mut counted = HashSet::new();
        let mut stack = match self.quorum {
            Quorum::None => vec![],
            Quorum::Node(m) => vec![m],
        };
        while let Some(m) = stack.pop() {
            match m {
                Member::Witness(i) => {
                    counted.insert(i);
                }
                Member::Group(i) => {
                    if let Some(g) = self.groups.get(i) {
                        stack.extend(g.members.iter().copied());
                    }
                }
            }
        }
        counted
    }
}

impl fmt::Display for Policy {
    /// The same text as [`Policy::explain`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.logs.len();
        match n {
            0 => writeln!(f, "No log is listed, so no tree head is valid.")?,
            1 => writeln!(f, "A tree head is valid if it is signed by this log:")?,
            _ => writeln!(
                f,
                "A tree head is valid if it is signed by any one of these {n} logs:"
            )?,
        }
        for l in &self.logs {
            write!(f, "  log {} (key hash {})", l.key, l.key_hash)?;
            match &l.url {
                Some(u) => writeln!(f, " at {u}")?,
                None => writeln!(f)?,
            }
        }
        match self.quorum {
            Quorum::None => writeln!(f, "No cosignatures are required (quorum none).")?,
            Quorum::Node(m) => {
                writeln!(f, "and if it is cosigned according to the quorum:")?;
                self.explain_member(f, m, 1)?;
            }
        }
        let counted = self.counted_witnesses();
        let uncounted: Vec<&Witness> = self
            .witnesses
            .iter()
            .enumerate()
            .filter(|(i, _)| !counted.contains(i))
            .map(|(_, w)| w)
            .collect();
        if !uncounted.is_empty() {
            writeln!(f, "Witnesses listed but not counted by the quorum:")?;
            for w in uncounted {
                writeln!(f, "  witness {} (key {})", w.name, w.key)?;
            }
        }
        Ok(())
    }
}

/// The threshold as digits: never longer than the `any`/`all` the input may
/// have used (n ≤ 256 has at most three digits), so a line that fit the line
/// limit still fits it in canonical form.
fn threshold_word(g: &Group) -> String {
    g.threshold.to_string()
}

/// What a defined name refers to, and the group it has joined, if any.
struct NameEntry {
    node: Member,
    member_of: Option<usize>,
}

#[derive(Default)]
struct Builder {
    logs: Vec<Log>,
    witnesses: Vec<Witness>,
    groups: Vec<Group>,
    names: HashMap<Box<[u8]>, NameEntry>,
    log_keys: HashSet<PublicKey>,
    witness_keys: HashSet<PublicKey>,
    quorum: Option<(Quorum, usize)>,
}

impl Builder {
    fn line(&mut self, number: usize, line: &[u8]) -> Result<(), LineError> {
        if line.len() > MAX_LINE_BYTES {
            return Err(LineError::TooLong);
        }
        if let Some(&c) = line
            .iter()
            .find(|&&c| (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(LineError::ControlCharacter(c));
        }
        let fields: Vec<&[u8]> = line
            .split(|&c| c == b' ' || c == b'\t')
            .filter(|f| !f.is_empty())
            .collect();
        let Some((&keyword, args)) = fields.split_first() else {
            return Ok(());
        };
        match keyword {
            k if k.starts_with(b"#") => Ok(()),
            b"log" => self.log(args),
            b"witness" => self.witness(args),
            b"group" => self.group(args),
            b"quorum" => self.set_quorum(number, args),
            other => Err(LineError::UnknownKeyword(PolicyText::new(other))),
        }
    }

    fn log(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let (&key, url) = match args {
            [key] => (key, None),
            [key, url] => (key, Some(PolicyText::new(url))),
            _ => return Err(LineError::LogArguments(args.len())),
        };
        let key = parse_key(key)?;
        if self.log_keys.contains(&key) {
            return Err(LineError::DuplicateLog(key));
        }
        if self.logs.len() >= MAX_LOGS {
            return Err(LineError::TooManyLogs);
        }
        self.log_keys.insert(key);
        self.logs.push(Log {
            key,
            key_hash: key.key_hash(),
            url,
        });
        Ok(())
    }

    fn witness(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let (&name, &key, url) = match args {
            [name, key] => (name, key, None),
            [name, key, url] => (name, key, Some(PolicyText::new(url))),
            _ => return Err(LineError::WitnessArguments(args.len())),
        };
        let key = parse_key(key)?;
        self.check_new_name(name)?;
        if self.witness_keys.contains(&key) {
            return Err(LineError::DuplicateWitness(key));
        }
        if self.witnesses.len() >= MAX_WITNESSES {
            return Err(LineError::TooManyWitnesses);
        }
        self.witness_keys.insert(key);
        self.names.insert(
            name.into(),
            NameEntry {
                node: Member::Witness(self.witnesses.len()),
                member_of: None,
            },
        );
        self.witnesses.push(Witness {
            name: PolicyText::new(name),
            key,
            key_hash: key.key_hash(),
            url,
        });
        Ok(())
    }

    fn group(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let [name, threshold, member_names @ ..] = args else {
            return Err(LineError::GroupArguments);
        };
        if member_names.is_empty() {
            return Err(LineError::GroupArguments);
        }
        self.check_new_name(name)?;
        if self.groups.len() >= MAX_GROUPS {
            return Err(LineError::TooManyGroups);
        }
        let n = member_names.len();
        let k = parse_threshold(threshold, n)?;
        let index = self.groups.len();

        // Validate every member before recording any membership, so a failed
        // line leaves no trace (the parse stops anyway, but keep it clean).
        let mut members = Vec::with_capacity(n);
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(n);
        for &m in member_names {
            if m == NONE.as_bytes() {
                return Err(LineError::NoneAsMember);
            }
            let entry = self
                .names
                .get(m)
                .ok_or_else(|| LineError::UndefinedName(PolicyText::new(m)))?;
            let earlier_group = match entry.member_of {
                Some(g) => self.groups.get(g).map(|g| g.name.clone()),
                None if seen.contains(m) => Some(PolicyText::new(name)),
                None => None,
            };
            if let Some(group) = earlier_group {
                return Err(LineError::AlreadyMember {
                    member: PolicyText::new(m),
                    group,
                });
            }
            seen.insert(m);
            members.push(entry.node);
        }
        for &m in member_names {
            if let Some(entry) = self.names.get_mut(m) {
                entry.member_of = Some(index);
            }
        }
        self.names.insert(
            (*name).into(),
            NameEntry {
                node: Member::Group(index),
                member_of: None,
            },
        );
        self.groups.push(Group {
            name: PolicyText::new(name),
            threshold: k,
            members,
        });
        Ok(())
    }

    fn set_quorum(&mut self, number: usize, args: &[&[u8]]) -> Result<(), LineError> {
        let [name] = args else {
            return Err(LineError::QuorumArguments(args.len()));
        };
        if let Some((_, first)) = self.quorum {
            return Err(LineError::DuplicateQuorum(first));
        }
        let quorum = if *name == NONE.as_bytes() {
            Quorum::None
        } else {
            let entry = self
                .names
                .get(*name)
                .ok_or_else(|| LineError::UndefinedName(PolicyText::new(name)))?;
            Quorum::Node(entry.node)
        };
        self.quorum = Some((quorum, number));
        Ok(())
    }

    fn check_new_name(&self, name: &[u8]) -> Result<(), LineError> {
        if name == NONE.as_bytes() || self.names.contains_key(name) {
            return Err(LineError::DuplicateName(PolicyText::new(name)));
        }
        Ok(())
    }

    fn finish(self) -> Result<Policy, PolicyError> {
        let (quorum, _) = self.quorum.ok_or(PolicyError::NoQuorum)?;
        Ok(Policy {
            logs: self.logs,
            witnesses: self.witnesses,
            groups: self.groups,
            quorum,
        })
    }
}

fn parse_key(field: &[u8]) -> Result<PublicKey, LineError> {
    hex32(field)
        .map(PublicKey)
        .map_err(|_| LineError::BadKey(PolicyText::new(field)))
}

/// `all` = n, `any` = 1, or a decimal number in `1..=n`.
///
/// sigsum-go converts the number with Go's `strconv.Atoi`, which also takes
/// a sign and leading zeros (`+2`, `02`); those are accepted here too, so
/// that every file sigsum-go accepts is accepted.
fn parse_threshold(field: &[u8], n: usize) -> Result<usize, LineError> {
    match field {
        b"all" => return Ok(n),
        b"any" => return Ok(1),
        _ => {}
    }
    let (negative, digits) = match field {
        [b'+', rest @ ..] => (false, rest),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(LineError::BadThreshold(PolicyText::new(field)));
    }
    let out_of_range = || LineError::ThresholdOutOfRange {
        k: PolicyText::new(field),
        n,
    };
    // Any value above n is out of range, so saturate instead of overflowing.
    let k = digits.iter().fold(0usize, |acc, &d| {
        acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    });
    if negative || k == 0 || k > n {
        return Err(out_of_range());
    }
    Ok(k)
}

// --- Named policies --------------------------------------------------------

/// A policy name that does not match `^[a-z0-9][a-z0-9-]+$`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy name {0:?}, does not match regexp \"^[a-z0-9][a-z0-9-]+$\"")]
pub struct PolicyNameError(pub String);

/// Checks a named-policy name: `^[a-z0-9][a-z0-9-]+$` (at least two
/// characters; lowercase letters, digits and `-`, not starting with `-`).
/// This keeps names from reaching outside the policy directory.
pub fn check_policy_name(name: &str) -> Result<(), PolicyNameError> {
    let bytes = name.as_bytes();
    let ok = bytes.len() >= 2
        && bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(PolicyNameError(name.to_owned()))
    }
}

/// The file a named policy is looked up in first: `<dir>/<name>.sigsum-policy`
/// (`dir` is `$SIGSUM_POLICY_DIR`, or [`DEFAULT_POLICY_DIR`]). If that file
/// does not exist the caller falls back to [`builtin`]. Pure: touches no
/// file system.
pub fn named_policy_path(dir: &Path, name: &str) -> Result<PathBuf, PolicyNameError> {
    check_policy_name(name)?;
    Ok(dir.join(format!("{name}{POLICY_FILE_SUFFIX}")))
}

/// The text of a policy built into sigsum-go (and embedded here), by name:
/// `sigsum-generic-2025-1`, `sigsum-test-2025-3`, `sigsum-test1-2025` or
/// `sigsum-test2-2025`. `None` for any other name.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names [`builtin`] knows, in a fixed order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn hashes(keys: &[char]) -> HashSet<KeyHash> {
        keys.iter()
            .map(|&c| PublicKey(hex32(key(c).as_bytes()).unwrap()).key_hash())
            .collect()
    }

    fn line_err(text: &str) -> (usize, LineError) {
        match Policy::parse(text.as_bytes()) {
            Err(PolicyError::Line { line, reason }) => (line, reason),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn quorum_none_is_always_satisfied() {
        let p = Policy::parse(b"quorum none\n").unwrap();
        assert!(p.quorum_satisfied(&HashSet::new()));
        assert_eq!(p.quorum(), Quorum::None);
    }

    #[test]
    fn nested_groups_count_satisfied_members() {
        let text = format!(
            "witness A {}\nwitness B {}\nwitness C {}\ngroup AB any A B\ngroup Q all AB C\nquorum Q\n",
            key('a'),
            key('b'),
            key('c')
        );
        let p = Policy::parse(text.as_bytes()).unwrap();
        assert!(!p.quorum_satisfied(&hashes(&['a', 'b'])));
        assert!(p.quorum_satisfied(&hashes(&['a', 'c'])));
        assert!(p.quorum_satisfied(&hashes(&['b', 'c'])));
        assert!(!p.quorum_satisfied(&hashes(&['c'])));
    }

    #[test]
    fn threshold_accepts_what_go_atoi_accepts() {
        let base = format!("witness A {}\nwitness B {}\n", key('a'), key('b'));
        for (t, k) in [("2", 2), ("02", 2), ("+1", 1), ("any", 1), ("all", 2)] {
            let p = Policy::parse(format!("{base}group G {t} A B\nquorum G\n").as_bytes()).unwrap();
            assert_eq!(p.groups()[0].threshold(), k, "threshold {t}");
        }
        for t in ["0", "3", "-1", "99999999999999999999999"] {
            let (_, e) = line_err(&format!("{base}group G {t} A B\nquorum G\n"));
            assert!(
                matches!(e, LineError::ThresholdOutOfRange { .. }),
                "{t}: {e}"
            );
        }
        for t in ["two", "1.0", "+", "0x1", ""] {
            let text = format!("{base}group G {t} A B\nquorum G\n");
            assert!(Policy::parse(text.as_bytes()).is_err(), "{t}");
        }
    }

    #[test]
    fn quorum_may_not_be_redefined_or_forward() {
        let (line, e) = line_err("quorum none\nquorum none\n");
        assert_eq!((line, e), (2, LineError::DuplicateQuorum(1)));
        let (line, e) = line_err("quorum W\n");
        assert_eq!(line, 1);
        assert_eq!(e, LineError::UndefinedName(PolicyText::new(b"W")));
    }

    #[test]
    fn limits_are_enforced_with_the_line_that_exceeds_them() {
        let mut text = String::new();
        for i in 0..=MAX_LOGS {
            text.push_str(&format!("log {:064x}\n", i));
        }
        let (line, e) = line_err(&text);
        assert_eq!((line, e), (MAX_LOGS + 1, LineError::TooManyLogs));

        let long = format!("# {}\nquorum none\n", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(line_err(&long), (1, LineError::TooLong));
        let mut huge = vec![b'#'; MAX_POLICY_BYTES];
        huge.push(b'\n');
        assert_eq!(
            Policy::parse(&huge),
            Err(PolicyError::TooLarge(MAX_POLICY_BYTES + 1))
        );
    }

    #[test]
    fn a_policy_at_the_size_limit_without_final_newline_is_refused_like_its_canonical_form() {
        // `to_bytes` adds the final newline, so the canonical form of this
        // file would be one byte over the limit.
        let mut text = b"quorum none\n".to_vec();
        while text.len() + 2 < MAX_POLICY_BYTES - 100 {
            text.extend_from_slice(b"#\n");
        }
        text.resize(MAX_POLICY_BYTES, b'#');
        assert_eq!(
            Policy::parse(&text),
            Err(PolicyError::TooLarge(MAX_POLICY_BYTES + 1))
        );
        text.pop();
        let p = Policy::parse(&text).unwrap();
        assert!(p.to_bytes().len() <= MAX_POLICY_BYTES);
        assert_eq!(Policy::parse(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn canonical_thresholds_are_digits_so_long_group_lines_still_fit() {
        let text = format!(
            "witness w1 {}\nwitness w2 {}\ngroup {} 1 w1 w2\nquorum none\n",
            "a".repeat(64),
            "b".repeat(64),
            "g".repeat(MAX_LINE_BYTES - 15)
        );
        let p = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(Policy::parse(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn non_utf8_names_are_opaque_octets() {
        let text = b"witness \xe2\x84\xaa aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nwitness K bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nwitness \xff cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\ngroup G all \xe2\x84\xaa K \xff\nquorum G\n";
        let p = Policy::parse(text).unwrap();
        assert_eq!(p.witnesses()[2].name().as_bytes(), b"\xff");
        assert_eq!(p.witnesses()[2].name().as_str(), None);
        assert_eq!(format!("{:?}", p.witnesses()[2].name()), "\"\\xff\"");
        assert_eq!(Policy::parse(&p.to_bytes()), Ok(p));
    }

    #[test]
    fn explain_describes_thresholds_and_uncounted_witnesses() {
        let text = format!(
            "log {} http://log\nwitness A {}\nwitness B {}\nwitness C {}\ngroup G 2 A B C\nwitness D {}\nquorum G\n",
            key('1'),
            key('a'),
            key('b'),
            key('c'),
            key('d')
        );
        let p = Policy::parse(text.as_bytes()).unwrap();
        let e = p.explain();
        assert!(e.contains("signed by this log"), "{e}");
        assert!(e.contains("at least 2 of these 3 must cosign"), "{e}");
        assert!(e.contains("not counted by the quorum:\n  witness D"), "{e}");
        assert_eq!(e, p.to_string());
    }

    #[test]
    fn policy_names_follow_the_named_policy_regex() {
        for ok in ["ab", "45", "ab--cd", "abcdefgh-", "sigsum-test-2025-3"] {
            assert!(check_policy_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "4", "AB", "-ab", "abc/def", "abc.def", "ab_c", "../x",
        ] {
            assert!(check_policy_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            named_policy_path(Path::new("/etc/sigsum/policy"), "my-policy"),
            Ok(PathBuf::from("/etc/sigsum/policy/my-policy.sigsum-policy"))
        );
        assert!(named_policy_path(Path::new("/d"), "../etc/passwd").is_err());
    }

    #[test]
    fn builtins_are_the_four_sigsum_go_policies() {
        let names: Vec<_> = builtin_names().collect();
        assert_eq!(
            names,
            [
                "sigsum-generic-2025-1",
                "sigsum-test-2025-3",
                "sigsum-test1-2025",
                "sigsum-test2-2025"
            ]
        );
        for n in names {
            assert!(check_policy_name(n).is_ok());
            assert!(Policy::parse(builtin(n).unwrap().as_bytes()).is_ok(), "{n}");
        }
        assert_eq!(builtin("sigsum-test-2025-2"), None);
    }
}
