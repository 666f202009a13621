#!/usr/bin/env bash
# Make this checkout runnable: system packages (when root on Debian), uv, and the Python
# environment in .venv from uv.lock. Safe to run again; fast when nothing is missing.
# Progress goes to stderr. Used by every `make` target; CI runs it through `make test`.
#
# In CI (CI=true) a uv.lock that no longer matches pyproject.toml is an error; elsewhere the
# lock is updated (`uv sync`) with a warning, and the new uv.lock must be committed.
# PostgreSQL + PostGIS is not handled here: backend/db/provision.py does that.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# --- system packages ----------------------------------------------------------------------
# Debian packages the project needs at run or test time. Append to this list (one package per
# line, with a comment saying which feature needs it), e.g. Chromium for browser tests or the
# Pango/Cairo libraries for WeasyPrint. PostGIS is not listed: provision.py installs the build
# matching the running PostgreSQL server.
SYSTEM_PACKAGES=(
    libpango-1.0-0     # WeasyPrint (PDF documents)
    libpangoft2-1.0-0  # WeasyPrint
    libharfbuzz-subset0  # WeasyPrint font subsetting
    fonts-dejavu-core  # a font with Cyrillic for documents
    chromium           # browser tests: Playwright drives /usr/bin/chromium (no browser download)
)

install_system_packages() {
    ((${#SYSTEM_PACKAGES[@]} > 0)) || return 0
    local missing=() pkg
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not Debian: make sure these (or your system's equivalents) are installed: ${SYSTEM_PACKAGES[*]}"
        return 0
    fi
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} > 0)) || return 0
    if [[ ! -f /etc/debian_version || $(id -u) -ne 0 ]]; then
        log "missing system packages: ${missing[*]}"
        log "install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
        return 0
    fi
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -o DPkg::Lock::Timeout=300 update >&2 \
        || log "apt-get update failed; trying the install with the package lists there are"
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2 \
        || die "could not install: ${missing[*]}"
}

# --- uv -----------------------------------------------------------------------------------
# Sets UV to a command that runs uv (an array: "uv", or "python3 -m uv" after a pip install
# into a directory that is not on PATH).
UV=()
find_uv() {
    if command -v uv >/dev/null 2>&1; then
        UV=(uv)
    elif command -v python3 >/dev/null 2>&1 && python3 -m uv --version >/dev/null 2>&1; then
        UV=(python3 -m uv)
    else
        return 1
    fi
}

ensure_uv() {
    find_uv && return 0
    log "uv not found; installing it with pip"
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3.11+ first"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        printf '%s\n' \
            "bootstrap: error: uv is not installed and python3 has no pip to install it with." \
            "  Install uv (https://docs.astral.sh/uv/getting-started/installation/), e.g.:" \
            "    Debian/Ubuntu: sudo apt-get install python3-pip && python3 -m pip install --user uv" \
            "    or: pipx install uv" \
            "  then run this again." >&2
        exit 1
    fi
    python3 -m pip install --quiet uv >&2 \
        || python3 -m pip install --quiet --user uv >&2 \
        || python3 -m pip install --quiet --user --break-system-packages uv >&2 \
        || die "pip could not install uv; install it yourself (e.g. pipx install uv)"
    find_uv || die "uv was installed but cannot be run; add ~/.local/bin to PATH"
}

# --- Python environment -------------------------------------------------------------------
sync_python_env() {
    local check_output
    if check_output=$("${UV[@]}" lock --check 2>&1); then
        log "uv sync --frozen"
        "${UV[@]}" sync --frozen >&2
    elif grep -qi 'needs to be updated' <<<"$check_output"; then
        if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
            printf '%s\n' "$check_output" >&2
            die "uv.lock is out of date with pyproject.toml. Run \`uv lock\` and commit uv.lock."
        fi
        log "warning: uv.lock is out of date with pyproject.toml; updating it (commit uv.lock)"
        "${UV[@]}" sync >&2
    else
        # The check itself failed (offline, say): the lock may still be fine, so install from it.
        printf '%s\n' "$check_output" >&2
        log "could not check uv.lock; installing from it as it is"
        "${UV[@]}" sync --frozen >&2
    fi
}

main() {
    install_system_packages
    ensure_uv
    sync_python_env
    log "ready ($("${UV[@]}" run --frozen python --version 2>&1))"
}

main "$@"
