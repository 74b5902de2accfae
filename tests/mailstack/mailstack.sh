#!/usr/bin/env bash
# mailstack.sh — real Dovecot (IMAP, IMAPS, LMTP, SASL) + real Postfix (SMTP,
# submission) on 127.0.0.1, one private instance per directory, for ticketd's
# integration tests.  See tests/mailstack/README.md.
#
#   mailstack.sh install                  install dovecot/postfix if missing (root)
#   mailstack.sh start DIR                start a stack in the (empty) dir DIR
#   mailstack.sh stop DIR                 stop everything started for DIR
#   mailstack.sh stop-dovecot DIR | start-dovecot DIR   restart Dovecot, same ports
#   mailstack.sh stop-postfix DIR | start-postfix DIR   restart Postfix, same ports
#   mailstack.sh vacation DIR USER [SUBJECT [SECONDS]]   Sieve vacation for USER@example.test
#
# After `start`, DIR/env holds KEY=VALUE lines (ports, CA files, ...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3   # no pyenv shim start-up cost
else PY=python3; fi
PKGS=(dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve postfix)
LOCKDIR=/run/lock
[ -d "$LOCKDIR" ] || LOCKDIR=/tmp
INSTALL_LOCK="$LOCKDIR/ticketd-mailstack-install.lock"
PFCONF_LOCK="$LOCKDIR/ticketd-mailstack-postfix-main.lock"
DEFAULT_PF_MAIN=/etc/postfix/main.cf

die() { echo "mailstack: $*" >&2; exit 1; }
log() { [ -n "${MAILSTACK_VERBOSE:-}" ] && echo "mailstack: $(date +%T.%N | cut -c1-12) $*" >&2 || true; }

# ---------------------------------------------------------------- install ---

installed() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
    command -v dovecot >/dev/null && command -v postfix >/dev/null &&
        command -v sievec >/dev/null || return 1
}

ensure_users() {
    getent group vmail >/dev/null || groupadd --system vmail
    id -u vmail >/dev/null 2>&1 ||
        useradd --system --gid vmail --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin vmail
    # The packages create these; our configs rely on them.
    id -u dovenull >/dev/null 2>&1 || die "user dovenull missing (dovecot-core broken?)"
    id -u dovecot  >/dev/null 2>&1 || die "user dovecot missing (dovecot-core broken?)"
    id -u postfix  >/dev/null 2>&1 || die "user postfix missing (postfix broken?)"
    getent group postdrop >/dev/null || die "group postdrop missing (postfix broken?)"
}

# The default Postfix instance must have a main.cf: `postfix -c DIR` looks up
# alternate_config_directories there.  With "No configuration" there is none.
ensure_default_main_cf() {
    if [ ! -e "$DEFAULT_PF_MAIN" ]; then
        mkdir -p /etc/postfix
        cat > "$DEFAULT_PF_MAIN" <<'EOF'
# Minimal main.cf written by ticketd tests/mailstack/mailstack.sh.
# The default instance is not used; private test instances under temporary
# directories are registered in alternate_config_directories below.
compatibility_level = 3.6
inet_interfaces = loopback-only
mydestination =
alternate_config_directories =
EOF
    fi
}

# Stop system-wide daemons the packages may have started (we never use them;
# they would only hold ports 25/143/993 and confuse `ps`).
stop_system_services() {
    local pid
    if [ -r /run/dovecot/master.pid ]; then
        pid="$(cat /run/dovecot/master.pid 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            (command -v systemctl >/dev/null && systemctl stop dovecot.service dovecot.socket) >/dev/null 2>&1 ||
                doveadm stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
        fi
    fi
    if [ -r /var/spool/postfix/pid/master.pid ]; then
        pid="$(tr -d ' ' 2>/dev/null < /var/spool/postfix/pid/master.pid || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            (command -v systemctl >/dev/null && systemctl stop postfix.service) >/dev/null 2>&1 ||
                postfix stop >/dev/null 2>&1 || true
        fi
    fi
}

do_install() {
    [ "$(id -u)" = 0 ] || die "install must run as root"
    exec 8>"$INSTALL_LOCK"
    flock 8
    if ! installed; then
        local logf policy_added=""
        logf="$(mktemp /tmp/mailstack-install.XXXXXX.log)"
        echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
        # Keep maintainer scripts from starting system-wide daemons.
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_added=1
        fi
        local apt=(apt-get install -y -q --no-install-recommends
                   -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
                   "${PKGS[@]}")
        local ok=""
        if DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$logf" 2>&1; then
            ok=1
        else
            # Stale or missing package lists: update once, then retry.
            DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$logf" 2>&1 || true
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$logf" 2>&1 && ok=1
        fi
        [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
        if [ -z "$ok" ] || ! installed; then
            tail -n 30 "$logf" >&2
            die "installing ${PKGS[*]} failed (log: $logf)"
        fi
        rm -f "$logf"
    fi
    ensure_users
    ensure_default_main_cf
    stop_system_services
    flock -u 8
    exec 8>&-
}

# ------------------------------------------------------------------ utils ---

abspath() { (cd "$1" && pwd -P); }

envget() { # envget DIR KEY
    sed -n "s/^$2=//p" "$1/env" | tail -n 1
}

# pid_alive PID: running and not a zombie (PID 1 in containers may reap
# orphans late, and kill -0 succeeds on zombies).
pid_alive() {
    local line st
    [ -n "${1:-}" ] || return 1
    { IFS= read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
    st="${line##*) }"
    [ "${st%% *}" != Z ]
}

# cmdline_has PID STRING: the process's command line contains STRING
cmdline_has() {
    local cl
    cl="$(tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline")" || return 1
    [[ "$cl" == *"$2"* ]]
}

# free_ports N: N distinct currently-free TCP ports on 127.0.0.1
free_ports() {
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# probe PORT [PREFIX]: connect to 127.0.0.1:PORT (bash /dev/tcp, no
# python start-up cost); with PREFIX, also require a greeting starting so.
probe() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        [ -z "${2:-}" ] && exit 0
        IFS= read -r -t 3 line <&3 || exit 1
        [[ "$line" == "$2"* ]]
    ) 2>/dev/null
}

# wait_port PORT TIMEOUT_SECS [PREFIX] -> 0 once probe succeeds
wait_port() {
    local end=$((SECONDS + $2))
    until probe "$1" "${3:-}"; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.05
    done
}
wait_banner() { wait_port "$1" "$3" "$2"; }

# wait_pid_gone PID TIMEOUT_SECS
wait_pid_gone() {
    local pid="$1" n=$(( $2 * 20 ))
    while pid_alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
    ! pid_alive "$pid"
}

# session_pids SID EXE_PREFIX: live processes of session SID whose executable
# lies under EXE_PREFIX (the daemons' children after their master is gone).
session_pids() {
    local f line rest pid exe
    for f in /proc/[0-9]*/stat; do
        { IFS= read -r line < "$f"; } 2>/dev/null || continue
        rest="${line##*) }"
        # rest: state ppid pgrp session ...
        set -- $rest
        [ "$1" != Z ] && [ "$4" = "$SID_WANTED" ] || continue
        pid="${f#/proc/}"; pid="${pid%/stat}"
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
        [[ "$exe" == "$EXE_PREFIX"* ]] && echo "$pid"
    done
}

# reap_session SID EXE_PREFIX: TERM, then KILL, what is left of a daemon's
# session.  Dovecot's children outlive their master for up to ~30 s (an imap
# process in IDLE says BYE only after 10 s; auth keeps serving Postfix's open
# SASL connection), which would not look like a stopped server to a test.
reap_session() {
    local SID_WANTED="$1" EXE_PREFIX="$2" pids n
    pids="$(session_pids)"
    [ -z "$pids" ] && return 0
    kill -TERM $pids 2>/dev/null || true
    for n in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.1
        pids="$(session_pids)"
        [ -z "$pids" ] && return 0
    done
    kill -KILL $pids 2>/dev/null || true
}

tail_log() { # tail_log TITLE FILE
    if [ -s "$2" ]; then
        echo "---- $1 ($2), last lines:" >&2
        tail -n "${3:-25}" "$2" >&2
    fi
}

# ------------------------------------------------------------------ certs ---

make_certs() {
    local d="$1" t="$1/tls"
    mkdir -p "$t"
    chmod 700 "$t"
    (
        cd "$t"
        # Test CA
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout ca.key -out "$d/ca.pem" -days 3650 -sha256 \
            -subj "/O=ticketd mailstack/CN=ticketd mailstack test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        # Unrelated CA (for "wrong CA -> refused" tests); its key is discarded.
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout wrong-ca.key -out "$d/wrong-ca.pem" -days 3650 -sha256 \
            -subj "/O=ticketd mailstack/CN=ticketd mailstack UNRELATED CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        rm -f wrong-ca.key
        # Server certificate for localhost / 127.0.0.1
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        cat > server.ext <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
        openssl x509 -req -in server.csr -CA "$d/ca.pem" -CAkey ca.key \
            -CAcreateserial -CAserial ca.srl -out server.crt -days 825 -sha256 \
            -extfile server.ext 2>/dev/null
        cat server.crt "$d/ca.pem" > server-chain.pem
        rm -f server.csr server.ext ca.srl
        chmod 600 ca.key server.key
    ) || die "certificate generation failed"
    chmod 644 "$d/ca.pem" "$d/wrong-ca.pem"
}

# --------------------------------------------------------------- config ----

# render TEMPLATE OUT [TEMPLATE OUT ...]: replace @@KEY@@ with $MS_KEY
render() {
    "$PY" - "$@" <<'EOF'
import os, re, sys, time
args = sys.argv[1:]
for src, dst in zip(args[0::2], args[1::2]):
    text = open(src).read()
    def sub(m):
        k = m.group(1)
        if ("MS_" + k) not in os.environ:
            sys.exit(f"render: no value for @@{k}@@ in {src}")
        return os.environ["MS_" + k]
    open(dst, "w").write(re.sub(r"@@([A-Z0-9_]+)@@", sub, text))
    past = time.time() - 5     # see pf_register: Postfix waits on fresh files
    os.utime(dst, (past, past))
EOF
}

# Register / unregister DIR/postfix in alternate_config_directories of the
# default main.cf (under a lock; parallel stacks share that file).
# Postfix re-reads a main.cf whose mtime is less than a second old, in 0.3 s
# steps (it guards against half-written files), which made every postconf
# and `postfix start` after an edit take ~2 s: edited files get their mtime
# set a few seconds into the past.
pf_register() { # pf_register add|del PFDIR
    exec 7>"$PFCONF_LOCK"
    flock 7
    ensure_default_main_cf
    "$PY" - "$1" "$2" "$DEFAULT_PF_MAIN" <<'EOF'
import os, re, sys, time
op, d, path = sys.argv[1:4]
with open(path) as f:
    lines = f.read().splitlines()
key = "alternate_config_directories"
# find the parameter (with continuation lines) if present
start = end = None
for i, ln in enumerate(lines):
    if re.match(r"\s*" + key + r"\s*=", ln):
        start, end = i, i + 1
        while end < len(lines) and re.match(r"[ \t]+\S", lines[end]):
            end += 1
cur = []
if start is not None:
    val = " ".join(lines[start:end]).split("=", 1)[1]
    cur = [x for x in re.split(r"[\s,]+", val) if x]
# drop our own stale entries (temp dirs that no longer exist)
items = [x for x in cur if x != d and (os.path.isdir(x) or not x.endswith("/postfix"))]
if op == "add":
    items.append(d)
if items == cur:
    sys.exit(0)
new = [f"{key} = " + " ".join(items)]
lines = lines[:start] + new + lines[end:] if start is not None else lines + new
tmp = f"{path}.mailstack.{os.getpid()}"
with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
os.chmod(tmp, os.stat(path).st_mode & 0o7777)
past = time.time() - 5
os.utime(tmp, (past, past))
os.replace(tmp, path)
EOF
    flock -u 7
    exec 7>&-
}

write_configs() {
    local d="$1"
    export MS_DIR="$d" MS_BASE_DIR="$BASE_DIR" MS_QUEUE_DIR="$QUEUE_DIR" MS_MAIL_ROOT="$d/mail"
    export MS_IMAP_PORT="$IMAP_PORT" MS_IMAPS_PORT="$IMAPS_PORT" MS_LMTP_PORT="$LMTP_PORT"
    export MS_SMTP_PORT="$SMTP_PORT" MS_SUBMISSION_PORT="$SUBMISSION_PORT" MS_SMTPS_PORT="$SMTPS_PORT"
    export MS_AUTH_PORT="$AUTH_PORT" MS_INTROSPECT_PORT="$INTROSPECT_PORT"
    export MS_INSTANCE="$(basename "$RUN_DIR")"
    export MS_MAX_USERIP="${MAILSTACK_MAX_USERIP_CONNECTIONS:-200}"
    export MS_PROCESS_LIMIT="${MAILSTACK_PROCESS_LIMIT:-100}"
    export MS_CLIENT_LIMIT="$(( ${MAILSTACK_PROCESS_LIMIT:-100} > 500 ? ${MAILSTACK_PROCESS_LIMIT:-100} * 2 : 1000 ))"
    export MS_IDLE_NOTIFY="${MAILSTACK_IDLE_NOTIFY_INTERVAL:-2 mins}"
    export MS_DH_LINE=""
    [ -r /usr/share/dovecot/dh.pem ] && MS_DH_LINE="ssl_dh = </usr/share/dovecot/dh.pem"

    # Postfix: config in DIR/postfix, data beside it (postfix-script
    # complains about a queue or data dir inside the config directory), queue
    # in RUN_DIR (see do_start).
    mkdir -p "$d/dovecot/state" "$d/postfix" "$d/postfix-data" "$d/mail" "$BASE_DIR" "$QUEUE_DIR"
    ln -sfn "$RUN_DIR" "$d/run"
    render "$HERE/dovecot.conf.in" "$d/dovecot/dovecot.conf" \
           "$HERE/dovecot-oauth2.conf.ext.in" "$d/dovecot/oauth2.conf.ext" \
           "$HERE/postfix-main.cf.in" "$d/postfix/main.cf" \
           "$HERE/postfix-master.cf.in" "$d/postfix/master.cf"
    cp "$HERE/postfix-recipient-access" "$d/postfix/recipient_access"
    touch -d "@$(( $(date +%s) - 5 ))" "$d/postfix/recipient_access"
    echo good-token > "$d/oauth-tokens"
    chmod 644 "$d/oauth-tokens"

    chown vmail:vmail "$d/mail"
    chmod 750 "$d/mail"
    chown root:root "$d/postfix" "$QUEUE_DIR"
    chmod 755 "$d/postfix" "$QUEUE_DIR" "$BASE_DIR"
    chown postfix:postfix "$d/postfix-data"
    chmod 700 "$d/postfix-data"
}

write_env() {
    local d="$1"
    cat > "$d/env.tmp" <<EOF
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
LMTP_PORT=$LMTP_PORT
SMTP_PORT=$SMTP_PORT
SUBMISSION_PORT=$SUBMISSION_PORT
SMTPS_PORT=$SMTPS_PORT
INTROSPECT_PORT=$INTROSPECT_PORT
AUTH_PORT=$AUTH_PORT
HOST=127.0.0.1
TLS_SERVER_NAME=localhost
CA_FILE=$d/ca.pem
WRONG_CA_FILE=$d/wrong-ca.pem
MAIL_ROOT=$d/mail
DOVECOT_CONF=$d/dovecot/dovecot.conf
RUN_DIR=$RUN_DIR
DOVECOT_BASE_DIR=$BASE_DIR
DOVECOT_LOG=$d/dovecot/dovecot.log
POSTFIX_DIR=$d/postfix
POSTFIX_QUEUE_DIR=$QUEUE_DIR
POSTFIX_LOG=$d/postfix/maillog
MAIL_DOMAIN=example.test
PASSWORD=secret
OAUTH_TOKEN=good-token
OAUTH_TOKENS_FILE=$d/oauth-tokens
EOF
    mv "$d/env.tmp" "$d/env"
}

load_env() { # load_env DIR -> sets shell variables from DIR/env
    local d="$1"
    [ -r "$d/env" ] || die "$d/env missing: was '$0 start $d' run?"
    IMAP_PORT="$(envget "$d" IMAP_PORT)"
    IMAPS_PORT="$(envget "$d" IMAPS_PORT)"
    LMTP_PORT="$(envget "$d" LMTP_PORT)"
    SMTP_PORT="$(envget "$d" SMTP_PORT)"
    SUBMISSION_PORT="$(envget "$d" SUBMISSION_PORT)"
    SMTPS_PORT="$(envget "$d" SMTPS_PORT)"
    INTROSPECT_PORT="$(envget "$d" INTROSPECT_PORT)"
    AUTH_PORT="$(envget "$d" AUTH_PORT)"
    RUN_DIR="$(envget "$d" RUN_DIR)"
    BASE_DIR="$(envget "$d" DOVECOT_BASE_DIR)"
    QUEUE_DIR="$(envget "$d" POSTFIX_QUEUE_DIR)"
}

# --------------------------------------------------------------- daemons ---

start_introspect() {
    local d="$1"
    [ -n "$(introspect_pid "$d")" ] && return 0
    rm -f "$d/introspect.pid"
    setsid "$PY" "$HERE/introspect.py" --port "$INTROSPECT_PORT" \
        --tokens-file "$d/oauth-tokens" --pid-file "$d/introspect.pid" \
        </dev/null >>"$d/introspect.log" 2>&1 &
    local bg=$! n=100
    while [ ! -s "$d/introspect.pid" ] && [ "$n" -gt 0 ]; do
        sleep 0.05; n=$((n - 1))
        pid_alive "$bg" || break   # exited early (e.g. port taken)
    done
    if [ ! -s "$d/introspect.pid" ]; then
        tail_log "introspection server" "$d/introspect.log"
        return 1
    fi
}

introspect_pid() { # only a pid that really is DIR's introspection server
    local pid
    pid="$(cat "$1/introspect.pid" 2>/dev/null || true)"
    if pid_alive "$pid" && cmdline_has "$pid" "$1/oauth-tokens"; then echo "$pid"; fi
}

stop_introspect() {
    local d="$1" pid
    pid="$(introspect_pid "$d")"
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait_pid_gone "$pid" 5 || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$d/introspect.pid"
}

dovecot_pid() { # only a pid that really is DIR's dovecot master
    local b pid
    b="$(envget "$1" DOVECOT_BASE_DIR 2>/dev/null || true)"
    [ -n "$b" ] || return 0
    pid="$(cat "$b/master.pid" 2>/dev/null || true)"
    if pid_alive "$pid" && cmdline_has "$pid" "$1/dovecot/dovecot.conf"; then echo "$pid"; fi
}

start_dovecot() {
    local d="$1" conf="$1/dovecot/dovecot.conf" pid
    pid="$(dovecot_pid "$d")"
    [ -n "$pid" ] && return 0
    mkdir -p "$BASE_DIR"
    chmod 755 "$RUN_DIR" "$BASE_DIR"
    if ! dovecot -c "$conf" </dev/null >>"$d/dovecot/startup.log" 2>&1; then
        tail_log "dovecot startup" "$d/dovecot/startup.log"
        tail_log "dovecot log" "$d/dovecot/dovecot.log"
        return 1
    fi
    if ! wait_banner "$IMAP_PORT" "* OK" 15 || ! wait_port "$IMAPS_PORT" 5 ||
       ! wait_banner "$LMTP_PORT" "220" 5 || ! wait_port "$AUTH_PORT" 5; then
        echo "mailstack: dovecot did not come up on its ports" >&2
        tail_log "dovecot startup" "$d/dovecot/startup.log"
        tail_log "dovecot log" "$d/dovecot/dovecot.log"
        return 1
    fi
}

stop_dovecot() {
    local d="$1" pid
    pid="$(dovecot_pid "$d")"
    if [ -n "$pid" ]; then
        # TERM the master, then (once it no longer respawns anything) all its
        # children: the master alone takes ~1 s and lets clients (IDLE
        # sessions, Postfix's SASL connection) linger for up to ~30 s, which
        # is not what a test means by "Dovecot is down".  TERMing children
        # first races with the master respawning them and then waiting 6 s
        # for the new ones.  The log process misses the last lines.
        kill -TERM "$pid" 2>/dev/null || true
        sleep 0.05
        kill -TERM $(SID_WANTED="$pid" EXE_PREFIX=/usr/lib/dovecot/ session_pids) 2>/dev/null || true
        log "dovecot: TERM sent"
        if ! wait_pid_gone "$pid" 10; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 5 || true
        fi
        log "dovecot: master gone"
        # the master called setsid(): its session id is its pid
        reap_session "$pid" /usr/lib/dovecot/
    fi
}

postfix_pid() { # only a pid that really is DIR's postfix master
    local pid q
    q="$(envget "$1" POSTFIX_QUEUE_DIR 2>/dev/null || true)"
    [ -n "$q" ] || return 0
    pid="$(tr -d ' \n' 2>/dev/null < "$q/pid/master.pid" || true)"
    # the master runs with the queue directory as its cwd
    if pid_alive "$pid" && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$q" ]; then
        echo "$pid"
    fi
}

start_postfix() {
    local d="$1" pf="$1/postfix" pid
    pid="$(postfix_pid "$d")"
    [ -n "$pid" ] && return 0
    pf_register add "$pf"
    log "postfix start"
    if ! postfix -c "$pf" start </dev/null >>"$pf/startup.log" 2>&1; then
        tail_log "postfix startup" "$pf/startup.log"
        tail_log "postfix log" "$pf/maillog"
        postfix_diag "$pf"
        return 1
    fi
    log "postfix wait"
    if ! wait_banner "$SMTP_PORT" "220" 15 || ! wait_banner "$SUBMISSION_PORT" "220" 5 ||
       ! wait_port "$SMTPS_PORT" 5; then
        echo "mailstack: postfix did not come up on its ports" >&2
        tail_log "postfix startup" "$pf/startup.log"
        tail_log "postfix log" "$pf/maillog"
        return 1
    fi
}

# Postfix reports early fatal errors only to syslog (absent here) and to a
# terminal: show them by running `postfix check` on a pseudo-terminal.
postfix_diag() {
    command -v script >/dev/null || return 0
    echo "---- postfix -c $1 check (on a pty):" >&2
    script -qec "postfix -c '$1' check" /dev/null </dev/null 2>&1 | tail -n 5 >&2 || true
}

stop_postfix() {
    local d="$1" pf="$1/postfix" pid
    pid="$(postfix_pid "$d")"
    if [ -n "$pid" ]; then
        # Exactly what `postfix -c DIR stop` does (postfix-script: kill the
        # master.pid with SIGTERM), minus its 1-second polling loop.  Queued
        # mail stays in POSTFIX_QUEUE_DIR for the next start.
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_pid_gone "$pid" 10; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 5 || true
        fi
        reap_session "$pid" /usr/lib/postfix/
    fi
}

# ---------------------------------------------------------------- start ----

do_start() {
    local d
    [ $# -ge 1 ] || die "usage: $0 start DIR"
    [ "$(id -u)" = 0 ] || die "start must run as root (Dovecot/Postfix need it)"
    [ -d "$1" ] || mkdir -p "$1"
    d="$(abspath "$1")"
    case "$d" in
        *[[:space:]]*|*,*|*=*) die "DIR must not contain whitespace, ',' or '=' (Postfix/Dovecot config syntax): $d" ;;
    esac
    [ -e "$d/env" ] && die "$d already holds a stack (env exists); use a fresh dir"
    installed || do_install
    id -u vmail >/dev/null 2>&1 || ensure_users

    # Dovecot/Postfix children run as vmail/postfix/dovenull: DIR must be
    # traversable by them.
    chmod 755 "$d"
    if ! runuser -u vmail -- test -x "$d"; then
        die "$d is not reachable by user vmail (a parent directory is not world-traversable)"
    fi

    log "certs"
    make_certs "$d"

    local attempt ports
    for attempt in 1 2 3; do
        # shellcheck disable=SC2207
        ports=($(free_ports 8))
        IMAP_PORT=${ports[0]} IMAPS_PORT=${ports[1]} LMTP_PORT=${ports[2]}
        SMTP_PORT=${ports[3]} SUBMISSION_PORT=${ports[4]} AUTH_PORT=${ports[5]}
        INTROSPECT_PORT=${ports[6]} SMTPS_PORT=${ports[7]}
        # Unix sockets live in a short, world-traversable RUN_DIR (socket
        # paths are limited to 108 bytes and DIR may be long): Dovecot's
        # base_dir and Postfix's queue (the postfix command connects to
        # QUEUE/public/postlog by absolute path and fails silently if it is
        # too long).  DIR/run links to it.
        RUN_DIR="$(mktemp -d /tmp/ms-XXXXXX)"
        chmod 755 "$RUN_DIR"
        BASE_DIR="$RUN_DIR/dovecot"
        QUEUE_DIR="$RUN_DIR/postfix-queue"
        log "configs (attempt $attempt)"
        write_configs "$d"
        write_env "$d"
        if log "introspect" && start_introspect "$d" && log "dovecot" && start_dovecot "$d" &&
           log "postfix" && start_postfix "$d"; then
            log "stack up in $d (imap $IMAP_PORT, smtp $SMTP_PORT)"
            return 0
        fi
        # Retry with new ports only when a port was grabbed in between.
        local busy=""
        grep -qs "Address already in use" "$d/dovecot/dovecot.log" "$d/dovecot/startup.log" \
            "$d/postfix/maillog" "$d/postfix/startup.log" "$d/introspect.log" && busy=1
        do_stop "$d" >/dev/null 2>&1 || true
        if [ -z "$busy" ]; then
            break
        fi
        echo "mailstack: port collision, retrying with new ports" >&2
        for f in "$d/dovecot/dovecot.log" "$d/dovecot/startup.log" "$d/postfix/maillog" \
                 "$d/postfix/startup.log" "$d/introspect.log"; do
            [ -e "$f" ] && mv "$f" "$f.attempt$attempt"
        done
    done
    rm -f "$d/env"
    die "start failed in $d (see logs above)"
}

do_stop() {
    local d
    [ $# -ge 1 ] || die "usage: $0 stop DIR"
    [ -d "$1" ] || return 0
    d="$(abspath "$1")"
    [ -r "$d/env" ] || { stop_introspect "$d"; return 0; }
    load_env "$d"
    log "stop postfix"
    stop_postfix "$d"
    log "stop dovecot"
    stop_dovecot "$d"
    log "stop introspect"
    stop_introspect "$d"
    log "unregister"
    if [ -d "$d/postfix" ]; then
        pf_register del "$d/postfix" || true
    fi
    case "$RUN_DIR" in
        /tmp/ms-??????) rm -rf "$RUN_DIR"; rm -f "$d/run" ;;
    esac
}

with_env() { # with_env ACTION DIR
    local act="$1" d
    [ $# -ge 2 ] || die "usage: $0 $act DIR"
    d="$(abspath "$2")"
    load_env "$d"
    case "$act" in
        start-dovecot) start_introspect "$d" && start_dovecot "$d" || die "start-dovecot failed" ;;
        stop-dovecot)  stop_dovecot "$d" ;;
        start-postfix) start_postfix "$d" || die "start-postfix failed" ;;
        stop-postfix)  stop_postfix "$d" ;;
    esac
}

# --------------------------------------------------------------- vacation ---

# do_vacation DIR USER [SUBJECT [SECONDS]]: make a Sieve vacation rule the
# active script of USER@example.test (Pigeonhole runs it at LMTP delivery).
# Idempotent: rewrites the script, its compiled binary and the active link.
do_vacation() {
    [ $# -ge 2 ] && [ $# -le 4 ] || die "usage: $0 vacation DIR USER [SUBJECT [SECONDS]]"
    local d user subject="${3:-Out of office}" secs="${4:-0}"
    [ -d "$1" ] || die "vacation: no such directory: $1"
    d="$(abspath "$1")"
    [ -r "$d/env" ] || die "$d/env missing: was '$0 start $d' run?"
    user="${2%@example.test}"
    user="${user,,}"          # the userdb home is MAIL_ROOT/%Ld/%Ln (lower case)
    [[ "$user" =~ ^[a-z0-9][a-z0-9._+-]*$ ]] ||
        die "vacation: USER must be a local part or a local part @example.test: $2"
    [[ "$secs" =~ ^[0-9]+$ ]] || die "vacation: SECONDS must be a number: $secs"
    [[ "$subject" != *[$'\r\n']* ]] || die "vacation: SUBJECT must be one line"
    command -v sievec >/dev/null || do_install

    local root home sdir q out
    root="$(envget "$d" MAIL_ROOT)"
    [ -n "$root" ] && [ -d "$root" ] || die "vacation: MAIL_ROOT of $d missing"
    home="$root/example.test/$user"
    sdir="$home/sieve"
    # Same owner and mode as the directories Dovecot creates on delivery.
    install -d -o vmail -g vmail -m 700 "$root/example.test" "$home" "$sdir"
    q="${subject//\\/\\\\}"       # Sieve quoted-string: escape \ and "
    q="${q//\"/\\\"}"
    printf '# written by mailstack.sh vacation\nrequire ["vacation", "vacation-seconds"];\nvacation :seconds %s :subject "%s" "I am away until Monday.";\n' \
        "$secs" "$q" > "$sdir/.vacation.sieve.tmp"
    mv -f "$sdir/.vacation.sieve.tmp" "$sdir/vacation.sieve"
    ln -sfn sieve/vacation.sieve "$home/.dovecot.sieve.tmp"
    mv -fT "$home/.dovecot.sieve.tmp" "$home/.dovecot.sieve"
    # Compile now: errors show here instead of as a delivery without
    # vacation.  Delivery opens the script through the active link, so its
    # binary is ~/.dovecot.svbin, and the binary records that path; it must
    # also be newer than both script and link, or Pigeonhole recompiles it at
    # the next delivery.
    if ! out="$(sievec -c "$(envget "$d" DOVECOT_CONF)" "$home/.dovecot.sieve" \
                "$home/.dovecot.svbin.tmp" 2>&1 </dev/null)"; then
        rm -f "$home/.dovecot.svbin.tmp"
        echo "$out" >&2
        die "vacation: sievec failed for $sdir/vacation.sieve"
    fi
    mv -f "$home/.dovecot.svbin.tmp" "$home/.dovecot.svbin"
    chown -h vmail:vmail "$sdir/vacation.sieve" "$home/.dovecot.svbin" "$home/.dovecot.sieve"
    chmod 600 "$sdir/vacation.sieve" "$home/.dovecot.svbin"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    install) do_install ;;
    start) do_start "$@" ;;
    stop) do_stop "$@" ;;
    start-dovecot|stop-dovecot|start-postfix|stop-postfix) with_env "$cmd" "$@" ;;
    vacation) do_vacation "$@" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
