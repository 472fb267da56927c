#!/usr/bin/env bash
# Idempotent install of the browser the UI test drives: Debian's chromium and its matching
# chromedriver (/usr/bin/chromium, /usr/bin/chromedriver), from the distribution's apt packages.
#
# Both come from the same Debian source package, so the driver always speaks to this exact browser
# version; Selenium is pointed at /usr/bin/chromedriver and never downloads a driver or a browser.
#
# A no-op that takes milliseconds once both binaries exist. Installing needs root (CI runs as
# root); without root and without the browser it says what to run and exits 1, so `make test`
# stops with a clear message rather than a failing browser test.
#
# Environment: BROWSER_INSTALL=skip leaves the browser out (tests/test_ui_browser.py then fails
# with a message naming this script).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

say() { echo "install_browser: $*" >&2; }

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    exit 0
fi
if [ "${BROWSER_INSTALL:-}" = skip ]; then
    say "BROWSER_INSTALL=skip: not installing ${PACKAGES[*]}; the browser test will fail without them"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "ERROR: $CHROMIUM or $CHROMEDRIVER is missing and this machine has no apt-get;"
    say "install Chromium and a chromedriver of the same version at those paths"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    say "ERROR: $CHROMIUM or $CHROMEDRIVER is missing and installing them needs root. Run:"
    say "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}"
    say "(or set BROWSER_INSTALL=skip to run the other tests)"
    exit 1
fi

started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Two `make test` started at once must not run apt together (apt's own lock fails fast instead
# of waiting).
exec 8>/tmp/coordinator-install-browser.lock
command -v flock >/dev/null 2>&1 && flock 8
if ! { [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; }; then
    say "installing ${PACKAGES[*]} with apt-get (about a minute, once per machine)"
    apt-get update -qq || {
        say "ERROR: apt-get update failed (no access to the Debian mirror?)"
        exit 1
    }
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || {
        say "ERROR: apt-get install ${PACKAGES[*]} failed"
        exit 1
    }
fi
for binary in "$CHROMIUM" "$CHROMEDRIVER"; do
    [ -x "$binary" ] || {
        say "ERROR: apt-get finished but $binary is missing"
        exit 1
    }
done
say "ready in $(($(date +%s) - started)) s: $("$CHROMIUM" --version 2>/dev/null | head -n1), $("$CHROMEDRIVER" --version | cut -d' ' -f1-2)"
