//! Criterion benchmarks live in `benches/`; run them with `cargo bench -p cairn-benches`.
//! The library holds what the tools (`cairn-grow`, `cairn-idle-shards`) share.

use anyhow::Context as _;

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
pub fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let value = line
            .split_whitespace()
            .nth(1)
            .context("short status line")?;
        Ok(value.parse::<f64>()? / 1024.0)
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}
