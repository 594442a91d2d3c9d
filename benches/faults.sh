#!/usr/bin/env bash
# Injected I/O errors and simulated power cuts, long: the two tests of
# tests/integration/faults.rs and power.rs, run with many rounds on a release build.
#
#   benches/faults.sh [ROUNDS] [PPM] [CUTS] [EDITS]     (defaults 25, 100000, 200 and 8)
#
# ROUNDS: rounds of the fault test (each: every call site alone - open, read, write, fsync,
# rename, truncate, unlink, mkdir - then all of them, with ENOSPC, EIO and EACCES in turn,
# under a workload of kills, edits on both sides with sync runs, a flapping probe with a
# webhook, a managed process and the daemon's log file). PPM: how many calls of the site in
# its phase are refused, per million (rare sites: three times as many). EDITS: files edited on
# each side per step (more calls per sync run). CUTS: power cuts inside sync runs, each followed by the
# undo of everything not made durable and the check of what the store recorded as synced.
# Needs a C compiler (cc) for the LD_PRELOAD shim (tests/faultshim/faultshim.c). Prints the
# calls seen and refused per site, the kills, the status answers, the power cuts and the
# changes they undid; exit 0 only if every invariant held.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-25}
ppm=${2:-100000}
cuts=${3:-200}
edits=${4:-8}
for n in "$rounds" "$ppm" "$cuts" "$edits"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: benches/faults.sh [ROUNDS] [PPM] [CUTS] [EDITS]   (positive integers)" >&2; exit 2; }
done
command -v cc >/dev/null || { echo "missing cc (a C compiler) for the fault shim" >&2; exit 2; }
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, Linux $(uname -r)"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?'); rounds $rounds, $ppm ppm, $edits edits a side a step, $cuts power cuts"
start=$(date +%s)
METASYSTEM_FAULT_ROUNDS=$rounds METASYSTEM_FAULT_PPM=$ppm METASYSTEM_FAULT_EDITS=$edits \
  METASYSTEM_POWER_ROUNDS=$cuts \
  cargo test --release --test integration -- --exact --nocapture --test-threads 1 \
  faults::injected_io_errors_lose_nothing_and_the_daemon_keeps_answering \
  power::a_power_cut_in_a_sync_run_loses_nothing_recorded_as_synced 2>&1 \
  | grep -vE '^\s*(Compiling|Finished|Running|Blocking)' 
echo "== wall time: $(( $(date +%s) - start )) s"
