//! `cairn policy`: check, explain, list and show Sigsum trust policies.
//!
//! Policies are found as `submit` and `verify` find them (`-p FILE`,
//! `-P NAME`; see [`crate::policy`]) and parsed as strictly as sigsum-go
//! (since v0.13.0) parses them, so a policy `check` accepts is one every
//! Cairn and sigsum-go tool accepts.
//!
//! Exit status: 0 success (the policy is valid); 1 the policy is invalid;
//! 2 usage or input errors (no policy given, unreadable file, unknown name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_sigsum::policy::{
    Member, POLICY_FILE_SUFFIX, Policy, Quorum, builtin_names, check_policy_name,
};
use clap::{Args, Subcommand};

use crate::files;
use crate::policy::{PolicyArgs, PolicyInput, policy_dir, read_named};
use crate::verify::{EXIT_INVALID, EXIT_USAGE, EXIT_VALID};

/// Most directory entries `list` examines: a policy directory holds a
/// handful of files; the bound keeps a mistaken directory cheap.
const MAX_DIR_ENTRIES: usize = 10_000;

/// `cairn policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check that a policy parses, and summarise it.
    ///
    /// The rules are sigsum-go's (strict since v0.13.0). Exit status 0 if
    /// the policy is valid, 1 if it is not (the message names the line), 2
    /// if it cannot be read.
    Check(SelectArgs),
    /// Explain a policy in words: its logs, its witnesses, the quorum as a
    /// tree of groups with their thresholds, and the fewest witness
    /// cosignatures that satisfy it.
    ///
    /// Exit status as for `check`.
    Explain(SelectArgs),
    /// List the names of the named policies, one per line and sorted, as
    /// sigsum-policy list: files NAME.sigsum-policy in $SIGSUM_POLICY_DIR
    /// (default /etc/sigsum/policy), and the policies built into sigsum-go.
    ///
    /// With -v (--verbose) each name is followed by a tab and where the
    /// policy comes from: `builtin`, or the file's path (a file takes
    /// precedence over a builtin of the same name). An unreadable policy
    /// directory is reported on standard error and the builtins are still
    /// listed.
    List,
    /// Print the text of a named policy (file or builtin) as it is.
    ///
    /// Exit status 1 if the text does not parse as a policy (it is printed
    /// anyway), 2 if there is no policy of that name.
    Show {
        /// The policy name, as given to -P.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// Which policy to check or explain.
#[derive(Args, Debug)]
pub struct SelectArgs {
    #[command(flatten)]
    policy: PolicyArgs,
}

/// Why a command did not succeed.
enum Failure {
    /// The policy is not valid.
    Invalid(anyhow::Error),
    /// The command could not be carried out.
    Unusable(anyhow::Error),
}

/// Runs a `cairn policy` subcommand and returns its exit status; `verbose`
/// is the count of `-v`.
pub fn run(cmd: PolicyCommand, verbose: u8) -> ExitCode {
    let result = match cmd {
        PolicyCommand::Check(args) => with_policy(&args, |input, p| {
            format!("{} is valid: {}\n", input.source, summary(p))
        }),
        PolicyCommand::Explain(args) => with_policy(&args, |_, p| explain(p)),
        PolicyCommand::List => list(verbose > 0).map_err(Failure::Unusable),
        PolicyCommand::Show { name } => show(&name),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_VALID),
        Err(Failure::Invalid(e)) => {
            eprintln!("cairn policy: invalid: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Unusable(e)) => {
            eprintln!("cairn policy: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Reads and parses the selected policy and prints `render`'s text.
fn with_policy(
    args: &SelectArgs,
    render: impl FnOnce(&PolicyInput, &Policy) -> String,
) -> Result<(), Failure> {
    if args.policy.policy.is_none() && args.policy.named_policy.is_none() {
        return Err(Failure::Unusable(anyhow::anyhow!(
            "give the policy with -p FILE or -P NAME"
        )));
    }
    let input = args.policy.read(None).map_err(Failure::Unusable)?;
    let policy = input.parse().map_err(Failure::Invalid)?;
    files::write_output(None, &render(&input, &policy)).map_err(Failure::Unusable)
}

/// One line: how many logs, witnesses and groups, and what the quorum asks.
fn summary(p: &Policy) -> String {
    let needed = smallest_satisfying_set(p).len();
    let quorum = match p.quorum() {
        Quorum::None => "quorum none (no cosignature needed)".to_owned(),
        Quorum::Node(m) => format!(
            "quorum {} needs at least {needed} witness cosignature(s)",
            p.member_name(m)
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
    };
    format!(
        "{} log(s), {} witness(es), {} group(s); {quorum}",
        p.logs().len(),
        p.witnesses().len(),
        p.groups().len()
    )
}

/// The policy's own explanation, the witnesses with their key hashes and
/// URLs, and the minimum number of cosignatures.
fn explain(p: &Policy) -> String {
    let mut out = p.explain();
    if !p.witnesses().is_empty() {
        out.push_str(&format!("Witnesses ({}):\n", p.witnesses().len()));
        for w in p.witnesses() {
            out.push_str(&format!("  {} key hash {}", w.name(), w.key_hash()));
            if let Some(url) = w.url() {
                out.push_str(&format!(" at {url}"));
            }
            out.push('\n');
        }
    }
    let set = smallest_satisfying_set(p);
    if let Quorum::Node(_) = p.quorum() {
        let names: Vec<String> = set
            .iter()
            .filter_map(|&i| p.witnesses().get(i).map(|w| w.name().to_string()))
            .collect();
        out.push_str(&format!(
            "At least {} witness cosignature(s) are needed to satisfy the quorum, for example from: {}.\n",
            set.len(),
            names.join(", ")
        ));
    }
    out
}

/// A smallest set of witnesses (indices into [`Policy::witnesses`]) whose
/// cosignatures satisfy the quorum; empty for `quorum none`.
///
/// A name is a group member at most once in a policy, so the quorum is a
/// tree with disjoint subtrees: a group's cheapest satisfying set is the
/// union of the cheapest sets of its `k` cheapest members, and choosing
/// greedily is exact.
fn smallest_satisfying_set(p: &Policy) -> Vec<usize> {
    match p.quorum() {
        Quorum::None => Vec::new(),
        Quorum::Node(m) => smallest_for(p, m),
    }
}

fn smallest_for(p: &Policy, m: Member) -> Vec<usize> {
    match m {
        Member::Witness(i) => vec![i],
        // Recursion depth is bounded by the number of groups (MAX_GROUPS),
        // since members precede their group.
        Member::Group(i) => {
            let Some(g) = p.groups().get(i) else {
                return Vec::new();
            };
            let mut sets: Vec<Vec<usize>> =
                g.members().iter().map(|&c| smallest_for(p, c)).collect();
            sets.sort_by_key(Vec::len);
            let mut chosen: Vec<usize> = sets.into_iter().take(g.threshold()).flatten().collect();
            chosen.sort_unstable();
            chosen
        }
    }
}

/// Prints every named policy's name, sorted, or with `long` the lines
/// `NAME<TAB>WHERE`.
fn list(long: bool) -> anyhow::Result<()> {
    let dir = policy_dir();
    let mut found: BTreeMap<String, String> = builtin_names()
        .map(|n| (n.to_owned(), "builtin".to_owned()))
        .collect();
    let files = match policy_files(&dir) {
        Ok(files) => files,
        // sigsum-policy lists the builtins when the directory cannot be
        // read; saying why is our addition.
        Err(e) => {
            eprintln!("cairn policy: warning: {e:#}; listing the builtin policies only");
            Vec::new()
        }
    };
    for (name, path) in files {
        let place = if found.contains_key(&name) {
            format!("{} (overrides the builtin)", path.display())
        } else {
            path.display().to_string()
        };
        found.insert(name, place);
    }
    let text: String = found
        .iter()
        .map(|(name, place)| {
            if long {
                format!("{name}\t{place}\n")
            } else {
                format!("{name}\n")
            }
        })
        .collect();
    files::write_output(None, &text)
}

/// The policy files in `dir` that `-P` can name: `NAME.sigsum-policy` with
/// a valid NAME that is a regular file or a symbolic link to one (as
/// sigsum-policy lists them). A missing directory holds none.
fn policy_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading policy directory {}", dir.display()));
        }
    };
    let mut out = Vec::new();
    for (n, entry) in entries.enumerate() {
        if n >= MAX_DIR_ENTRIES {
            bail!(
                "policy directory {} has more than {MAX_DIR_ENTRIES} entries",
                dir.display()
            );
        }
        let entry = entry.with_context(|| format!("reading policy directory {}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|f| f.strip_suffix(POLICY_FILE_SUFFIX))
        else {
            continue;
        };
        // Follows symbolic links: a link to a policy file names a policy.
        let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
        if check_policy_name(name).is_ok() && is_file {
            out.push((name.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

/// Prints a named policy's text; fails as invalid if it does not parse.
fn show(name: &str) -> Result<(), Failure> {
    let input = read_named(name, &policy_dir()).map_err(Failure::Unusable)?;
    let text = String::from_utf8_lossy(&input.text);
    files::write_output(None, &text).map_err(Failure::Unusable)?;
    input.parse().map(drop).map_err(Failure::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySource;

    fn key(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn parse(text: &str) -> Policy {
        Policy::parse(text.as_bytes()).unwrap()
    }

    fn names(p: &Policy, set: &[usize]) -> Vec<String> {
        set.iter()
            .map(|&i| p.witnesses()[i].name().to_string())
            .collect()
    }

    #[test]
    fn the_smallest_set_takes_the_cheapest_members_of_each_group() {
        let p = parse(&format!(
            "log {}\nwitness A {}\nwitness B {}\nwitness C {}\nwitness D {}\n\
             witness E {}\nwitness F {}\nwitness G {}\n\
             group big all A B C\ngroup top any big D\ngroup pair all E F\n\
             group q 2 pair top G\nquorum q\n",
            key('1'),
            key('a'),
            key('b'),
            key('c'),
            key('d'),
            key('e'),
            key('f'),
            key('0')
        ));
        // top is satisfied by D alone (cheaper than big's three), and q by
        // its two cheapest members, top and G, not by pair's two witnesses.
        let set = smallest_satisfying_set(&p);
        assert_eq!(names(&p, &set), ["D", "G"]);
        let satisfied = set.iter().map(|&i| *p.witnesses()[i].key_hash()).collect();
        assert!(p.quorum_satisfied(&satisfied));
    }

    #[test]
    fn quorum_none_needs_no_cosignature_and_a_single_witness_needs_one() {
        let none = parse(&format!("log {}\nquorum none\n", key('1')));
        assert!(smallest_satisfying_set(&none).is_empty());
        assert!(summary(&none).contains("quorum none"));
        let one = parse(&format!(
            "log {}\nwitness W {}\nquorum W\n",
            key('1'),
            key('a')
        ));
        assert_eq!(names(&one, &smallest_satisfying_set(&one)), ["W"]);
        assert!(
            summary(&one).contains("quorum W needs at least 1"),
            "{}",
            summary(&one)
        );
    }

    #[test]
    fn explanations_list_witness_key_hashes_and_the_minimum() {
        let p = parse(&format!(
            "log {} https://log.example/\nwitness X {} https://x.example/\nwitness Y {}\n\
             group g 2 X Y\nquorum g\n",
            key('1'),
            key('a'),
            key('b')
        ));
        let text = explain(&p);
        assert!(
            text.contains(&p.witnesses()[0].key_hash().to_string()),
            "{text}"
        );
        assert!(text.contains("at https://x.example/"), "{text}");
        assert!(text.contains("all 2 of these must cosign"), "{text}");
        assert!(
            text.contains("At least 2 witness cosignature(s) are needed to satisfy the quorum, for example from: X, Y."),
            "{text}"
        );
    }

    #[test]
    fn the_policy_directory_lists_only_nameable_policy_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "good.sigsum-policy",
            "Bad.sigsum-policy",
            "x.sigsum-policy",
            "other.txt",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        // A directory is not a policy; a link to a file is, a dangling
        // link is not.
        std::fs::create_dir(dir.path().join("dir-not-file.sigsum-policy")).unwrap();
        std::os::unix::fs::symlink(
            "good.sigsum-policy",
            dir.path().join("linked.sigsum-policy"),
        )
        .unwrap();
        std::os::unix::fs::symlink("missing", dir.path().join("dangling.sigsum-policy")).unwrap();
        let mut found = policy_files(dir.path()).unwrap();
        found.sort();
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["good", "linked"], "{found:?}");
        assert!(
            policy_files(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_named_file_is_read_from_the_directory_not_the_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let name = "sigsum-test-2025-3";
        let path = dir.path().join(format!("{name}{POLICY_FILE_SUFFIX}"));
        std::fs::write(&path, format!("log {}\nquorum none\n", key('1'))).unwrap();
        let input = read_named(name, dir.path()).unwrap();
        assert_eq!(input.source, PolicySource::File(path));
        let builtin = read_named(name, &dir.path().join("missing")).unwrap();
        assert_eq!(builtin.source, PolicySource::Builtin(name));
    }
}
