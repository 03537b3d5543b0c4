#!/usr/bin/env bash
# The cluster suites with E2E_PROVIDER=kubeconfig against a second local control plane started as
# a plain cluster: no nodes (so nothing is simulated: no kwok, no real-pod runner), admission
# webhooks called as on any cluster. The harness did not start it, so it assumes nothing about it;
# every test whose needs the cluster lacks is reported ignored with the reason (e2e/src/harness.rs).
# Prints what was skipped and why, and fails if any test failed or a skipped test was counted as
# passed.
#
#   e2e/kubeconfig.sh [BIN_DIR] [-- extra test arguments, e.g. a filter]
#
# With E2E_KUBECONFIG already set, that cluster is used instead and nothing is started; with
# E2E_PROVIDER=kind the suites run on kind (the e2e-kind workflow).
set -euo pipefail
provider=${E2E_PROVIDER:-kubeconfig}

root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${1:-${BIN_DIR:-$HOME/.cache/mesh-operator/bin}}
shift || true
[ "${1:-}" = "--" ] && shift
work=$(mktemp -d "${TMPDIR:-/tmp}/mesh-e2e-kubeconfig.XXXXXX")
log="$work/e2e.log"

cluster_pid=
cleanup() {
  if [ -n "$cluster_pid" ]; then
    kill "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [ "$provider" = kubeconfig ] && [ -z "${E2E_KUBECONFIG:-}" ]; then
  export E2E_KUBECONFIG="$work/kubeconfig"
  # Same binary as the default target, but a plain cluster: --nodes 0 (no kwok nodes, no runner).
  "$bin_dir/localcluster" --kubeconfig "$E2E_KUBECONFIG" --nodes 0 --admission-webhooks \
    --data-dir "$work/data" --log-file "$work/cluster.log" --ready-file "$work/ready" \
    >/dev/null 2>>"$work/cluster.log" &
  cluster_pid=$!
  for _ in $(seq 1 600); do
    [ -f "$work/ready" ] && break
    kill -0 "$cluster_pid" 2>/dev/null || { tail -20 "$work/cluster.log"; echo "second control plane failed" >&2; exit 1; }
    sleep 0.5
  done
  [ -f "$work/ready" ] || { echo "second control plane not ready in 5 min ($work/cluster.log)" >&2; exit 1; }
  echo "kubeconfig target: second local control plane (no nodes, admission webhooks on), $E2E_KUBECONFIG"
fi

# The suites under the e2e harness (harness = false in e2e/Cargo.toml).
suites=$(awk '/^\[\[test\]\]/{name=""} /^name *=/{gsub(/[" ]/,"",$0); split($0,a,"="); name=a[2]} /^harness *= *false/{print name}' "$root/e2e/Cargo.toml")
args=()
for suite in $suites; do args+=(--test "$suite"); done

status=0
(cd "$root" && E2E_PROVIDER=$provider cargo test --workspace --locked --no-fail-fast "${args[@]}" -- --test-threads=4 "$@") \
  2>&1 | tee "$log" || status=$?

echo
echo "=== E2E_PROVIDER=$provider: skipped (ignored) and why"
awk '/Running tests\/.*\.rs/ {suite=$2; sub(/^tests\//,"",suite); sub(/\.rs$/,"",suite)}
     /^test .* \.\.\. ignored/ {name=$2; sub(/^[^(]*\(/,""); sub(/\)$/,""); print suite "::" name "\n    " $0}' "$log"
read -r passed failed ignored < <(grep -E '^test result:' "$log" |
  sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/' |
  awk '{p+=$1; f+=$2; i+=$3} END {print p+0, f+0, i+0}')
listed=$(grep -cE '^test .* \.\.\. ignored' "$log" || true)
oks=$(grep -cE '^test .* \.\.\. ok$' "$log" || true)
echo "=== totals: $passed passed, $failed failed, $ignored ignored (skipped)"
# The old idiom — print SKIP and return — counts a skipped test as passed: refused.
if grep -E '^SKIP' "$log"; then
  echo "a test printed SKIP and returned (counted as passed): declare a Need instead (e2e/src/harness.rs)" >&2
  exit 1
fi
if [ "$listed" != "$ignored" ] || [ "$oks" != "$passed" ]; then
  echo "summary mismatch: $listed tests listed as ignored vs $ignored counted, $oks listed ok vs $passed counted" >&2
  exit 1
fi
exit "$status"
