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

# shellcheck source=scripts/apt_packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_packages.sh"
apt_packages_missing "$CHROMIUM $CHROMEDRIVER" || exit 0
apt_packages_install install_browser BROWSER_INSTALL "$CHROMIUM $CHROMEDRIVER" "${PACKAGES[@]}"
apt_packages_missing "$CHROMIUM $CHROMEDRIVER" && exit 0  # BROWSER_INSTALL=skip: the browser test fails, naming this script
echo "install_browser: ready: $("$CHROMIUM" --version 2>/dev/null | head -n1), $("$CHROMEDRIVER" --version | cut -d' ' -f1-2)" >&2
