//! Corrupt objects in the tile store are never served (issue 11): a flipped
//! byte in a hash tile or entry bundle makes exactly the requests that need
//! it a 500 whose text body names it — proofs, leaves and the raw tile —
//! the others still answer 200 with valid data, the tile store's
//! `corrupt_reads` counter (the `cairn_storage_corrupt_objects_total`
//! metric) counts every such 500, and a restarted frontend (empty cache)
//! answers the same.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use cairn_frontend::{FULL_TILE_CACHE_CONTROL, PARTIAL_TILE_CACHE_CONTROL};
use cairn_sigsum::api::{ConsistencyProof, InclusionProof, Leaves};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::tree_head::TreeHead;
use cairn_tlog::proof::{NodeId, consistency_plan, inclusion_plan, root_plan};
use cairn_tlog::tile::{bundles_for_size, node_tile};
use reqwest::StatusCode;
use support::{Harness, Options, leaves, request, roots};

/// Published size of every test's log: 600 leaves appended (and published)
/// in batches of 100, 200 and 300. Its objects: `tile/0/000`, `tile/0/001`,
/// `tile/0/002.p/88`, `tile/1/000.p/2`, `tile/entries/000`, `001`,
/// `002.p/88`, and older partials such as `tile/0/001.p/44`.
const SIZE: u64 = 600;

/// The leaves of the log and the root of every size, computed once
/// (making the leaves takes one signature each).
struct Reference {
    leaves: Vec<[u8; 128]>,
    roots: BTreeMap<u64, cairn_sigsum::Hash>,
}

static REFERENCE: LazyLock<Reference> = LazyLock::new(|| {
    let leaves = leaves(SIZE);
    let roots = roots(&leaves);
    Reference { leaves, roots }
});

async fn log_of_600() -> Harness {
    let h = Harness::start(Options::default()).await;
    for range in [0..100, 100..300, 300..600] {
        h.log.append(&REFERENCE.leaves[range]).await;
    }
    h
}

/// One Sigsum read request.
#[derive(Clone, Copy, Debug)]
enum Request {
    Inclusion(u64, u64),
    Consistency(u64, u64),
    Leaves(u64, u64),
}

impl Request {
    fn path(self) -> String {
        match self {
            Request::Inclusion(index, size) => {
                let leaf_hash = cairn_tlog::leaf_hash(&REFERENCE.leaves[index as usize]);
                format!("get-inclusion-proof/{size}/{}", hex::encode(leaf_hash))
            }
            Request::Consistency(old, new) => format!("get-consistency-proof/{old}/{new}"),
            Request::Leaves(start, end) => format!("get-leaves/{start}/{end}"),
        }
    }
}

/// Requests in every tile, on tile boundaries and next to them, at the
/// published size and below it.
fn requests() -> Vec<Request> {
    let sizes = [2, 100, 256, 257, 300, 512, 513, 599, 600];
    let mut requests = Vec::new();
    for &size in &sizes {
        for index in [0, 77, 255, 256, 300, 511, 512, 599] {
            if index < size {
                requests.push(Request::Inclusion(index, size));
            }
        }
        for &old in &[1, 100, 256, 257, 300, 511, 512] {
            if old < size {
                requests.push(Request::Consistency(old, size));
            }
        }
    }
    for (start, end) in [(0, 10), (250, 260), (256, 300), (500, 600), (512, 600)] {
        requests.push(Request::Leaves(start, end));
    }
    requests
}

/// The objects of the published tree a request's answer is computed from,
/// from the tlog plans alone: the proof's tiles and those of the roots the
/// frontend checks it against (the root of its size and, below the
/// published size, a consistency proof to it); for leaves, the bundles and
/// their level-0 tiles.
fn objects(request: Request) -> BTreeSet<String> {
    let tiles = |nodes: &[NodeId]| -> Vec<String> {
        nodes
            .iter()
            .map(|&n| node_tile(n, SIZE).unwrap().tile().path())
            .collect()
    };
    let checked_root = |size: u64| -> Vec<String> {
        if size == SIZE {
            return Vec::new();
        }
        let mut t = tiles(root_plan(size).nodes());
        t.extend(tiles(consistency_plan(size, SIZE).unwrap().nodes()));
        t
    };
    match request {
        Request::Inclusion(index, size) => {
            let mut t = tiles(inclusion_plan(index, size).unwrap().nodes());
            t.extend(checked_root(size));
            t.into_iter().collect()
        }
        Request::Consistency(old, new) => {
            let mut t = tiles(consistency_plan(old, new).unwrap().nodes());
            t.extend(tiles(root_plan(old).nodes()));
            t.extend(checked_root(new));
            t.into_iter().collect()
        }
        Request::Leaves(start, end) => bundles_for_size(SIZE)
            .filter(|b| {
                let first = b.index() * 256;
                first < end.min(start + 512) && start < first + u64::from(b.width())
            })
            .flat_map(|b| [b.path(), b.hash_tile().path()])
            .collect(),
    }
}

/// Checks a 200 answer against the reference tree.
async fn check_ok(request: Request, response: reqwest::Response) {
    let all = &REFERENCE.leaves;
    let head = |size: u64| TreeHead {
        size,
        root_hash: REFERENCE.roots[&size],
    };
    let body = response.text().await.unwrap();
    match request {
        Request::Inclusion(index, size) => {
            let proof = InclusionProof::parse(body.as_bytes()).unwrap();
            assert_eq!(proof.leaf_index, index);
            proof
                .verify(&cairn_tlog::leaf_hash(&all[index as usize]), &head(size))
                .unwrap_or_else(|e| panic!("{request:?} answered 200 with an invalid proof: {e}"));
        }
        Request::Consistency(old, new) => {
            ConsistencyProof::parse(body.as_bytes())
                .unwrap()
                .verify(&head(old), &head(new))
                .unwrap_or_else(|e| panic!("{request:?} answered 200 with an invalid proof: {e}"));
        }
        Request::Leaves(start, _) => {
            let got = Leaves::parse(body.as_bytes()).unwrap().leaves;
            let expected: Vec<Leaf> = all[start as usize..start as usize + got.len()]
                .iter()
                .map(|b| Leaf::from_bytes(b).unwrap())
                .collect();
            assert!(!got.is_empty());
            assert_eq!(
                got, expected,
                "{request:?} answered 200 with altered leaves"
            );
        }
    }
}

/// Asserts a 500 whose text body names `object`.
async fn check_names(what: &str, response: reqwest::Response, object: &str) {
    assert_eq!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what} must be 500: it needs {object}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!("stored object {object} is corrupt")),
        "{what}: the body does not name {object}: {body}"
    );
}

/// Sends every request of [`requests`] to `h`: those `affected` (given
/// the objects they need) must be 500 naming `object`, the others 200 with
/// valid answers. The frontend's tile store must have counted exactly the
/// 500s. Returns how many there were.
async fn check_requests(
    h: &Harness,
    object: &str,
    affected: impl Fn(&BTreeSet<String>) -> bool,
) -> usize {
    let before = h.frontend_tiles.corrupt_reads();
    let mut failed = 0;
    for request in requests() {
        let response = h.get(&request.path()).await;
        if affected(&objects(request)) {
            check_names(&format!("{request:?}"), response, object).await;
            failed += 1;
        } else {
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{request:?} does not need {object}"
            );
            check_ok(request, response).await;
        }
    }
    assert_eq!(h.frontend_tiles.corrupt_reads() - before, failed as u64);
    failed
}

fn needs(object: &'static str) -> impl Fn(&BTreeSet<String>) -> bool {
    move |objects| objects.contains(object)
}

/// Every read of a tile is verified up to the right edge of the published
/// tree, so a corrupt edge tile fails every request.
fn every_request(_: &BTreeSet<String>) -> bool {
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_full_hash_tile_is_a_500_naming_it_for_exactly_the_reads_that_need_it()
{
    let mut h = log_of_600().await;
    // Leaf hash 5 of tile/0/001: leaf 261.
    h.flip_byte("tile/0/001", 5 * 32 + 9).await;
    let failed = check_requests(&h, "tile/0/001", needs("tile/0/001")).await;
    assert!(failed > 10 && failed < requests().len() - 10, "{failed}");
    // The raw tile is not served either; its neighbours are, verified.
    check_names("GET tile/0/001", h.get("tile/0/001").await, "tile/0/001").await;
    let body = h.get("tile/0/001").await.text().await.unwrap();
    assert!(body.contains("does not hash to"), "{body}");
    let response = h.get("tile/0/000").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], FULL_TILE_CACHE_CONTROL);
    assert_eq!(h.get("tile/0/002.p/88").await.status(), StatusCode::OK);
    // Nothing detected it before; a restarted frontend detects it too.
    h.restart_frontend().await;
    assert_eq!(
        check_requests(&h, "tile/0/001", needs("tile/0/001")).await,
        failed
    );
    check_names("GET tile/0/001", h.get("tile/0/001").await, "tile/0/001").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_full_entry_bundle_is_a_500_for_the_leaves_from_it() {
    let mut h = log_of_600().await;
    // Inside leaf 261 (each entry is a 2-byte length and 128 bytes).
    h.flip_byte("tile/entries/001", 5 * 130 + 2 + 60).await;
    let failed = check_requests(&h, "tile/entries/001", needs("tile/entries/001")).await;
    assert_eq!(failed, 3, "get-leaves 250/260, 256/300 and 500/600");
    check_names(
        "GET tile/entries/001",
        h.get("tile/entries/001").await,
        "tile/entries/001",
    )
    .await;
    h.restart_frontend().await;
    assert_eq!(
        check_requests(&h, "tile/entries/001", needs("tile/entries/001")).await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_partial_hash_tile_is_a_500_for_every_read() {
    let mut h = log_of_600().await;
    h.flip_byte("tile/0/002.p/88", 87 * 32).await;
    check_requests(&h, "tile/0/002.p/88", every_request).await;
    for tile in ["tile/0/002.p/88", "tile/0/000", "tile/entries/002.p/88"] {
        check_names(&format!("GET {tile}"), h.get(tile).await, "tile/0/002.p/88").await;
    }
    h.restart_frontend().await;
    check_requests(&h, "tile/0/002.p/88", every_request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_level_1_tile_is_a_500_for_every_read() {
    // Below 65536 leaves the level-1 tile is partial: the parent of every
    // full level-0 tile, and part of the right edge.
    let h = log_of_600().await;
    h.flip_byte("tile/1/000.p/2", 33).await;
    check_requests(&h, "tile/1/000.p/2", every_request).await;
    check_names(
        "GET tile/1/000.p/2",
        h.get("tile/1/000.p/2").await,
        "tile/1/000.p/2",
    )
    .await;
    assert_eq!(h.frontend_tiles.cache_usage(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_older_partial_tile_is_a_500_only_when_it_is_served() {
    let h = log_of_600().await;
    h.flip_byte("tile/0/001.p/44", 100).await;
    // The published tree no longer uses it.
    assert_eq!(check_requests(&h, "tile/0/001.p/44", |_| false).await, 0);
    check_names(
        "GET tile/0/001.p/44",
        h.get("tile/0/001.p/44").await,
        "tile/0/001.p/44",
    )
    .await;
    assert_eq!(h.frontend_tiles.corrupt_reads(), 1);
    // Intact older partials are served, checked against the newer tile.
    let response = h.get("tile/0/000.p/100").await;
    assert_eq!(response.status(), StatusCode::OK);
    let expected: Vec<u8> = REFERENCE.leaves[..100]
        .iter()
        .flat_map(|l| cairn_tlog::leaf_hash(l))
        .collect();
    assert_eq!(response.bytes().await.unwrap().to_vec(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_full_tile_is_served_from_the_cache_without_reading_it_again() {
    let h = log_of_600().await;
    let response = h.get("tile/0/000").await;
    assert_eq!(response.status(), StatusCode::OK);
    let original = response.bytes().await.unwrap();
    let cached = h.frontend_tiles.cache_usage();
    assert!(cached.0 >= 1, "{cached:?}");
    // Damaged afterwards: this frontend keeps its verified copy and neither
    // reads nor verifies the object again.
    h.flip_byte("tile/0/000", 0).await;
    let response = h.get("tile/0/000").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), original);
    check_ok(
        Request::Inclusion(5, SIZE),
        h.get(&Request::Inclusion(5, SIZE).path()).await,
    )
    .await;
    assert_eq!(h.frontend_tiles.cache_usage(), cached);
    assert_eq!(h.frontend_tiles.corrupt_reads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_beyond_the_published_head_are_served_unverified_and_briefly_cacheable() {
    let h = log_of_600().await;
    h.log.set_auto_publish(false).await;
    let more: Vec<_> = (600..800).map(|i| request(i).1.to_bytes()).collect();
    h.log.append(&more).await; // signed 800, published 600
    // tile/0/002 is full at 800 but not part of the published tree.
    let response = h.get("tile/0/002").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        PARTIAL_TILE_CACHE_CONTROL
    );
    assert_eq!(response.bytes().await.unwrap().len(), 256 * 32);
    assert_eq!(
        h.frontend_tiles
            .cached(cairn_tlog::tile::parse_path("tile/0/002").unwrap()),
        None
    );
    // Once published, it is verified and immutable.
    h.log.publish().await;
    let response = h.get("tile/0/002").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], FULL_TILE_CACHE_CONTROL);
}
