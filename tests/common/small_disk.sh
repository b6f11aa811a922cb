# A small filesystem of the test's own, for the full-disk tests: a tmpfs mounted on a directory
# under $work (which the sourcing test made), unmounted on exit before $work is removed.
# Sourced after the test's own lib.sh, whose EXIT trap it extends.
small_disks=()
trap 'for d in "${small_disks[@]}"; do umount -l "$d"; done; rm -rf "$work"' EXIT

# small_disk DIR SIZE: mounts a tmpfs of SIZE (mount's units: 1200k, 8m) on DIR, or exits 77
# (CTest: skipped) saying why where mounting is not permitted.
small_disk() {
  mkdir -p "$1"
  local why
  if ! why=$(mount -t tmpfs -o "size=$2" tmpfs "$1" 2>&1); then
    echo "skipped: cannot mount a tmpfs on $1 ($(echo "${why:-mount failed}" | head -n1)); the full-disk tests need" \
      "root (CAP_SYS_ADMIN)"
    exit 77
  fi
  small_disks+=("$1")
}

# fill_disk DIR [LEAVE_KB]: a file DIR/filler that leaves LEAVE_KB KiB (default 0) free on DIR's filesystem.
fill_disk() {
  local free_kb
  free_kb=$(df -k --output=avail "$1" | tail -n1)
  head -c $(((free_kb - ${2:-0}) * 1024)) /dev/zero >"$1/filler"
}

# temporaries DIR: how many *.tmp files lie under DIR.
temporaries() { find "$1" -name '*.tmp' | wc -l; }
