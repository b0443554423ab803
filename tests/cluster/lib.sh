# tests/cluster/lib.sh: what the cluster and loss tests share: network
# namespaces joined by veth pairs and bridges, with 10.77.0.0/16 addresses
# that exist only inside them (nothing they send can leave), processes
# started in them and ended by PID, and one clean-up for everything.
# Sourced, with $ek set to the echokit binary under test.

ns_prefix="ek$$"
tmp=$(mktemp -d)
pids=
namespaces=

cleanup() {
    # $pids holds only processes not yet waited for (reap takes them out):
    # a PID already reaped may be another process's by now.
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    pkill -P "$watchdog" 2>/dev/null || true
    kill "$watchdog" 2>/dev/null || true
    for n in $namespaces; do ip netns delete "$n" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: stopped by a signal (or the ${deadline} s deadline)"; exit 1' INT TERM

# A deadline of its own, under ctest's TIMEOUT: ctest ends a test that
# overruns with SIGKILL (CMake before 3.27), which leaves no chance to
# delete the namespaces. The watchdog's output goes nowhere, so that a
# sleep left behind cannot hold ctest's pipe open.
deadline=${EK_CLUSTER_DEADLINE:-180}
(exec >/dev/null 2>&1; sleep "$deadline" && kill -TERM $$) &
watchdog=$!

# Namespaces left by a run of these tests that was killed anyway: ek<PID>
# and a name, whose PID is gone.
for n in $(ip netns list 2>/dev/null | sed -n 's/^\(ek[0-9][0-9]*[a-z][a-z0-9]*\).*/\1/p'); do
    p=${n#ek}
    p=${p%%[a-z]*}
    kill -0 "$p" 2>/dev/null || ip netns delete "$n" 2>/dev/null || true
done

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# Network namespaces (root, iproute2, a kernel with them); else skip.
need_netns() {
    [ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
    command -v ip >/dev/null || skip "no ip(8) (Debian: iproute2)"
    ip netns add "${ns_prefix}probe" 2>"$tmp/err" ||
        skip "cannot make a network namespace: $(cat "$tmp/err")"
    ip netns delete "${ns_prefix}probe"
}

# nftables in a namespace, with the netdev family the tests hook veths
# with; else skip.
need_nft() {
    command -v nft >/dev/null || skip "no nft(8) (Debian: nftables)"
    ns probe
    on probe ip link add eknfp0 type veth peer name eknfp1
    on probe nft add table netdev probe 2>"$tmp/err" ||
        skip "nf_tables refuses a table: $(cat "$tmp/err")"
    on probe nft add chain netdev probe in "{ type filter hook ingress device eknfp0 priority 0; }" 2>"$tmp/err" ||
        skip "nf_tables has no netdev ingress hook: $(cat "$tmp/err")"
}

# ns NAME: a namespace ${ns_prefix}NAME with its loopback up.
ns() {
    ip netns add "$ns_prefix$1"
    namespaces="$namespaces $ns_prefix$1"
    ip -n "$ns_prefix$1" link set lo up
}

# on NAME CMD...: runs CMD in namespace NAME.
on() { n=$1; shift; ip netns exec "$ns_prefix$n" "$@"; }

# bridge NS BR ADDR/LEN...: a bridge in NS with these addresses.
bridge() {
    n=$1 br=$2; shift 2
    ip -n "$ns_prefix$n" link add "$br" type bridge
    for a in "$@"; do ip -n "$ns_prefix$n" addr add "$a" dev "$br"; done
    ip -n "$ns_prefix$n" link set "$br" up
}

# plug NS DEV HUBNS BR ADDR/LEN...: a veth from NS (named DEV there) to
# bridge BR in HUBNS, with these addresses on the NS end.
plug() {
    n=$1 dev=$2 hub=$3 br=$4; shift 4
    peer="$dev$n"
    ip link add "$dev" netns "$ns_prefix$n" type veth peer name "$peer" \
        netns "$ns_prefix$hub"
    for a in "$@"; do ip -n "$ns_prefix$n" addr add "$a" dev "$dev"; done
    ip -n "$ns_prefix$n" link set "$dev" up
    ip -n "$ns_prefix$hub" link set "$peer" master "$br" up
}

# start NAME OUTFILE CMD...: CMD in namespace NAME in the background,
# stdout and stderr into OUTFILE; its PID in $last_pid.
start() {
    n=$1 out=$2; shift 2
    ip netns exec "$ns_prefix$n" "$@" >"$out" 2>&1 &
    last_pid=$!
    pids="$pids $last_pid"
}

# reap PID: waits for PID (started by start), its exit status into
# $reaped; cleanup leaves it alone from then on.
reap() {
    reaped=0
    wait "$1" || reaped=$?
    pids=$(echo " $pids " | sed "s/ $1 / /; s/^ *//; s/ *$//")
}

# listening OUTFILE: waits (10 s at most) for an echokit serve's
# "listening on" lines in OUTFILE.
listening() {
    i=0
    until grep -q "listening on" "$1"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { cat "$1"; fail "no server started ($1)"; }
        sleep 0.1
    done
}

# json_field FILE NAME: the number NAME at the top of bench's --json.
json_field() {
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | head -1
}

# metric NS ADDR NAME: the value of the first sample of NAME that an
# echokit serve --metrics at ADDR in NS exports (scraped with echokit
# send, so nothing else is needed).
metric() {
    printf 'GET /metrics HTTP/1.0\r\n\r\n' |
        on "$1" "$ek" send --no-verify -t 5 "$2" - 2>/dev/null |
        sed -n "s/^$3 \([0-9]*\).*/\1/p" | head -1
}

# pair NS1 DEV1 ADDR1/LEN NS2 DEV2 ADDR2/LEN: a veth between two
# namespaces, addressed and up.
pair() {
    ip link add "$2" netns "$ns_prefix$1" type veth peer name "$5" \
        netns "$ns_prefix$4"
    ip -n "$ns_prefix$1" addr add "$3" dev "$2"
    ip -n "$ns_prefix$4" addr add "$6" dev "$5"
    ip -n "$ns_prefix$1" link set "$2" up
    ip -n "$ns_prefix$4" link set "$5" up
}
