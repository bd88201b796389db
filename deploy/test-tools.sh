#!/usr/bin/env bash
# Outside tools the test suite drives:
#   kcat   an independent Kafka client, from Debian's packages when run as root: the tests check
#          that operators' standard tools reach the broker with `deploy/local-stack.sh
#          client-config` (and nothing else does).
#   helm   renders the chart in deploy/helm (go install from the Go module proxy, into
#          .work/tools/bin; about 4 minutes on 2 cores the first time, then from Go's cache),
#          with the Go installed if it is 1.21 or later, else a Go toolchain the script fetches
#          from the Go module proxy.
#   KEDA's CRDs (ScaledObject, TriggerAuthentication), to validate the chart's KEDA objects
#          against their published schema (from KEDA's Go module, into .work/tools/keda).
#   axe-core  Deque's accessibility engine (its npm registry tarball, into .work/tools/axe; no npm
#          needed): the portal's browser tests
#          run it in each page and fail on serious or critical violations.
#   chromium, chromium-driver  Debian's headless browser and its WebDriver, which the portal's
#          browser tests drive with Selenium (tests/support/portal.py).
# Elsewhere it says what is missing; the tests that need it then skip (fail under CI=true).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.work/tools"
HELM_VERSION=v3.22.0
KEDA_VERSION=v2.21.0

# The Go toolchain the tools need, from the Go module proxy (the toolchains Go itself fetches,
# GOTOOLCHAIN): used when no Go is installed, or one too old to fetch a newer toolchain by
# itself (Debian 12's golang-go is 1.19; helm and KEDA need 1.26).
GO_TOOLCHAIN=v0.0.1-go1.26.0
go_usable() {  # a go that runs, and is 1.21 or later (it fetches the toolchain a module asks for)
  local version
  version="$("$1" env GOVERSION 2>/dev/null)" || return 1
  version="${version#go}"
  [ "${version%%.*}" -gt 1 ] || [ "$(echo "$version" | cut -d. -f2)" -ge 21 ]
}
fetch_go() {
  local arch
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) return 1 ;; esac
  local name="golang.org/toolchain@$GO_TOOLCHAIN.linux-$arch"
  if [ ! -x "$TOOLS/$name/bin/go" ]; then
    echo "[test-tools] fetching the Go toolchain ${GO_TOOLCHAIN#*-} from the Go module proxy" >&2
    python3 - "$TOOLS" "https://proxy.golang.org/golang.org/toolchain/@v/$GO_TOOLCHAIN.linux-$arch.zip" <<'PY' || return 1
import io, os, stat, sys, urllib.request, zipfile
tools, url = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url, timeout=300) as answer:
    archive = zipfile.ZipFile(io.BytesIO(answer.read()))
for member in archive.infolist():
    path = archive.extract(member, tools)
    mode = member.external_attr >> 16
    if mode & stat.S_IXUSR:
        os.chmod(path, mode & 0o777)
PY
    # The go command sets these itself on the toolchains it fetches; a zip may carry no modes.
    chmod -R a+x "$TOOLS/$name/bin" "$TOOLS/$name/pkg/tool"
  fi
  echo "$TOOLS/$name/bin/go"
}

go_tools() {
  local go
  go="$(command -v go || true)"
  if [ -z "$go" ] || ! go_usable "$go"; then
    go="$(fetch_go)" || { echo "[test-tools] no usable Go toolchain: helm and KEDA's CRDs not installed" >&2; return 0; }
  fi
  mkdir -p "$TOOLS/bin" "$TOOLS/keda"
  if [ ! -x "$TOOLS/bin/helm" ] || ! "$TOOLS/bin/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
    echo "[test-tools] building helm $HELM_VERSION (go install)" >&2
    (cd /tmp && GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod "$go" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") \
      || { echo "[test-tools] could not build helm" >&2; exit 1; }
  fi
  if [ ! -s "$TOOLS/keda/$KEDA_VERSION/keda.sh_scaledobjects.yaml" ]; then
    local dir
    dir="$(cd /tmp && "$go" mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
      || { echo "[test-tools] could not fetch KEDA $KEDA_VERSION" >&2; exit 1; }
    mkdir -p "$TOOLS/keda/$KEDA_VERSION"
    cp "$dir/config/crd/bases/keda.sh_scaledobjects.yaml" \
      "$dir/config/crd/bases/keda.sh_triggerauthentications.yaml" "$TOOLS/keda/$KEDA_VERSION/"
  fi
}
go_tools

AXE_VERSION=4.14.1
axe_core() {
  [ -s "$TOOLS/axe/$AXE_VERSION/axe.min.js" ] && return 0
  local work; work="$(mktemp -d)"
  # The package's tarball from the npm registry (what `npm pack` fetches; no npm needed).
  (cd "$work" && python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "https://registry.npmjs.org/axe-core/-/axe-core-$AXE_VERSION.tgz" "axe-core-$AXE_VERSION.tgz" \
    && tar xzf "axe-core-$AXE_VERSION.tgz") \
    || { echo "[test-tools] could not fetch axe-core $AXE_VERSION" >&2; rm -rf "$work"; exit 1; }
  mkdir -p "$TOOLS/axe/$AXE_VERSION"
  cp "$work/package/axe.min.js" "$work/package/LICENSE" "$TOOLS/axe/$AXE_VERSION/"
  rm -rf "$work"
}
axe_core

# Debian package -> the command it provides.
declare -A PACKAGES=([kcat]=kcat [chromium]=chromium [chromium-driver]=chromedriver)
missing=()
for package in "${!PACKAGES[@]}"; do
  command -v "${PACKAGES[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "[test-tools] installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || { echo "[test-tools] could not install: ${missing[*]}" >&2; exit 1; }
else
  echo "[test-tools] not installed (install them, or run as root): ${missing[*]}" >&2
fi
