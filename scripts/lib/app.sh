# shellcheck shell=bash
# Helpers that run an `atomicseats` process on a private database for the scripted checks
# (scripts/fuzz, scripts/faults). Sourced after scripts/lib/services.sh.

free_port() { "$(python_bin)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A fresh, empty database.
fresh_database() { # name
    PGOPTIONS=--client-min-messages=warning psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$1\"" >/dev/null
}

# Drops a database (connections included).
drop_database() { # name
    PGOPTIONS=--client-min-messages=warning psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
}

# The environment of a scripted app: its database, port, secrets; memory queue, log mail.
app_env() { # database port
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$1"
    export PORT="$2"
    export ACCESS_TOKEN_SECRET="scripted-access-secret-0123456789abcdef"
    export REFRESH_TOKEN_SECRET="scripted-refresh-secret-0123456789abcdef"
    export ATOMICSEATS__REDIS__KEY_PREFIX="scripted-$2:"
    export ATOMICSEATS__AUTH__BCRYPT_COST=4
    export ATOMICSEATS__LOG__LEVEL="${ATOMICSEATS__LOG__LEVEL:-warn}"
}

wait_ready() { # port [seconds]
    local i
    for ((i = 0; i < ${2:-60} * 10; i++)); do
        if curl -fs "http://127.0.0.1:$1/ready" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    log "atomicseats on port $1 did not become ready"
    return 1
}

# POST JSON, print the response body.
post_json() { # url json [token]
    curl -s -X POST "$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"
}

json_field() { # expression on `d` (the parsed JSON from stdin)
    "$(python_bin)" -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

# Registers a guest, or creates a host or admin through the CLI (an operator vouches for the
# address: a self-registered host must confirm it by email before publishing events), and
# prints an access token.
user_token() { # base_url role name
    local bin="${ATOMICSEATS_BIN:-target/debug/atomicseats}"
    if [ "$2" != guest ]; then
        ATOMICSEATS_NEW_USER_PASSWORD="scripted password" "$bin" users create \
            --username "$3" --email "$3@example.com" --role "$2" >/dev/null
    else
        post_json "$1/api/user/register" \
            "{\"username\":\"$3\",\"name\":\"$3\",\"email\":\"$3@example.com\",\"password\":\"scripted password\",\"role\":\"$2\"}" >/dev/null
    fi
    post_json "$1/api/user/login" "{\"email\":\"$3@example.com\",\"password\":\"scripted password\"}" |
        json_field 'd["data"]["accessToken"]'
}
