# Shared by the scripts that check a live server (schemathesis.sh, sslyze.sh): a Python venv
# with one pinned package, the debug binary, and a server on a fresh data directory that is
# always stopped. Source it after setting `script` (a name for messages), `binary` (the server)
# and `work` (a temporary directory, removed at exit).

# Creates or reuses VENV with PACKAGE==VERSION installed.
pinned_venv() {
    local venv=$1 package=$2 version=$3
    if [[ $("$venv/bin/pip" show "$package" 2>/dev/null | grep '^Version:') != "Version: $version" ]]; then
        echo "== installing $package $version in $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
    fi
}

# Builds the debug server, unless NO_BUILD (the value of the variable named by $2) is 1.
debug_binary() {
    if [[ $1 != 1 ]]; then
        echo "== building the server (debug)"
        cargo build --quiet -p rampart --bin rampart
    elif [[ ! -x $binary ]]; then
        echo "$script: no $binary to test ($2=1)" >&2
        exit 1
    fi
}

server_pid=

alive() {
    local state
    state=$(grep '^State:' "/proc/$1/status" 2>/dev/null) || return 1
    [[ $state != *zombie* ]]
}

# SIGTERM, then SIGKILL after 15 s; removes the work directory. Idempotent.
stop_server() {
    if [[ -n $server_pid ]]; then
        local pid=$server_pid
        server_pid=
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "$script: server still running 15 s after SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_server EXIT

# Makes the run's keys with the CLI before the first start (a start prints no key): sets
# `api_key` (the default account's key with every account scope) and `operator_key` (an
# operator's key with every server-wide scope: metrics, connectors, bans, accounts).
make_keys() {
    local cli=(env -u RAMPART_CONFIG -u RAMPART_DATA_DIR -u RAMPART_LISTEN "$@"
        "$binary" --data-dir "$work/data" apikey create)
    api_key=$("${cli[@]}" --name "$script" --scopes '*' 2>/dev/null)
    operator_key=$("${cli[@]}" --operator --name "$script operator" --scopes '*' 2>/dev/null)
    if [[ $api_key != rk_* || $operator_key != rk_* ]]; then
        echo "$script: rampart apikey create made no key" >&2
        exit 1
    fi
}

# Starts the server on "$work/data", listening on a free loopback port, with only the given
# NAME=VALUE settings (no configuration file or RAMPART_* variable from the caller). Sets
# `server_pid`, `port` (from the "listening on" line), `api_key` and `operator_key` (made by
# make_keys before the start).
start_server() {
    local log="$work/server.log"
    make_keys "$@"
    env -u RAMPART_CONFIG -u RAMPART_DATA_DIR -u RAMPART_LISTEN "$@" \
        "$binary" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 600); do
        if ! alive "$server_pid"; then
            echo "$script: the server exited during start-up; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        port=$(grep -m1 -oE 'listening on https://127\.0\.0\.1:[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
        [[ -n $port ]] && break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        echo "$script: server not ready (no listening line) within 60 s; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "== server pid $server_pid on https://localhost:$port"
}
