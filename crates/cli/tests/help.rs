//! `--help` of the built binary, for every command it lists at any depth
//! (found by reading the `Commands:` section of each help text, so a new
//! subcommand is covered without touching this test).

mod common;

use common::cairn;

/// The command names in a help text's `Commands:` section, without clap's
/// own `help` command.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_listed_command_prints_usage_and_a_description() {
    let dir = tempfile::tempdir().unwrap();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    while let Some(command) = pending.pop() {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let o = cairn(dir.path(), &args, None);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        let (about, usage) = o
            .stdout
            .split_once("Usage:")
            .unwrap_or_else(|| panic!("{args:?}: no usage in {}", o.stdout));
        assert!(!about.trim().is_empty(), "{args:?}: no description");
        assert!(usage.contains("cairn"), "{args:?}: {usage}");
        for sub in listed_commands(&o.stdout) {
            pending.push([command.clone(), vec![sub]].concat());
        }
        seen.push(command.join(" "));
    }
    // The walk must reach nested commands, or it checked almost nothing.
    for expected in ["key generate", "token verify", "policy explain", "monitor"] {
        assert!(seen.iter().any(|s| s == expected), "{expected}: {seen:?}");
    }
}
