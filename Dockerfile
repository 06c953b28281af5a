# Cairn's one image: `cairnd` (every server role) and `cairn` (the tools),
# on Debian bookworm, running as the unprivileged user 10001. Nothing in it
# runs a shell: the entry point is `cairnd` itself, in exec form, so
# Kubernetes `args` and compose `command` name the role.
#
# Build from source (anywhere images can be pulled):
#
#     docker build -t cairn .
#
# Or copy binaries already built on the host (a machine without a
# registry: make the Debian base with scripts/docker-base first; see
# scripts/docker-image, which does both):
#
#     cp target/release/cairnd target/release/cairn dist/
#     docker build --build-arg BUILD_IMAGE=debian:bookworm-slim \
#         --build-arg BINARIES=dist -t cairn .
#
# The binaries must be built for the runtime's glibc (bookworm's 2.36 or an
# older one). The build stage below picks one path or the other with a build
# argument rather than with two stages, because the classic builder (no
# BuildKit) builds every stage, and would pull the Rust image even when it
# is not used.

ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
# Empty: build from source. Else a directory of the build context holding
# `cairnd` and `cairn`, copied as they are.
ARG BINARIES=
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /rootfs/usr/local/bin /rootfs/var/lib/cairn /rootfs/etc/cairn; \
    if [ -n "$BINARIES" ]; then \
        cp "$BINARIES/cairnd" "$BINARIES/cairn" /rootfs/usr/local/bin/; \
    else \
        apt-get update; \
        apt-get install -y --no-install-recommends libclang-dev; \
        cargo build --release --locked --bin cairnd --bin cairn; \
        cp target/release/cairnd target/release/cairn /rootfs/usr/local/bin/; \
    fi; \
    /rootfs/usr/local/bin/cairnd --version; \
    /rootfs/usr/local/bin/cairn --version

FROM ${RUNTIME_IMAGE}
# No ca-certificates: Cairn trusts the web PKI roots compiled into it plus
# the extra roots a configuration names, never the host's store.
COPY --from=build /rootfs/usr/local/bin/ /usr/local/bin/
COPY --from=build --chown=10001:10001 /rootfs/var/lib/cairn /var/lib/cairn
COPY --from=build /rootfs/etc/cairn /etc/cairn
USER 10001:10001
WORKDIR /var/lib/cairn
# 6965: the Sigsum API (frontend, dev, witness); 6970: a sequencer's gRPC
# (Sequencer, Admin and Raft); 6971: a sequencer's /metrics, /livez, /readyz.
EXPOSE 6965 6970 6971
ENTRYPOINT ["/usr/local/bin/cairnd"]
CMD ["dev", "--listen", "0.0.0.0:6965", "--data-dir", "/var/lib/cairn"]
