#!/bin/sh
# A three-node callpark cluster on 127.0.0.1, each node a callparkd with its
# own embedded NATS server, the three clustered (routes + JetStream).
#
#   scripts/cluster.sh up      build bin/callparkd and start nodes a, b, c
#   scripts/cluster.sh status  what runs
#   scripts/cluster.sh down    stop them (SIGTERM: lame duck, then exit)
#
#   node  SIP             NATS clients     NATS routes      metrics          console
#   a     127.0.0.1:5071  127.0.0.1:4271   127.0.0.1:6271   127.0.0.1:9071   127.0.0.1:9181
#   b     127.0.0.1:5072  127.0.0.1:4272   127.0.0.1:6272   127.0.0.1:9072   127.0.0.1:9182
#   c     127.0.0.1:5073  127.0.0.1:4273   127.0.0.1:6273   127.0.0.1:9073   127.0.0.1:9183
#
# State and logs live in $CLUSTER_DIR (default .cluster/): node logs
# <node>.log, JetStream stores <node>/, the shared NATS service password
# nats-secret and the cluster secret cluster-secret. DIALPLANS picks the
# dialplan directory (default dialplans/sample).
set -eu
cd "$(dirname "$0")/.."
DIR=${CLUSTER_DIR:-.cluster}
DIALPLANS=${DIALPLANS:-dialplans/sample}
NODES="a b c"

idx() { case $1 in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; esac; }

routes_for() {
	out=""
	for n in $NODES; do
		[ "$n" = "$1" ] && continue
		out="$out${out:+,}nats-route://127.0.0.1:627$(idx "$n")"
	done
	echo "$out"
}

up() {
	mkdir -p "$DIR"
	go build -o bin/ ./cmd/callparkd
	[ -s "$DIR/cluster-secret" ] || head -c 24 /dev/urandom | base64 > "$DIR/cluster-secret"
	chmod 600 "$DIR/cluster-secret"
	for n in $NODES; do
		if [ -f "$DIR/$n.pid" ] && kill -0 "$(cat "$DIR/$n.pid")" 2>/dev/null; then
			echo "node $n already runs (pid $(cat "$DIR/$n.pid"))"
			continue
		fi
		i=$(idx "$n")
		bin/callparkd --node "$n" --dialplans "$DIALPLANS" \
			--sip "127.0.0.1:507$i" --nats-listen "127.0.0.1:427$i" \
			--cluster-listen "127.0.0.1:627$i" --cluster-routes "$(routes_for "$n")" \
			--cluster-secret "$(cat "$DIR/cluster-secret")" \
			--nats-store "$DIR/$n" --nats-secret-file "$DIR/nats-secret" \
			--metrics "127.0.0.1:907$i" --web "127.0.0.1:918$i" \
			>"$DIR/$n.log" 2>&1 &
		echo $! > "$DIR/$n.pid"
		echo "node $n: pid $!, SIP 127.0.0.1:507$i, log $DIR/$n.log"
	done
	# Ready when each serves /metrics and its control plane holds or waits
	# for partitions (a clustered JetStream needs a few seconds).
	for n in $NODES; do
		i=$(idx "$n")
		t=0
		until curl -fs "http://127.0.0.1:907$i/metrics" 2>/dev/null | grep -q '^callpark_control_partitions'; do
			t=$((t + 1))
			if [ $t -gt 60 ]; then echo "node $n not ready; see $DIR/$n.log"; exit 1; fi
			sleep 1
		done
	done
	# Every partition held by someone (the first round waits 3.5 s for the
	# nodes' announcements; a clustered JetStream elects its leaders first).
	t=0
	while [ "$(held)" -lt 8 ] && [ $t -lt 30 ]; do sleep 1; t=$((t + 1)); done
	status
}

# held is the number of control partitions held across the nodes.
held() {
	sum=0
	for n in $NODES; do
		v=$(curl -fs "http://127.0.0.1:907$(idx "$n")/metrics" 2>/dev/null | awk '/^callpark_control_partitions /{print $2}')
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

status() {
	for n in $NODES; do
		i=$(idx "$n")
		if [ -f "$DIR/$n.pid" ] && kill -0 "$(cat "$DIR/$n.pid")" 2>/dev/null; then
			parts=$(curl -fs "http://127.0.0.1:907$i/metrics" 2>/dev/null | awk '/^callpark_control_partitions /{print $2}')
			echo "node $n: running (pid $(cat "$DIR/$n.pid")), partitions held: ${parts:-?}"
		else
			echo "node $n: stopped"
		fi
	done
}

down() {
	for n in $NODES; do
		[ -f "$DIR/$n.pid" ] || continue
		pid=$(cat "$DIR/$n.pid")
		kill "$pid" 2>/dev/null && echo "node $n: stopping (pid $pid)" || true
	done
	for n in $NODES; do
		[ -f "$DIR/$n.pid" ] || continue
		pid=$(cat "$DIR/$n.pid")
		t=0
		while kill -0 "$pid" 2>/dev/null && [ $t -lt 40 ]; do sleep 1; t=$((t + 1)); done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$DIR/$n.pid"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|status|down" >&2; exit 2 ;;
esac
