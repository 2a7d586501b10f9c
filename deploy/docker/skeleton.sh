#!/usr/bin/env bash
# Writes a "recipe" of the workspace to DEST: every Cargo manifest, the lock file and cargo config
# as they are, and an empty stub (`fn main() {}`, or an empty `lib.rs`) for every target root
# (lib.rs, main.rs, src/bin/*, build.rs, top-level tests/examples/benches, any `path = "*.rs"` a
# manifest names). Building the skeleton compiles all dependencies and nothing of ours, so the
# image layer holding the compiled dependencies only changes when a manifest, the lock file or the
# set of targets changes - not when a source file is edited or a module added. (The same idea as
# cargo-chef, without a tool to install.)
# Usage: skeleton.sh DEST   (run from the workspace root)
set -euo pipefail
dest=${1:?usage: skeleton.sh DEST}
mkdir -p "$dest"

copy() { mkdir -p "$dest/$(dirname "$1")" && cp "$1" "$dest/$1"; }
stub() {
  mkdir -p "$dest/$(dirname "$1")"
  if [ "$(basename "$1")" = lib.rs ]; then
    printf '//! dependency-cache stub\n' >"$dest/$1"
  else
    printf 'fn main() {}\n' >"$dest/$1"
  fi
}

for f in Cargo.lock rust-toolchain rust-toolchain.toml .cargo/config.toml .cargo/config; do
  if [ -f "$f" ]; then copy "$f"; fi
done

target_root='(^|/)(src/(lib|main)\.rs|src/bin/.+\.rs|build\.rs|(tests|examples|benches)/[^/]+\.rs|(tests|examples|benches)/[^/]+/main\.rs)$'
while IFS= read -r -d '' f; do
  f=${f#./}
  if [[ $f == */Cargo.toml || $f == Cargo.toml ]]; then
    copy "$f"
    dir=$(dirname "$f")
    # Targets with an explicit path.
    while IFS= read -r p; do
      if [ -f "$dir/$p" ]; then stub "$dir/$p"; fi
    done < <(sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$f")
  elif [[ $f =~ $target_root ]]; then
    stub "$f"
  fi
done < <(find . -path ./target -prune -o -path ./.git -prune -o \( -name Cargo.toml -o -name '*.rs' \) -type f -print0)
