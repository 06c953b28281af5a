//! `Monitor` against the fake log over real HTTP on 127.0.0.1: a log that
//! behaves, and the same log misbehaving on demand (forks, shrinks,
//! tampered leaves, bad leaf signatures, missing or stale cosignatures,
//! going away).

mod fake_log;

use std::path::Path;
use std::time::Duration;

use cairn_client::monitor::{
    Alert, Event, LeafMatch, Monitor, MonitorConfig, MonitorError, PassSummary, Progress, Warning,
    Watchlist, unix_now,
};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::{PublicKey, Signature, SigningKey};
use fake_log::FakeLog;

const MAX_AGE: Duration = Duration::from_secs(3600);

fn log_key() -> SigningKey {
    SigningKey::from_seed(&[0x4c; 32])
}
fn witness_key() -> SigningKey {
    SigningKey::from_seed(&[0x57; 32])
}
fn watched_key() -> SigningKey {
    SigningKey::from_seed(&[0x77; 32])
}
fn other_key() -> SigningKey {
    SigningKey::from_seed(&[0x0e; 32])
}

fn leaves(key: &SigningKey, tag: u8, n: u8) -> Vec<Leaf> {
    (0..n)
        .map(|i| Leaf::sign(key, &[tag, i].repeat(16).try_into().unwrap()))
        .collect()
}

/// Logs `log_key` at `url`, witness W, `quorum W`.
fn policy(log_key: &PublicKey, url: &str) -> Policy {
    let text = format!(
        "log {log_key} {url}\nwitness W {}\nquorum W\n",
        witness_key().public_key()
    );
    Policy::parse(text.as_bytes()).unwrap()
}

fn monitor(log: &FakeLog, dir: &Path, batch_size: u64, watch: Watchlist) -> Monitor {
    let config = MonitorConfig {
        batch_size,
        max_age: MAX_AGE,
        ..MonitorConfig::default()
    };
    Monitor::new(
        policy(&log.public_key(), &log.url()),
        watch,
        dir,
        config,
        unix_now(),
    )
    .unwrap()
}

/// The fake log, cosigned by the policy's witness, and a state directory.
async fn start() -> (FakeLog, tempfile::TempDir) {
    let log = FakeLog::start(log_key(), vec![witness_key()]).await;
    (log, tempfile::tempdir().unwrap())
}

fn watching_one() -> Watchlist {
    Watchlist::new([watched_key().public_key()])
}

/// One pass at `now`; every event, in order, and the counts.
async fn pass_at(m: &mut Monitor, now: u64) -> (Vec<Event>, PassSummary) {
    let mut events = Vec::new();
    let summary = m
        .pass(now, |_, e| events.push(e.clone()))
        .await
        .expect("state is writable");
    (events, summary)
}

async fn pass(m: &mut Monitor) -> (Vec<Event>, PassSummary) {
    pass_at(m, unix_now()).await
}

fn alerts(events: &[Event]) -> Vec<&Alert> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Alert(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn warnings(events: &[Event]) -> Vec<&Warning> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn leaf_indices(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Leaf(LeafMatch { index, .. }) => Some(*index),
            _ => None,
        })
        .collect()
}

fn checkpoint_size(m: &Monitor) -> Option<u64> {
    m.checkpoint(&log_key().public_key())
        .map(|c| c.tree_head().size)
}

#[tokio::test]
async fn a_growing_log_is_followed_across_passes_and_restarts_without_alerts() {
    let (log, dir) = start().await;
    let mine = leaves(&watched_key(), 1, 3);
    let theirs = leaves(&other_key(), 2, 2);
    log.append_direct(&[mine[0], theirs[0], mine[1], theirs[1], mine[2]]);

    let mut m = monitor(&log, dir.path(), 2, watching_one());
    let (events, summary) = pass(&mut m).await;
    assert_eq!(leaf_indices(&events), [0, 2, 4], "{events:?}");
    assert_eq!(
        (summary.alerts, summary.warnings, summary.leaves),
        (0, 0, 3)
    );
    assert!(events.contains(&Event::Progress(Progress::Grew { from: 0, to: 5 })));
    assert!(events.contains(&Event::Progress(Progress::Verified { size: 5 })));
    assert_eq!(checkpoint_size(&m), Some(5));

    let more = leaves(&watched_key(), 3, 2);
    log.append_direct(&[more[0], theirs[0], more[1]]);
    let (events, summary) = pass(&mut m).await;
    assert_eq!(leaf_indices(&events), [5, 7], "{events:?}");
    assert!(events.contains(&Event::Progress(Progress::Grew { from: 5, to: 8 })));
    assert_eq!((summary.alerts, summary.warnings), (0, 0));

    // A new process continues from the persisted checkpoint: nothing new,
    // nothing reported twice.
    drop(m);
    let mut m = monitor(&log, dir.path(), 2, watching_one());
    assert_eq!(checkpoint_size(&m), Some(8));
    let (events, summary) = pass(&mut m).await;
    assert_eq!(summary, PassSummary::default(), "{events:?}");
    log.append_direct(&leaves(&watched_key(), 4, 1));
    let (events, _) = pass(&mut m).await;
    assert_eq!(leaf_indices(&events), [8]);
}

#[tokio::test]
async fn without_watched_keys_every_leaf_is_reported_even_when_the_log_returns_fewer_than_asked() {
    let (log, dir) = start().await;
    let all: Vec<Leaf> = (0..700u16)
        .map(|i| {
            let mut message = [0u8; 32];
            message[..2].copy_from_slice(&i.to_be_bytes());
            Leaf::sign(&other_key(), &message)
        })
        .collect();
    log.append_direct(&all);
    // The fake log answers at most 512 leaves per request.
    let mut m = monitor(&log, dir.path(), 1000, Watchlist::default());
    let (events, summary) = pass(&mut m).await;
    assert_eq!(summary.alerts, 0, "{:?}", alerts(&events));
    assert_eq!(leaf_indices(&events), (0..700).collect::<Vec<_>>());
    assert!(events.contains(&Event::Progress(Progress::Leaves {
        next: 512,
        target: 700
    })));
    assert_eq!(checkpoint_size(&m), Some(700));
}

#[tokio::test]
async fn a_same_size_fork_is_an_alert_also_after_a_restart() {
    let (log, dir) = start().await;
    log.append_direct(&leaves(&other_key(), 1, 4));
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    assert_eq!(pass(&mut m).await.1.alerts, 0);

    log.rewrite_history(&leaves(&other_key(), 2, 4));
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::SameSizeDifferentRoot { .. }]),
        "{events:?}"
    );
    assert_eq!(checkpoint_size(&m), Some(4));

    drop(m);
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::SameSizeDifferentRoot { .. }]),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_larger_head_of_another_history_is_an_inconsistency_alert_after_a_restart() {
    let (log, dir) = start().await;
    let history = leaves(&other_key(), 1, 4);
    log.append_direct(&history);
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    assert_eq!(pass(&mut m).await.1.alerts, 0);
    drop(m);

    // Leaf 2 changes and the tree grows: every proof the log serves now
    // describes a tree whose first four leaves are not the ones verified.
    let mut fork = history.clone();
    fork[2] = Leaf::sign(&other_key(), &[0xf0; 32]);
    fork.extend(leaves(&watched_key(), 3, 2));
    log.rewrite_history(&fork);

    let mut m = monitor(&log, dir.path(), 512, watching_one());
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::Inconsistent { old, new, .. }] if old.size == 4 && new.size == 6),
        "{events:?}"
    );
    assert!(
        leaf_indices(&events).is_empty(),
        "forked leaves are not fetched"
    );
    assert_eq!(checkpoint_size(&m), Some(4));
}

#[tokio::test]
async fn a_shrinking_head_is_an_alert() {
    let (log, dir) = start().await;
    let history = leaves(&other_key(), 1, 5);
    log.append_direct(&history);
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    assert_eq!(pass(&mut m).await.1.alerts, 0);

    log.rewrite_history(&history[..3]);
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::Shrink { old, new }] if old.size == 5 && new.size == 3),
        "{events:?}"
    );
    assert_eq!(checkpoint_size(&m), Some(5));
}

#[tokio::test]
async fn leaves_that_do_not_hash_to_the_signed_root_are_an_alert() {
    let (log, dir) = start().await;
    log.append_direct(&leaves(&other_key(), 1, 3));
    log.tamper_served_leaf(1, Leaf::sign(&watched_key(), &[0xaa; 32]));
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::RootMismatch { head, .. }] if head.size == 3),
        "{events:?}"
    );
    assert_eq!(
        checkpoint_size(&m),
        None,
        "an unverified head is not adopted"
    );
}

#[tokio::test]
async fn a_watched_key_leaf_with_an_invalid_signature_is_an_alert() {
    let (log, dir) = start().await;
    let good = Leaf::sign(&watched_key(), &[1; 32]);
    let forged = Leaf {
        signature: Signature([0x5a; 64]),
        ..Leaf::sign(&watched_key(), &[2; 32])
    };
    log.append_direct(&[good, forged]);
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    let (events, _) = pass(&mut m).await;
    assert_eq!(leaf_indices(&events), [0]);
    assert!(
        matches!(alerts(&events)[..], [Alert::InvalidLeafSignature { index: 1, key_hash, .. }] if *key_hash == watched_key().public_key().key_hash()),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_stale_cosignature_is_a_warning() {
    let (log, dir) = start().await;
    log.append_direct(&leaves(&watched_key(), 1, 2));
    log.set_cosignature_age(2 * MAX_AGE.as_secs());
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    let (events, summary) = pass(&mut m).await;
    assert_eq!(summary.alerts, 0);
    assert!(
        matches!(warnings(&events)[..], [Warning::Stale { size: 2, age, .. }] if *age >= 2 * MAX_AGE.as_secs()),
        "{events:?}"
    );
    // Stale is not wrong: the head is verified and adopted.
    assert_eq!(checkpoint_size(&m), Some(2));
}

#[tokio::test]
async fn a_head_without_quorum_is_a_warning_and_is_not_adopted() {
    let (log, dir) = start().await;
    log.append_direct(&leaves(&watched_key(), 1, 2));
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    assert_eq!(pass(&mut m).await.1.warnings, 0);

    log.set_witnesses(vec![other_key()]);
    log.append_direct(&leaves(&watched_key(), 2, 2));
    let (events, summary) = pass(&mut m).await;
    assert_eq!(summary.alerts, 0);
    assert!(
        matches!(warnings(&events)[..], [Warning::NoQuorum { head, cosigned_by, .. }] if head.size == 4 && cosigned_by.is_empty()),
        "{events:?}"
    );
    assert!(leaf_indices(&events).is_empty());
    assert_eq!(checkpoint_size(&m), Some(2));

    // Without a new quorum, the old one ages into a stale warning too.
    let later = unix_now() + 2 * MAX_AGE.as_secs();
    let (events, _) = pass_at(&mut m, later).await;
    assert!(
        matches!(
            warnings(&events)[..],
            [Warning::NoQuorum { .. }, Warning::Stale { size: 2, .. }]
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_head_not_signed_by_the_policy_log_key_is_an_alert() {
    let (log, dir) = start().await;
    let impostor = SigningKey::from_seed(&[0x1d; 32]).public_key();
    let mut m = Monitor::new(
        policy(&impostor, &log.url()),
        watching_one(),
        dir.path(),
        MonitorConfig::default(),
        unix_now(),
    )
    .unwrap();
    let (events, _) = pass(&mut m).await;
    assert!(
        matches!(alerts(&events)[..], [Alert::BadLogSignature { .. }]),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unreachable_log_is_a_warning_once_the_last_success_is_older_than_max_age() {
    let (log, dir) = start().await;
    let start = unix_now();
    let mut m = monitor(&log, dir.path(), 512, watching_one());
    assert_eq!(pass_at(&mut m, start).await.1, PassSummary::default());
    drop(m);
    let policy = policy(&log.public_key(), &log.url());
    drop(log);

    // A restarted monitor keeps the clock of the last success.
    let restart = start + MAX_AGE.as_secs() - 10;
    let mut m = Monitor::new(
        policy,
        watching_one(),
        dir.path(),
        MonitorConfig::default(),
        restart,
    )
    .unwrap();
    let (events, summary) = pass_at(&mut m, restart).await;
    assert_eq!(summary, PassSummary::default(), "{events:?}");
    assert!(
        matches!(events[..], [Event::Progress(Progress::Failed { .. })]),
        "{events:?}"
    );
    let (events, _) = pass_at(&mut m, start + MAX_AGE.as_secs() + 1).await;
    assert!(
        matches!(warnings(&events)[..], [Warning::Unreachable { secs, .. }] if *secs == MAX_AGE.as_secs() + 1),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_state_directory_serves_one_monitor_at_a_time() {
    let (log, dir) = start().await;
    let _first = monitor(&log, dir.path(), 512, watching_one());
    let second = Monitor::new(
        policy(&log.public_key(), &log.url()),
        watching_one(),
        dir.path(),
        MonitorConfig::default(),
        unix_now(),
    );
    assert!(matches!(second, Err(MonitorError::Locked(_))), "{second:?}");
}
