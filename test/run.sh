#!/usr/bin/env bash
# What `npm test` runs: lint, typecheck and the ava suite, then one closing line
#   N passed, N failed[, N skipped]
# computed from ava's TAP summary. Lint and typecheck count as one failed check each when they fail (they are
# not counted when they pass, so "passed" is the number of ava tests). Exit status 0 only when nothing failed.
set -euo pipefail

cd "$(dirname "$0")/.."
# Node 24 from node_modules/.bin must come first: the system Node 20 cannot strip TypeScript types.
export PATH="$PWD/node_modules/.bin:$PATH"

# --- system packages the tests need ----------------------------------------------------------------------------
# command name -> Debian package
declare -A system_packages=([redis-server]=redis-server [iptables]=iptables)
missing=()
for cmd in "${!system_packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${system_packages[$cmd]}")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test/run.sh: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } </dev/null >&2; then
      echo "test/run.sh: NOTE: apt-get failed; tests that need ${missing[*]} will fail or skip" >&2
    fi
  else
    echo "test/run.sh: NOTE: ${missing[*]} missing and not root (or no apt-get); tests that need them will fail or" \
      "skip. Install with: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

# --- lint and typecheck ----------------------------------------------------------------------------------------
check_failures=0
echo '# lint: biome lint .'
if ! biome lint . </dev/null; then
  echo '# lint FAILED' && check_failures=$((check_failures + 1))
fi
echo '# typecheck: tsc --noEmit -p .'
if ! tsc --noEmit -p . </dev/null; then
  echo '# typecheck FAILED' && check_failures=$((check_failures + 1))
fi

# --- ava -------------------------------------------------------------------------------------------------------
# Only ava's stdout is parsed (and shown); its stderr, where test output goes, passes straight through.
tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
ava_status=0
ava --tap </dev/null | tee "$tap" || ava_status=$?

# The summary follows the plan line `1..N`. supertap (ava's TAP writer) folds todo tests into `# fail` and prints
# no `# todo` line; a todo test is a `not ok ... # TODO` line. Todo tests are reported as skipped, not failed.
read -r plan passed failed skipped todo < <(awk '
  /^1\.\.[0-9]+$/ { plan = 1; next }
  /^not ok [0-9]+ .* # TODO$/ { todo_lines++ }
  plan && /^# pass [0-9]+$/ && pass == "" { pass = $3 }
  plan && /^# fail [0-9]+$/ && fail == "" { fail = $3 }
  plan && /^# skip [0-9]+$/ && skip == "" { skip = $3 }
  plan && /^# todo [0-9]+$/ && todo == "" { todo = $3 }
  END {
    if (todo == "") { todo = todo_lines + 0; fail -= todo }
    if (fail < 0) fail = 0
    print plan + 0, pass + 0, fail + 0, skip + 0, todo + 0
  }' "$tap")

if ((plan == 0)); then
  echo '# ava printed no TAP plan (1..N): counted as a failure'
  failed=$((failed + 1))
elif ((ava_status != 0 && failed == 0)); then
  echo "# ava exited with status $ava_status: counted as a failure"
  failed=1
fi
failed=$((failed + check_failures))
skipped=$((skipped + todo))

summary="$passed passed, $failed failed"
((skipped > 0)) && summary+=", $skipped skipped"
echo "$summary"
((failed == 0))
