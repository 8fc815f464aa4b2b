#!/usr/bin/env bash
# Install what the web chat page's browser test needs (plugins/recai-serve/tests/test_page_browser.py):
# Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver), with
# apt-get, only when one is missing. Nothing is downloaded at test time: selenium drives these two
# binaries, never a browser of its own. Idempotent and quiet; needs root (or sudo) the first time.
# Exit status 0 when both binaries are there afterwards, 1 otherwise (with one line saying why).
set -euo pipefail

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }
if have; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: no apt-get here; install chromium and its chromedriver as /usr/bin/chromium and /usr/bin/chromedriver" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "browser: installing chromium needs root (or password-less sudo); run: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
echo "browser: installing Debian's chromium and chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# the package lists may be stale or absent on a fresh image: update once, then install
if ! { "${as_root[@]}" apt-get update -qq &&
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  echo "browser: apt-get could not install chromium and chromium-driver (above: its last lines)" >&2
  exit 1
fi
if ! have; then
  echo "browser: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is missing" >&2
  exit 1
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)" >&2
