#!/usr/bin/env bash
# What scripts/test.sh needs from the system, checked one by one and installed
# only when missing, saying so before each install. scripts/test.sh runs it first.
#
#   scripts/prereqs.sh
#
# Checked (and the Debian package installed when the check fails):
#   cargo            Rust 1.89 or newer; not installed here (Debian's rustc is older): use rustup
#   cc               gcc: the linker, and ring's C code
#   libc.a           libc6-dev: the static binary links glibc statically
#   readelf          binutils: scripts/build-static.sh checks the binary is static
#   python3, venv    python3, python3-venv: the venv under target/ for the client tests and the linters
#   node, npm        nodejs, npm: the browser and Worker tests
#   chromium         chromium: the browser tests (/usr/bin/chromium, or $CHROMIUM)
#   redis-server     redis-server: the store tests
#   a CJK font       fonts-wqy-microhei: the console's Chinese screenshots (without it they show boxes)
#
# Installs use `apt-get install --no-upgrade --no-install-recommends`: nothing
# already installed is upgraded, and no recommended extras come along (chromium
# and redis-server on Debian 12: 29 new packages, none upgraded, instead of 119
# new and 15 upgraded). That
# needs root on Debian or Ubuntu and the network to Debian's package registry.
# Without root, with something missing, it stops with one line saying what to install.
#
# Environment (for trying it out, and for its own tests):
#   PREREQS_DRY_RUN=1                  say what would be installed; install nothing
#   PREREQS_ASSUME_MISSING="a b"       treat these Debian packages as missing
set -euo pipefail

missing=()   # Debian packages to install
reasons=()   # why each is needed, same order
no_cargo=""  # the Rust toolchain: apt-get cannot bring it

# need PACKAGE WHY CHECK...: PACKAGE is missing when CHECK fails (or is assumed missing).
need() {
  local pkg=$1 why=$2
  shift 2
  if [[ " ${PREREQS_ASSUME_MISSING:-} " != *" $pkg "* ]] && "$@" >/dev/null 2>&1; then
    return 0
  fi
  missing+=("$pkg")
  reasons+=("$why")
}

static_libc() { [ -e "$(cc -print-file-name=libc.a)" ] && [ "$(cc -print-file-name=libc.a)" != libc.a ]; }
chromium_here() { [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; }

command -v cargo >/dev/null || no_cargo=1
need gcc "the C compiler and linker cargo uses" command -v cc
need libc6-dev "glibc's static libc.a, for the static binary" static_libc
need binutils "readelf, to check the static binary" command -v readelf
need python3 "the client tests and the linters run in a Python venv" command -v python3
need python3-venv "python3 -m venv, for the venv under target/" python3 -c 'import venv, ensurepip'
need nodejs "node, for the browser and Worker tests" command -v node
need npm "npm ci, for the browser and Worker tests' packages" command -v npm
need chromium "needed by the browser tests" chromium_here
need redis-server "needed by the store tests" command -v redis-server
cjk_font() { [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || fc-list :lang=zh 2>/dev/null | grep -q .; }
need fonts-wqy-microhei "a Chinese font for the console's screenshots" cjk_font

if [ -z "$no_cargo" ] && [ "${#missing[@]}" -eq 0 ]; then
  echo "prereqs: nothing missing (cargo, cc, libc.a, readelf, python3 + venv, node, npm, chromium, redis-server, a CJK font)"
  exit 0
fi

can_install=""
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then can_install=1; fi

# What cannot be done here: one line saying what to install, and stop.
if [ -n "$no_cargo" ]; then
  line="missing: cargo${missing[*]:+ ${missing[*]}}; install Rust 1.89 or newer with rustup"
  if [ "${#missing[@]}" -eq 0 ]; then
    :
  elif [ -n "$can_install" ]; then
    line+=", then run this again (it installs ${missing[*]})"
  else
    line+=", and run as root or install them: apt-get install ${missing[*]}"
  fi
  echo "$line" >&2
  exit 1
fi
if [ "${#missing[@]}" -gt 0 ] && [ -z "$can_install" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
  else
    echo "missing: ${missing[*]}; no apt-get here: install your system's packages for them" >&2
  fi
  exit 1
fi

if [ -n "${PREREQS_DRY_RUN:-}" ]; then
  for i in "${!missing[@]}"; do
    echo "prereqs: missing ${missing[$i]} (Debian package; ${reasons[$i]})"
  done
  echo "prereqs: dry run, would run: apt-get update; apt-get install --no-upgrade --no-install-recommends ${missing[*]}"
  exit 0
fi

echo "prereqs: apt-get update (Debian's package lists)"
apt-get update -qq
export DEBIAN_FRONTEND=noninteractive
for i in "${!missing[@]}"; do
  echo "prereqs: installing ${missing[$i]} (Debian package; ${reasons[$i]})"
  # apt's own summary line ("0 upgraded, 29 newly installed, ...") shows what came with it.
  apt-get install -y -q --no-upgrade --no-install-recommends "${missing[$i]}" \
    | { grep -E '^[0-9]+ upgraded' || true; }
done
echo "prereqs: installed ${missing[*]}"
