#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time each, one after the
# other with one job (the targets share the machine with everything else):
#
#   scripts/fuzz.sh [seconds-per-target] [target...]   (default 600 s, all)
#
# Each target's corpus (fuzz/corpus/<target>, not committed) starts from the
# committed seeds in fuzz/seeds/<target>. Prints per target the time run,
# the executions and whether it found anything; exits non-zero on a finding
# (the input is in fuzz/artifacts/<target>/, the log in fuzz/logs/).
#
# Built without a sanitizer (FUZZ_SANITIZER=address to change): mpreg-core
# has no unsafe code, so AddressSanitizer finds nothing the Rust checks do
# not, and it halves the executions. Debug assertions are on, so arithmetic
# overflow panics as it does in the test profile.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-600}"
shift || true

export RUSTUP_AUTO_INSTALL=0
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: skipped (no nightly toolchain; rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped (cargo-fuzz missing; cargo install cargo-fuzz)"
  exit 0
fi

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz: building every target (sanitizer $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer" -a >/dev/null

mkdir -p logs
found=0
printf '%-18s %8s %14s  %s\n' target seconds executions result
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  if [ -d "seeds/$target" ]; then
    cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  fi
  log="logs/$target.log"
  start=$(date +%s)
  rc=0
  cargo +nightly fuzz run -s "$sanitizer" -a "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=60 -rss_limit_mb=1024 \
    -print_final_stats=1 >"$log" 2>&1 </dev/null || rc=$?
  # libFuzzer's own run time (the wall time includes the build check).
  elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  elapsed="${elapsed:-$(( $(date +%s) - start ))}"
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    result="no finding"
  else
    result="FINDING (exit $rc; see fuzz/$log, fuzz/artifacts/$target/)"
    found=1
  fi
  printf '%-18s %8s %14s  %s\n' "$target" "$elapsed" "${execs:-?}" "$result"
done
exit "$found"
