#!/usr/bin/env bash
# bench-sip.sh: registration rate and call setup rate of a running
# callparkd, measured with sipp (an independent SIP peer) on loopback.
#
#   make build && scripts/bench-sip.sh        (RATES="200 500 1000" COUNT=3000)
#
# It starts bin/callparkd on free ports with the sample dialplans, then
#  (1) REGISTER with digest (401 challenge + authenticated REGISTER) at each
#      rate in RATES for COUNT registrations;
#  (2) calls 200 -> 201 (sipp UAS registered as 201 answers, the caller
#      hangs up after 1 s) at each rate in CALL_RATES for CALL_COUNT calls;
# and prints successful/failed per rate and callparkd's CPU use.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"200 500 1000"}
COUNT=${COUNT:-3000}
CALL_RATES=${CALL_RATES:-"50 100 200"}
CALL_COUNT=${CALL_COUNT:-1000}
ROOT=$(pwd)
SC=$ROOT/pbx/testdata/sipp
WORK=$(mktemp -d)
cd "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "$KEEP" ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
KEEP=${KEEP:-}

free_port() { python3 -c 'import socket,random
while True:
  p=random.randint(20000,31999)
  try:
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",p))
    t=socket.socket(); t.bind(("127.0.0.1",p)); u.close(); t.close(); print(p); break
  except OSError: pass'; }

SIP=$(free_port); NATS=$(free_port); MET=$(free_port)
"$ROOT/bin/callparkd" --sip 127.0.0.1:$SIP --nats-listen 127.0.0.1:$NATS --metrics 127.0.0.1:$MET \
  --dialplans "$ROOT/dialplans/sample" --web "" --keepalive 0 --log-level warn >"$WORK/callparkd.log" 2>&1 &
PID=$!; PIDS+=($PID)
for _ in $(seq 50); do curl -sf "127.0.0.1:$MET/metrics" >/dev/null && break; sleep 0.1; done

cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
hz=$(getconf CLK_TCK)
stats() { # sipp -trace_stat csv: successful and failed totals (last line)
  local f=$1; tail -1 "$f" | awk -F';' -v s="$2" -v fcol="$3" '{print $s, $fcol}'; }

echo "callparkd pid $PID, SIP 127.0.0.1:$SIP; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
printf '\n%-12s %8s %8s %8s %10s\n' "REGISTER/s" "sent" "ok" "failed" "cpu(cores)"
for r in $RATES; do
  c0=$(cpu); t0=$(date +%s.%N)
  sipp -sf $SC/register.xml -i 127.0.0.1 -p "$(free_port)" -key domain demo.callpark.test -auth_uri 127.0.0.1:$SIP -key ext 200 \
       -au 200 -ap secret200 -r "$r" -m "$COUNT" -l 2000 -timeout 120s -nostdin \
       -trace_stat -stf "reg$r.csv" -fd 1 127.0.0.1:$SIP >"$WORK/reg$r.out" 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu)
  read -r ok failed < <(stats "reg$r.csv" 16 18)
  printf '%-12s %8s %8s %8s %10.2f\n' "$r" "$COUNT" "$ok" "$failed" "$(echo "($c1-$c0)/$hz/($t1-$t0)" | bc -l)"
done

UAS=$(free_port)
sipp -sf $SC/register.xml -i 127.0.0.1 -p "$UAS" -key domain demo.callpark.test -auth_uri 127.0.0.1:$SIP -key ext 201 -au 201 -ap secret201 \
     -m 1 -timeout 10s -nostdin 127.0.0.1:$SIP >"$WORK/uasreg.out" 2>&1
sipp -sf $SC/uas_answer.xml -i 127.0.0.1 -p "$UAS" -mi 127.0.0.1 -mp "$(free_port)" -key ext 201 -nostdin \
     >"$WORK/uas.out" 2>&1 &
PIDS+=($!)
sleep 0.5
printf '\n%-12s %8s %8s %8s %10s\n' "calls/s" "sent" "ok" "failed" "cpu(cores)"
for r in $CALL_RATES; do
  c0=$(cpu); t0=$(date +%s.%N)
  sipp -sf $SC/uac_call_bye.xml -i 127.0.0.1 -p "$(free_port)" -mi 127.0.0.1 -mp "$(free_port)" \
       -key domain demo.callpark.test -auth_uri 127.0.0.1:$SIP -key ext 200 -au 200 -ap secret200 -s 201 \
       -r "$r" -m "$CALL_COUNT" -l 5000 -timeout 180s -nostdin \
       -trace_stat -stf "call$r.csv" -fd 1 127.0.0.1:$SIP >"$WORK/call$r.out" 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu)
  read -r ok failed < <(stats "call$r.csv" 16 18)
  printf '%-12s %8s %8s %8s %10.2f\n' "$r" "$CALL_COUNT" "$ok" "$failed" "$(echo "($c1-$c0)/$hz/($t1-$t0)" | bc -l)"
done
