#!/usr/bin/env bash
# Compare `bulkhead connectivity` with np-guard's network-config-analyzer (nca) on synthetic
# clusters of the benchmark's standard shape: run time, peak memory, and every pair on which the
# two disagree.
#
#   scripts/compare-nca.sh [WORKLOADS...]        # default sizes: 50 100 200 500 1000
#
# Per size W the cluster has max(4, W/50) namespaces and W/5 NetworkPolicies (the proportions of
# the 50,000/1,000/10,000 benchmark, with at least 4 namespaces) and no AdminNetworkPolicies:
# nca 2.1.0 does not read AdminNetworkPolicy or BaselineAdminNetworkPolicy at all (it skips them
# silently), so including them would only measure that.
#
# Environment:
#   NCA_TIMEOUT   seconds nca may take for one size (default 300)
#   BUDGET        seconds all nca runs together may take (default 500); once a size times out or
#                 the budget is spent, larger sizes run bulkhead only
#   SEED          generator seed (default 1)
#   OUT           work directory (default target/nca-compare)
#   NCA_VERSION   network-config-analyzer version installed into target/nca-venv (default 2.1.0)
#
# Writes OUT/results.md (the table and the first disagreements) and, per size, OUT/wN/: the
# cluster, both raw outputs, their canonical forms (scripts/nca_normalise.py) and diff.json.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
NCA_TIMEOUT=${NCA_TIMEOUT:-300}
BUDGET=${BUDGET:-500}
SEED=${SEED:-1}
OUT=${OUT:-target/nca-compare}
NCA_VERSION=${NCA_VERSION:-2.1.0}
VENV=target/nca-venv
NORM="python3 $ROOT/scripts/nca_normalise.py"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(50 100 200 500 1000)

for s in "${SIZES[@]}"; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || { echo "size must be a positive number of workloads: $s" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 2; }

echo "== nca $NCA_VERSION in $VENV"
if ! "$VENV/bin/nca" --version >/dev/null 2>&1 ||
   [ "$("$VENV/bin/pip" show network-config-analyzer 2>/dev/null | sed -n 's/^Version: //p')" != "$NCA_VERSION" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "network-config-analyzer==$NCA_VERSION"
fi
NCA=$ROOT/$VENV/bin/nca

echo "== bulkhead (release)"
cargo build --release --quiet -p bulkhead-cli
BULKHEAD=$ROOT/target/release/bulkhead

$NORM selftest

mkdir -p "$OUT"
RESULTS=$OUT/results.md
DETAILS=$(mktemp)
trap 'rm -f "$DETAILS"' EXIT

# Wall-clock time with `date +%s.%N` (to the millisecond; /usr/bin/time rounds to 10 ms), peak
# RSS in MiB from a `/usr/bin/time -f %M` file.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.3f", b - a}'; }
mib() { tail -n 1 "$1" | awk '{printf "%.0f", $1 / 1024}'; }

{
  echo "| workloads | namespaces | policies | bulkhead s | bulkhead MiB | nca s | nca MiB | nca/bulkhead | lines (bulkhead / nca, canonical) | disagreements |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
} > "$RESULTS"

spent=0
nca_off=""
for W in "${SIZES[@]}"; do
  NS=$(( W / 50 > 4 ? W / 50 : 4 ))
  NP=$(( W / 5 > 1 ? W / 5 : 1 ))
  D=$OUT/w$W
  mkdir -p "$D"
  echo "== $W workloads, $NS namespaces, $NP NetworkPolicies"
  "$BULKHEAD" bench generate --workloads "$W" --namespaces "$NS" --policies "$NP" --anps 0 --no-banp \
    --seed "$SEED" --out "$D/cluster" --force

  t0=$(now)
  /usr/bin/time -f "%M" -o "$D/bulkhead.time" \
    "$BULKHEAD" connectivity "$D/cluster" --format txt --output "$D/bulkhead.txt"
  b_s=$(since "$t0"); b_m=$(mib "$D/bulkhead.time")
  $NORM canon --from bulkhead "$D/bulkhead.txt" "$D/bulkhead.canon"
  b_lines=$(wc -l < "$D/bulkhead.canon")
  echo "   bulkhead: ${b_s}s, ${b_m} MiB, $(wc -l < "$D/bulkhead.txt") lines"

  left=$(( BUDGET - spent ))
  if [ -n "$nca_off" ] || [ "$left" -le 5 ]; then
    why=${nca_off:-budget of ${BUDGET}s spent}
    echo "   nca: not run ($why)"
    echo "| $W | $NS | $NP | $b_s | $b_m | not run | | | $b_lines / – | – |" >> "$RESULTS"
    continue
  fi
  limit=$(( left < NCA_TIMEOUT ? left : NCA_TIMEOUT ))
  pods=()
  for f in "$D"/cluster/workloads*.yaml; do pods+=(--pod_list "$f"); done
  rm -f "$D/nca.txt"
  start=$(date +%s)
  t0=$(now)
  set +e
  /usr/bin/time -f "%M" -o "$D/nca.time" timeout "$limit" \
    "$NCA" --connectivity "$D/cluster/netpols.yaml" "${pods[@]}" --ns_list "$D/cluster/namespaces.yaml" \
    --output_format txt_no_fw_rules --file_out "$D/nca.txt" --return_0 > "$D/nca.log" 2>&1
  rc=$?
  set -e
  n_s=$(since "$t0")
  spent=$(( spent + $(date +%s) - start ))
  n_m=$(mib "$D/nca.time")
  if [ "$rc" -eq 124 ]; then
    echo "   nca: timed out after ${limit}s"
    nca_off="nca timed out at $W workloads"
    echo "| $W | $NS | $NP | $b_s | $b_m | > $limit (timeout) | $n_m | > $(awk -v n="$limit" -v b="$b_s" 'BEGIN{printf "%.0f", n / (b > 0.005 ? b : 0.005)}') | $b_lines / – | – |" >> "$RESULTS"
    continue
  elif [ "$rc" -ne 0 ] || [ ! -s "$D/nca.txt" ]; then
    echo "   nca failed (exit $rc); see $D/nca.log" >&2
    tail -n 5 "$D/nca.log" >&2
    echo "| $W | $NS | $NP | $b_s | $b_m | failed ($rc) | | | $b_lines / – | – |" >> "$RESULTS"
    continue
  fi
  $NORM canon --from nca "$D/nca.txt" "$D/nca.canon"
  n_lines=$(wc -l < "$D/nca.canon")
  summary=$($NORM diff "$D/bulkhead.canon" "$D/nca.canon" --show 5 --json "$D/diff.json")
  count=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disagreements"])' "$D/diff.json")
  ratio=$(awk -v n="$n_s" -v b="$b_s" 'BEGIN{printf "%.0f", n / (b > 0.005 ? b : 0.005)}')
  echo "   nca: ${n_s}s, ${n_m} MiB, $(grep -c ' => ' "$D/nca.txt") lines; $summary" | head -n 1
  echo "| $W | $NS | $NP | $b_s | $b_m | $n_s | $n_m | $ratio | $b_lines / $n_lines | $count |" >> "$RESULTS"
  if [ "$count" -ne 0 ]; then
    { echo; echo "### $W workloads"; echo '```'; echo "$summary"; echo '```'; } >> "$DETAILS"
  fi
done

{
  echo
  echo "Seed $SEED; network-config-analyzer $NCA_VERSION, Python $("$VENV/bin/python" -c "import platform; print(platform.python_version())"); $(nproc) cores. Times are wall-clock"
  echo "seconds of the whole process (loading included), memory the peak resident set. Lines are"
  echo "those of the canonical forms (scripts/nca_normalise.py): pairs of one pair's lines united,"
  echo "adjacent external ranges with the same connections merged, TCP/UDP/SCTP only."
  cat "$DETAILS"
} >> "$RESULTS"
echo
cat "$RESULTS"
