//! C2SP tlog-tiles: hash tile and entry bundle codecs, tile roots, the tile
//! builder and path parsing.
//!
//! Baseline: raw SHA-256 via `cairn_tlog::hash::sha256` of a 65-byte node
//! input, a full tile's 8192 bytes, a full bundle's bytes or a tile path's
//! length, measured at the start of every group
//! (`<group>/baseline_sha256/...`) so that it runs under the same machine
//! load as what it is compared with. Report ratios, not absolute rates (see
//! `benches/README.md`).

use std::hint::black_box;
use std::time::Duration;

use cairn_tlog::hash::{Hash, leaf_hash, sha256};
use cairn_tlog::tile::{
    FULL_TILE_BYTES, TileBuilder, decode_bundle, decode_hash_tile, encode_bundle, encode_hash_tile,
    parse_path, tile_root,
};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

const TILE_WIDTH: usize = 256;
const SIGSUM_LEAF_SIZE: usize = 128;
/// Bytes of a full bundle of Sigsum leaves: a 2-byte length per entry.
const BUNDLE_BYTES: usize = TILE_WIDTH * (2 + SIGSUM_LEAF_SIZE);
/// Leaves appended to a fresh builder per iteration, whatever the batch size.
const BUILDER_LEAVES: usize = 4096;

/// Representative paths: deep index, partial bundle, small level-2 tile.
const PATHS: [&str; 4] = [
    "tile/0/x001/x234/067",
    "tile/entries/x012/345.p/17",
    "tile/2/000",
    "tile/1/x004/800.p/255",
];

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

fn leaf_hashes(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn leaves() -> Vec<[u8; SIGSUM_LEAF_SIZE]> {
    (0..TILE_WIDTH)
        .map(|i| std::array::from_fn(|j| (i * 7 + j) as u8))
        .collect()
}

/// The baseline, measured first in every group so that it shares the
/// group's machine load: raw SHA-256 of `len` bytes, `per_iter` times per
/// iteration, at the given throughput.
fn sha256_baseline(
    g: &mut BenchmarkGroup<'_, WallTime>,
    len: usize,
    per_iter: usize,
    throughput: Throughput,
) {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();
    let label = match per_iter {
        1 => format!("{len}B"),
        n => format!("{len}B_x{n}"),
    };
    g.throughput(throughput);
    g.bench_function(BenchmarkId::new("baseline_sha256", label), |b| {
        b.iter(|| {
            for _ in 0..per_iter {
                black_box(sha256(black_box(&data)));
            }
        })
    });
}

fn hash_tiles(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash_tile");
    let hashes = leaf_hashes(TILE_WIDTH);
    let bytes = encode_hash_tile(&hashes).expect("256 hashes");
    let tile_bytes = Throughput::Bytes(FULL_TILE_BYTES as u64);
    sha256_baseline(&mut g, FULL_TILE_BYTES, 1, tile_bytes);
    g.bench_function("encode/256", |b| {
        b.iter(|| encode_hash_tile(black_box(&hashes)))
    });
    g.bench_function("decode/256", |b| {
        b.iter(|| decode_hash_tile(black_box(&bytes)))
    });
    g.finish();

    // 255 node hashes per full tile: rate in node hashes per second.
    let mut g = c.benchmark_group("tile_root");
    sha256_baseline(&mut g, 65, 1, Throughput::Elements(1));
    g.throughput(Throughput::Elements(TILE_WIDTH as u64 - 1));
    g.bench_function("256", |b| b.iter(|| tile_root(black_box(&hashes))));
    g.finish();
}

fn bundles(c: &mut Criterion) {
    let mut g = c.benchmark_group("bundle");
    let entries = leaves();
    let bytes = encode_bundle(&entries).expect("256 entries");
    assert_eq!(bytes.len(), BUNDLE_BYTES);
    let bundle_bytes = Throughput::Bytes(BUNDLE_BYTES as u64);
    sha256_baseline(&mut g, BUNDLE_BYTES, 1, bundle_bytes);
    g.bench_function("encode/256x128B", |b| {
        b.iter(|| encode_bundle(black_box(&entries)))
    });
    g.bench_function("decode/256x128B", |b| {
        b.iter(|| decode_bundle(black_box(&bytes)))
    });
    g.finish();
}

/// Appends 4096 leaf hashes to a fresh builder in batches of 1..4096; the
/// rate is per leaf. Every call returns the current partial tiles as well
/// as completed ones, so small batches copy the growing partial tile each
/// time.
fn tile_builder(c: &mut Criterion) {
    let mut g = c.benchmark_group("tile_builder");
    let hashes = leaf_hashes(BUILDER_LEAVES);
    sha256_baseline(&mut g, 65, 1, Throughput::Elements(1));
    g.throughput(Throughput::Elements(BUILDER_LEAVES as u64));
    for batch in [1usize, 16, 256, 4096] {
        g.bench_function(BenchmarkId::new("append/batch", batch), |b| {
            b.iter(|| {
                let mut builder = TileBuilder::new();
                for chunk in hashes.chunks(batch) {
                    black_box(builder.append(black_box(chunk)).expect("no overflow"));
                }
                builder.size()
            })
        });
    }
    g.finish();
}

fn paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_path");
    for p in PATHS {
        let parsed = parse_path(p).expect("canonical path");
        assert_eq!(parsed.to_string(), p);
    }
    // One SHA-256 per path, of the average path's length, so that the rate
    // in paths/s compares directly.
    let per_iter = Throughput::Elements(PATHS.len() as u64);
    let avg_len = PATHS.iter().map(|p| p.len()).sum::<usize>() / PATHS.len();
    sha256_baseline(&mut g, avg_len, PATHS.len(), per_iter);
    g.bench_function(format!("mixed_x{}", PATHS.len()), |b| {
        b.iter(|| {
            for p in PATHS {
                black_box(parse_path(black_box(p)).expect("canonical path"));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = hash_tiles, bundles, tile_builder, paths
}
criterion_main!(benches);
