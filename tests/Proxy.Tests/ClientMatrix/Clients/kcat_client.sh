#!/bin/sh
# Client-matrix driver for kcat (librdkafka 2.0.x).
# Usage: kcat_client.sh produce|consume <bootstrap> <topic> <group> <count> <prefix>
# Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced
# (after kcat reported every delivery) or consumed; partition/offset are -1 where kcat does not report them.
# KCAT names the binary (default: kcat); MATRIX_DEBUG=1 adds librdkafka protocol debug on stderr.
set -eu
mode=$1 bootstrap=$2 topic=$3 group=$4 count=$5 prefix=$6
kcat=${KCAT:-kcat}
debug=""
if [ "${MATRIX_DEBUG:-}" = "1" ]; then debug="-d broker,protocol,topic,msg,cgrp"; fi

case "$mode" in
produce)
  errors=$(mktemp)
  trap 'rm -f "$errors"' EXIT
  i=0
  while [ "$i" -lt "$count" ]; do
    printf '%s-k%d:%s-%d\n' "$prefix" $((i % 7)) "$prefix" "$i"
    i=$((i + 1))
  done | "$kcat" -b "$bootstrap" -P -t "$topic" -K: -X acks=all -X message.timeout.ms=20000 $debug 2>"$errors" || {
    cat "$errors" >&2; echo "kcat -P exited non-zero" >&2; exit 1; }
  cat "$errors" >&2
  # kcat logs a failed delivery but may still exit 0.
  if grep -q "Delivery failed" "$errors"; then echo "kcat reported failed deliveries" >&2; exit 1; fi
  i=0
  while [ "$i" -lt "$count" ]; do
    printf '{"op":"produced","key":"%s-k%d","value":"%s-%d","partition":-1,"offset":-1}\n' "$prefix" $((i % 7)) "$prefix" "$i"
    i=$((i + 1))
  done
  ;;
consume)
  # -G joins the group (balanced consumer, auto-commit); -c exits after <count> records.
  exec "$kcat" -b "$bootstrap" -G "$group" -X auto.offset.reset=earliest -X fetch.wait.max.ms=100 \
    -X session.timeout.ms=6000 -c "$count" $debug \
    -f '{"op":"consumed","key":"%k","value":"%s","partition":%p,"offset":%o}\n' "$topic"
  ;;
*)
  echo "unknown mode $mode" >&2; exit 2 ;;
esac
