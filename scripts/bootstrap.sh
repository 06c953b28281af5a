#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test Cairn. Idempotent: it
# checks before installing, so it costs nothing on a machine that has it all.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "bootstrap: cargo is missing; install Rust 1.95 or newer (rustup) first" >&2
    exit 1
fi
if ! command -v cargo-nextest >/dev/null; then
    cargo install cargo-nextest --locked
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
