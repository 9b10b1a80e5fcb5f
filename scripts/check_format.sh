#!/usr/bin/env bash
# The format check (ctest `format_check`, so the test command): every C++ file of the project is
# as clang-format (Debian 12's, 14) writes it with the repository's .clang-format. Prints the
# files that differ and how to fix them. `check_format.sh --fix` rewrites them in place.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null ||
  { echo "format: clang-format is not installed (scripts/deps.sh installs it)" >&2; exit 1; }

files=$(find core stores backends daemon tests bench -type f \( -name '*.h' -o -name '*.cc' \) | sort)
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i $files
  exit 0
fi
# One clang-format run over every file; its diagnostics name each file that differs.
if ! out=$(clang-format --dry-run --Werror $files 2>&1); then
  bad=$(grep -oE '^[^:]+\.(h|cc):[0-9]+:[0-9]+: error' <<<"$out" | cut -d: -f1 | sort -u)
  printf 'format: %s differs from clang-format\n' $bad >&2
  echo "format: $(wc -w <<<"$bad") file(s); fix with: scripts/check_format.sh --fix" >&2
  exit 1
fi
echo "format: $(wc -w <<<"$files") files as clang-format writes them"
