#!/bin/sh
# The benchmark's `command` processor (scripts/bench.sh), run by the daemon
# and by the floor alike: reads the job on stdin, appends it as one line to
# $BENCH_RUN_LOG (so the driver counts processing runs per key), "works" for
# $BENCH_WORK_S seconds (default 0.02) and answers a small value.
job=$(cat)
if [ -n "${BENCH_RUN_LOG:-}" ]; then
    printf '%s\n' "$job" >>"$BENCH_RUN_LOG"
fi
sleep "${BENCH_WORK_S:-0.02}"
printf '{"value":{"computed":true,"bytes":"%s"}}' "0123456789abcdef0123456789abcdef"
