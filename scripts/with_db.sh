#!/usr/bin/env bash
# Run commands against a provisioned PostgreSQL + PostGIS database.
#
#   scripts/with_db.sh [--app-env] DBNAME VAR -- STEP [STEP ...]
#
# 1. Runs `python -m backend.db.provision DBNAME` (through uv), which finds or sets up a server
#    (FIELDCRM_DATABASE_URL's, the local one, or Docker) and creates DBNAME with its extensions.
# 2. Exports VAR=<SQLAlchemy URL of DBNAME>, e.g.
#    FIELDCRM_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/fieldcrm_test
# 3. With --app-env, also exports what the app needs to start: FIELDCRM_SECRET_KEY (kept as it
#    is when set, else read from var/secret_key, which is generated once with mode 600) and
#    FIELDCRM_ENV (default: development).
# 4. Runs each STEP, a shell command line, in order with `bash -c`; the first that fails stops
#    the run with its exit status (so pytest's 5, "no tests collected", fails too). The last
#    step replaces this script, so signals (Ctrl-C on a server) and its exit status pass through.
#
# UV may name the uv command (default: uv when on PATH, else "python3 -m uv").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'with_db: %s\n' "$*" >&2; }
die() { printf 'with_db: error: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: scripts/with_db.sh [--app-env] DBNAME VAR -- STEP [STEP ...]"; }

app_env=false
if [[ ${1:-} == --app-env ]]; then
    app_env=true
    shift
fi
(($# >= 4)) || usage
db=$1
var=$2
[[ $3 == -- ]] || usage
shift 3
[[ $var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "not a variable name: $var"

if [[ -n ${UV:-} ]]; then
    read -r -a uv_cmd <<<"$UV"
elif command -v uv >/dev/null 2>&1; then
    uv_cmd=(uv)
else
    uv_cmd=(python3 -m uv) # where scripts/bootstrap.sh's pip install puts it
fi

# --- the database -------------------------------------------------------------------------
provision_output=$("${uv_cmd[@]}" run python -m backend.db.provision "$db") \
    || die "could not provision database $db (see above)"
url=""
while IFS= read -r line; do
    if [[ $line == "$db="* ]]; then
        url=${line#"$db="}
    fi
done <<<"$provision_output"
[[ -n $url ]] || die "backend.db.provision printed no URL for $db"
export "$var=$url"
log "$var=$(sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$url")"  # password masked

# --- the app's settings -------------------------------------------------------------------
ensure_secret_key() {
    if [[ -n ${FIELDCRM_SECRET_KEY:-} ]]; then
        return 0
    fi
    local file=var/secret_key key
    if [[ ! -s $file ]]; then
        mkdir -p var
        key=$(head -c 48 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_')
        (umask 077 && printf '%s\n' "$key" >"$file.tmp.$$") && mv "$file.tmp.$$" "$file"
        log "generated a secret key in $file"
    fi
    chmod 600 "$file"
    FIELDCRM_SECRET_KEY=$(tr -d '[:space:]' <"$file")
    ((${#FIELDCRM_SECRET_KEY} >= 32)) || die "$file holds fewer than 32 characters: delete it"
    export FIELDCRM_SECRET_KEY
}

if $app_env; then
    ensure_secret_key
    export FIELDCRM_ENV=${FIELDCRM_ENV:-development}
fi

# --- the steps ----------------------------------------------------------------------------
while (($# > 1)); do
    log "==> $1"
    bash -c "$1" || {
        status=$?
        log "failed (exit status $status): $1"
        exit "$status"
    }
    shift
done
log "==> $1"
exec bash -c "$1"
