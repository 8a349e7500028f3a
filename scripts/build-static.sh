#!/usr/bin/env bash
# Build a fully static release binary of gemini-balance: the one file the
# FROM-scratch image (Dockerfile) holds. The Dockerfile's build stage runs this
# same script, and so does scripts/test.sh before the chroot smoke test.
#
#   scripts/build-static.sh [TARGET]
#
# TARGET (default: this machine's architecture):
#   x86_64-unknown-linux-gnu     glibc, linked statically with +crt-static (default on x86_64)
#   aarch64-unknown-linux-gnu    the same for 64-bit ARM (default on aarch64). From an x86_64
#                                host it cross-compiles; it needs, once:
#                                  rustup target add aarch64-unknown-linux-gnu
#                                  apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
#   x86_64-unknown-linux-musl    musl instead of glibc; needs, once:
#                                  rustup target add x86_64-unknown-linux-musl
#                                  apt-get install musl-tools   (musl-gcc, for ring's C code)
#
# The release profile (Cargo.toml) is tuned for size and safety: LTO, one codegen
# unit, stripped symbols, panic = "unwind" so a panicking request is caught by the
# server's panic guard instead of aborting the whole process.
#
# Nothing is needed at run time: TLS roots are compiled in (webpki-roots), and
# names resolve from /etc/hosts and /etc/resolv.conf, which Docker provides.
#
# The script fails if the result is dynamically linked (an ELF interpreter or a
# NEEDED library), larger than MAX_BYTES (default 8 MiB), or does not run.
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: target)
#   OUT               also copy the binary to this path (e.g. /out/gemini-balance)
#   MAX_BYTES         size limit in bytes (default 8388608 = 8 MiB)
#
# Prints the binary's path on the last line of standard output.
set -euo pipefail
cd "$(dirname "$0")/.."

host_arch=$(uname -m)
case "${1:-}" in
  "") case "$host_arch" in
        x86_64) target=x86_64-unknown-linux-gnu ;;
        aarch64|arm64) target=aarch64-unknown-linux-gnu ;;
        *) echo "build-static: no default target for $host_arch; name one" >&2; exit 2 ;;
      esac ;;
  *) target=$1 ;;
esac
max_bytes=${MAX_BYTES:-8388608}
target_dir=${CARGO_TARGET_DIR:-target}

case "$target" in
  *-linux-gnu|*-linux-musl) ;;
  *) echo "build-static: unsupported target $target" >&2; exit 2 ;;
esac

# Cross-compiling (e.g. the multi-arch image build, which runs on the build
# machine's architecture): Debian's cross gcc links, e.g. aarch64-linux-gnu-gcc
# from gcc-aarch64-linux-gnu (+ libc6-dev-arm64-cross for glibc's static libc.a).
target_arch=${target%%-*}
[ "$host_arch" = arm64 ] && host_arch=aarch64
if [ "$target_arch" != "$host_arch" ]; then
  cross_gcc=${CROSS_GCC:-$target_arch-linux-gnu-gcc}
  triple_env=$(tr 'a-z-' 'A-Z_' <<<"$target")
  triple_cc=$(tr '-' '_' <<<"$target")
  export "CARGO_TARGET_${triple_env}_LINKER=${cross_gcc}"
  export "CC_${triple_cc}=${cross_gcc}"
  echo "build-static: cross-compiling for $target with $cross_gcc" >&2
fi

if [ "$target_arch" = "$host_arch" ] && [[ "$target" == *-musl ]] \
   && ! command -v "$target_arch-linux-musl-gcc" >/dev/null && ! command -v musl-gcc >/dev/null; then
  echo "build-static: $target needs musl-gcc for ring's C code: apt-get install musl-tools" >&2
  exit 1
fi

# +crt-static links the C runtime statically (musl does by default; glibc needs
# it). With an explicit --target, RUSTFLAGS reach only the target's crates, not
# build scripts or proc-macros, which stay ordinary host programs.
# relocation-model=static: a plain static executable, not a static-pie. A
# static-pie carries ~220 KB of self-relocation records (.rela.dyn); without
# them the binary fits its 8 MiB budget at opt-level "s" (at "z" it would run
# ~70 % more instructions per request). The price: the binary's own image is
# not address-randomized (stack, heap and mmap still are); SECURITY.md says so.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static"
# getrandom 0.3+ finds glibc's getrandom() with dlsym, which a static binary
# cannot do, and then falls back to opening /dev/urandom: a file a bare chroot
# lacks. Call getrandom() directly instead (glibc >= 2.25; musl links it anyway).
case "$target" in
  *-gnu) RUSTFLAGS="$RUSTFLAGS --cfg getrandom_backend=\"linux_getrandom\"" ;;
esac

echo "build-static: cargo build --release --locked --target $target" >&2
start=$(date +%s)
cargo build --release --locked --target "$target" --bin gemini-balance >&2
bin="$target_dir/$target/release/gemini-balance"
echo "build-static: built in $(( $(date +%s) - start )) s" >&2

fail() { echo "build-static: FAIL: $*" >&2; exit 1; }

[ -f "$bin" ] || fail "$bin was not produced"

# Strip the symbol table explicitly: the profile's `strip = true` has been seen
# to leave .symtab/.strtab (1.4 MB of names) in the static-pie when cargo
# reused an artifact. binutils' strip, or the cross one for another architecture.
strip_tool="strip"
if command -v "${target%%-*}-linux-gnu-strip" >/dev/null; then
  strip_tool="${target%%-*}-linux-gnu-strip"
fi
if command -v "$strip_tool" >/dev/null; then
  "$strip_tool" --strip-all "$bin" || fail "$strip_tool could not strip $bin"
else
  echo "build-static: no $strip_tool here: the binary keeps whatever symbols cargo left" >&2
fi

# Fully static: no ELF interpreter (PT_INTERP) and no shared library needed.
# (A static-pie, built with other RUSTFLAGS, still has a DYNAMIC section, for relocating itself, but no NEEDED.)
if command -v readelf >/dev/null; then
  readelf=readelf
elif command -v aarch64-linux-gnu-readelf >/dev/null; then
  readelf=aarch64-linux-gnu-readelf
else
  fail "readelf (binutils) is needed to check the binary"
fi
headers=$("$readelf" -lW "$bin") || fail "$bin is not an ELF file"
if grep -q 'INTERP' <<<"$headers"; then
  fail "$bin is dynamically linked: it asks for an interpreter: $(grep -A1 INTERP <<<"$headers" | tr -s ' ' | tail -1)"
fi
needed=$("$readelf" -dW "$bin" | grep '(NEEDED)' || true)
if [ -n "$needed" ]; then
  fail "$bin needs shared libraries:"$'\n'"$needed"
fi

size=$(stat -c %s "$bin")
if [ "$size" -gt "$max_bytes" ]; then
  fail "$bin is $size bytes, over the limit of $max_bytes"
fi

# It runs (when it is for this machine), with an empty environment.
if [ "$target_arch" = "$host_arch" ]; then
  version=$(env -i "$bin" --version) || fail "$bin does not run"
  echo "build-static: $version" >&2
fi

echo "build-static: OK: $bin is static, $size bytes ($(( (size + 1023) / 1024 )) KiB; limit $max_bytes)" >&2
if [ -n "${OUT:-}" ]; then
  mkdir -p "$(dirname "$OUT")"
  cp "$bin" "$OUT"
  echo "build-static: copied to $OUT" >&2
fi
echo "$bin"
