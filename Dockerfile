# syntax=docker/dockerfile:1
#
# gemini-balance in a FROM-scratch image: one static binary, nothing else.
#
#   docker build -t gemini-balance .
#   docker run -p 8000:8000 -e API_KEYS='["AIza…"]' -e ALLOWED_TOKENS='["sk-…"]' gemini-balance
#
# Multi-arch (linux/amd64 and linux/arm64): the build stage runs on the build
# machine's own architecture and cross-compiles for the target's, so no emulation
# is needed:  docker buildx build --platform linux/amd64,linux/arm64 .
# The same Dockerfile builds a Hugging Face Space (README.md front matter, sdk: docker).

ARG RUST_VERSION=1.95

# ---- build: the same script CI and scripts/test.sh run -------------------------
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
WORKDIR /src
# Rust target and, when cross-compiling, Debian's cross gcc and static glibc
# (from the base image's Debian release, so left unpinned).
# hadolint ignore=DL3008
RUN set -eu; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) triple=x86_64-unknown-linux-gnu; cross=x86-64; libc=amd64 ;; \
      arm64) triple=aarch64-unknown-linux-gnu; cross=aarch64; libc=arm64 ;; \
      *) echo "unsupported architecture $arch" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /target-triple; \
    rustup target add "$triple"; \
    if [ "$arch" != "$(dpkg --print-architecture)" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$cross-linux-gnu" "libc6-dev-$libc-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    OUT=/out/gemini-balance scripts/build-static.sh "$(cat /target-triple)"

# ---- the image: the binary, nothing else ---------------------------------------
FROM scratch
COPY --from=build /out/gemini-balance /gemini-balance
# Hugging Face runs a Space's container as uid 1000; so does this image everywhere.
USER 1000:1000
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
# scratch has no curl: the binary checks itself (GET /health on $PORT, exit 0/1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/gemini-balance", "healthcheck"]
ENTRYPOINT ["/gemini-balance"]
