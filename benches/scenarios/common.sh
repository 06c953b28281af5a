# Sourced by the scenario scripts: the log process under test ($pid), killed
# on exit, a free loopback port, and a bounded wait for readiness.

pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ready PORT LOGFILE: waits (up to 10 minutes) until the log on PORT
# answers /readyz; otherwise prints the end of LOGFILE and exits.
wait_ready() {
    for _ in $(seq 1 3000); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/readyz', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "the log did not get ready; its output:" >&2
    tail -50 "$2" >&2
    exit 1
}
