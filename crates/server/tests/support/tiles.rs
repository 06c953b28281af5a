//! The tiles a dev log writes to its directory: what partial tiles are on
//! disk, and serving them with a plain static web server.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_tlog::tile::{TilePath, parse_path, partial_bundle_for_size, partial_tiles_for_size};

/// The partial tiles and bundles in the shard's directory.
pub fn partials_on_disk(shard_dir: &Path) -> Vec<TilePath> {
    let mut found = Vec::new();
    let mut dirs = vec![shard_dir.join("tile")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read tiles dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path.strip_prefix(shard_dir).unwrap().to_str().unwrap();
                if let Ok(p) = parse_path(key)
                    && !p.is_full()
                {
                    found.push(p);
                }
            }
        }
    }
    found.sort();
    found
}

/// The right edge of a tree of `size`: the partials its checkpoint names.
pub fn edge(size: u64) -> Vec<TilePath> {
    let mut edge: Vec<TilePath> = partial_tiles_for_size(size)
        .map(TilePath::Hash)
        .chain(partial_bundle_for_size(size).map(TilePath::Entries))
        .collect();
    edge.sort();
    edge
}

/// Waits until the only partials left in `shard_dir` are the right edge of
/// the tree of `size` (the leader's GC collected every outgrown one), and
/// returns how long that took. Panics after `deadline`.
pub async fn wait_for_collection(shard_dir: &Path, size: u64, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let left = partials_on_disk(shard_dir);
        if left == edge(size) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "partials left after the grace period: {left:?}, expected {:?}",
            edge(size)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
