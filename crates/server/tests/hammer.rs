//! `cairn hammer` against a real `cairnd dev`: closed and open loop, every
//! kind of read, and a summary that agrees with what the log says.

mod support;

use std::process::Stdio;

use cairn_cli::hammer::{self, HammerArgs};
use cairn_client::LogClient;
use support::{Cairnd, free_port};

fn args(log: &str) -> HammerArgs {
    HammerArgs {
        log: vec![log.to_owned()],
        duration: 3,
        concurrency: 16,
        rate: None,
        max_in_flight: 1000,
        leaves: Some(20_000),
        keys: 8,
        seed: 1,
        retry_interval_ms: 200,
        token: None,
        readers: 2,
        read_mix: "tree-head,inclusion,consistency,leaves,tile".into(),
        sample: 10,
        pid: Vec::new(),
        json: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hammer_logs_leaves_reads_everything_and_reports_what_the_log_says() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = free_port();
    let mut cairnd = Cairnd::start_with(
        &tmp.path().join("data"),
        listen,
        &[],
        "warn",
        Stdio::inherit(),
    );
    cairnd.wait_ready().await;
    let log = cairnd.base_url();

    let closed = hammer::run(args(&log)).await.expect("closed-loop run");
    println!("{closed:?}");
    assert!(
        closed.committed > 0 && closed.add_leaf_per_sec > 0.0,
        "{closed:?}"
    );
    assert_eq!(closed.mode, "closed");
    assert!(closed.verify_per_sec > 0.0 && closed.add_leaf_vs_verify > 0.0);
    // Only 200s (and perhaps a 202 under load): nothing refused, no errors.
    for status in closed.statuses.keys() {
        assert!(status == "200" || status == "202", "{closed:?}");
    }
    assert_eq!(closed.submit_to_200.count, closed.committed);
    assert!(closed.committed_to_head.count > 0, "{closed:?}");
    for kind in ["tree-head", "inclusion", "consistency", "leaves", "tile"] {
        let read = &closed.reads[kind];
        assert!(read.ok > 0 && read.failed == 0, "{kind}: {read:?}");
    }
    let size = LogClient::new(&log).unwrap().get_tree_head().await.unwrap();
    assert!(size.tree_head().size >= closed.committed);
    assert!(closed.tree_size <= size.tree_head().size);

    // Open loop at a modest rate, with new leaves (another seed), and the
    // log's CPU measured through its pid.
    let mut open = args(&log);
    open.rate = Some(200);
    open.seed = 2;
    open.readers = 0;
    open.pid = vec![cairnd.pid()];
    let open = hammer::run(open).await.expect("open-loop run");
    assert_eq!(open.mode, "open");
    assert!(open.committed >= 400, "{open:?}");
    assert!(open.log_cpu_s.is_some_and(|cpu| cpu > 0.0), "{open:?}");
    let after = LogClient::new(&log).unwrap().get_tree_head().await.unwrap();
    assert!(after.tree_head().size >= closed.committed + open.committed);

    // Usage errors are refused before any load.
    let mut bad = args(&log);
    bad.read_mix = "tree-head,everything".into();
    assert!(hammer::run(bad).await.is_err());
    cairnd.stop();
}

/// `--log` repeated: the load is spread over the logs in turn, and the
/// summary counts them together (`benches/scenarios/shards.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hammer_spreads_its_leaves_over_every_log_it_is_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut logs = Vec::new();
    for name in ["a", "b"] {
        let mut cairnd = Cairnd::start_with(
            &tmp.path().join(name),
            free_port(),
            &[],
            "warn",
            Stdio::inherit(),
        );
        cairnd.wait_ready().await;
        logs.push(cairnd);
    }
    let urls: Vec<String> = logs.iter().map(Cairnd::base_url).collect();
    let mut two = args(&urls[0]);
    two.log = urls.clone();
    two.readers = 0;
    two.pid = logs.iter().map(Cairnd::pid).collect();
    let summary = hammer::run(two).await.expect("run over two logs");
    assert!(summary.committed > 0, "{summary:?}");
    assert!(
        summary.log_cpu_s.is_some_and(|cpu| cpu > 0.0),
        "{summary:?}"
    );
    let mut sizes = Vec::new();
    for url in &urls {
        let head = LogClient::new(url).unwrap().get_tree_head().await.unwrap();
        sizes.push(head.tree_head().size);
    }
    // Leaf i goes to log i mod 2: the two halves differ by at most the
    // leaves in flight when the run ended.
    assert!(sizes.iter().sum::<u64>() >= summary.committed, "{sizes:?}");
    assert!(
        sizes.iter().all(|&s| s * 3 > summary.committed),
        "{sizes:?}"
    );
    for cairnd in logs {
        cairnd.stop();
    }
}
