#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test Cairn. Idempotent: it
# checks before installing, so it costs nothing on a machine that has it all.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "bootstrap: cargo is missing; install Rust 1.95 or newer (rustup) first" >&2
    exit 1
fi

# RocksDB's Rust bindings are generated at build time with bindgen, which
# needs libclang (Debian: libclang-dev). A C++ compiler builds RocksDB itself.
need_apt=()
if command -v dpkg >/dev/null; then
    dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
elif ! ldconfig -p 2>/dev/null | grep -q 'libclang\.so'; then
    need_apt+=(libclang-dev)
fi
command -v c++ >/dev/null || need_apt+=(g++)
# The ssh-agent signing tests run OpenSSH's ssh-agent and ssh-add.
command -v ssh-agent >/dev/null || need_apt+=(openssh-client)
# The cluster tests cut a node off in its own network namespace.
command -v ip >/dev/null || need_apt+=(iproute2)
command -v iptables >/dev/null || need_apt+=(iptables)
# The alert rules are checked and unit-tested with promtool (Debian ships
# it in the prometheus package).
command -v promtool >/dev/null || need_apt+=(prometheus)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing ${need_apt[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "bootstrap: please install ${need_apt[*]} (Debian/Ubuntu package names)" >&2
        exit 1
    fi
fi

if ! command -v cargo-nextest >/dev/null; then
    cargo install cargo-nextest --locked
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

# The storage crate's S3 tests (crates/storage/tests/s3.rs) run moto's S3
# server; they fail, rather than skip, without it.
if ! command -v python3 >/dev/null; then
    echo "bootstrap: please install python3 (the S3 tests run moto's server)" >&2
    exit 1
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    python3 -m pip install --quiet 'moto[server]'
fi
