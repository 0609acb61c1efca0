#!/bin/bash
# The long fault-injection campaign (issue 7). Prints the figures of docs/reliability.md.
#
#   tests/faults/campaign.sh BUILD_DIR [KILLS=200] [FUZZ_SECONDS=600] [OUT=BUILD_DIR/faults-campaign]
#
# BUILD_DIR is a configured and built ckpt build tree (fault_app, heat, test_faults_mpi).
set -uo pipefail
build="$(cd "${1:?usage: campaign.sh BUILD_DIR [KILLS] [FUZZ_SECONDS] [OUT]}" && pwd)"
kills="${2:-200}" fuzz_seconds="${3:-600}" out="${4:-$build/faults-campaign}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_btl_vader_single_copy_mechanism=none CKPT_QUIET=1
mkdir -p "$out"
status=0
step() { echo; echo "== $1"; }
cli=()
[ -x "$build/bin/ckpt" ] && cli=(--cli "$build/bin/ckpt")

step "crash consistency: $kills kills"
/usr/bin/python3 "$here/kill_campaign.py" --app "$build/bin/fault_app" --heat "$build/bin/heat" \
  --kills "$kills" --seed 2026 --json "$out/kills.json" | tail -3 || status=1
step "corruption"
/usr/bin/python3 "$here/corrupt.py" --app "$build/bin/fault_app" "${cli[@]}" --json "$out/corrupt.json" | tail -4 || status=1
step "full disk"
/usr/bin/python3 "$here/full_disk.py" --app "$build/bin/fault_app" --concurrent 12 --json "$out/full_disk.json" | tail -2 || status=1
step "two jobs on one directory"
/usr/bin/python3 "$here/two_jobs.py" --app "$build/bin/fault_app" | tail -1 || status=1
step "bad input, lock, symlinks, umask, safe loading (GoogleTest at 1 and 2 ranks)"
(cd "$build" && ctest -R faults_bad_input --output-on-failure | tail -3) || status=1
step "fuzzing for $fuzz_seconds s"
"$here/fuzz/run_fuzz.sh" --build "$build/tests/faults/fuzz" --app "$build/bin/fault_app" --seconds "$fuzz_seconds" \
  | tail -8 || status=1
echo
echo "campaign $( [ $status = 0 ] && echo passed || echo FAILED ); JSON in $out"
exit $status
