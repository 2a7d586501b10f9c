#!/usr/bin/env bash
# Assembles the root filesystem of a runtime image in ROOTFS from the build environment: the given
# executables in /usr/local/bin, the shared libraries they load as the dynamic linker resolves
# them here (so the image runs exactly the libraries the binary was built against), the MariaDB
# Connector/C authentication plugins when that library is linked, Mozilla's CA certificates
# (Debian's ca-certificates set, without authorities added locally), /etc/passwd and /etc/group
# with the unprivileged user arcana (10001), and /tmp. No shell, no package manager.
# Usage: rootfs.sh ROOTFS EXECUTABLE...
set -euo pipefail
root=${1:?usage: rootfs.sh ROOTFS EXECUTABLE...}
shift
[ $# -gt 0 ] || { echo "rootfs.sh: no executable given" >&2; exit 2; }
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"

# The libraries an ELF file loads (the dynamic loader included); fails on one not found.
libs() {
  local out
  out=$(ldd "$1")
  if grep -q 'not found' <<<"$out"; then
    echo "rootfs.sh: $1 needs a library that is not installed:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}
copy_libs() {
  local lib
  for lib in $(libs "$1"); do
    [ -e "$root$lib" ] || cp --parents -L "$lib" "$root"
  done
}

for exe in "$@"; do
  install -m 0755 "$exe" "$root/usr/local/bin/"
  copy_libs "$exe"
done
# MariaDB Connector/C loads its authentication plugins (caching_sha2_password, ed25519, ...) at
# run time from its plugin directory.
for plugins in /usr/lib/*/libmariadb3/plugin; do
  if [ -d "$plugins" ] && find "$root" -name 'libmariadb.so*' | grep -q .; then
    mkdir -p "$root$plugins"
    for p in "$plugins"/*.so; do
      cp -L "$p" "$root$plugins/"
      copy_libs "$p"
    done
  fi
done

cat /usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\narcana:x:10001:10001:arcana:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\narcana:x:10001:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
echo "rootfs.sh: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1) in $root"
