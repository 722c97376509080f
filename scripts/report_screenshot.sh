#!/usr/bin/env bash
# A screenshot of a run's report in a headless browser, to read it as a user sees it:
#   bash scripts/report_screenshot.sh runs/quickstart/report.html runs/quickstart/report.png [HEIGHT]
# Needs Chromium (Debian: apt-get install chromium); tests/test_report_page.py uses it where it is installed.
set -euo pipefail
report=$(readlink -f "$1"); out=$2; height=${3:-4000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then echo "no headless browser: apt-get install chromium" >&2; exit 3; fi
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,"$height" \
    --screenshot="$(readlink -f "$(dirname "$out")")/$(basename "$out")" "file://$report" >/dev/null 2>&1
test -s "$out" && echo "$out"
