#!/usr/bin/env bash
# Installs what the browser end-to-end tests (tests/test_browser.py) need: Debian's chromium and
# chromedriver, and selenium. Browser downloads do not work here, so nothing else is fetched.
# Usage: bash .ci/install-browser.sh   (as root; safe to run again)
set -euo pipefail

# fonts-noto-cjk: without a Chinese font the screenshots show boxes instead of text.
PACKAGES=(chromium chromium-driver fonts-noto-cjk)
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
python -m pip install -q "selenium>=4.20"

chromium --version
chromedriver --version
