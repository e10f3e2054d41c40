#!/bin/bash
# Entry point of the fptlab image. It runs under tini (PID 1), which reaps the worker processes that
# Ray starts and stops and forwards signals (`docker stop`, Ctrl-C) to the whole process group.
#
# 1. Raise the soft open-file limit (nofile) to FPTLAB_NOFILE (default 65536) when the hard limit
#    allows. Sweeps with many trials open many sockets and files and otherwise fail with "too many
#    open files" (Ray issue 12227). The hard limit is set where the container starts:
#    `docker run --ulimit nofile=65536:65536`, or `ulimits: nofile:` in compose (FPTLAB_NOFILE). No
#    container gets more than the engine's own hard limit, so on such a host the limit is lower.
# 2. Run the given command (default: fptlab --help). Arguments that start with "-" are passed to
#    fptlab: `docker run IMAGE --help` is `fptlab --help`.
set -eu

want=${FPTLAB_NOFILE:-65536}
case "$want" in
    '' | *[!0-9]*) want=65536 ;;
esac
hard=$(ulimit -H -n)
soft=$(ulimit -S -n)
target=$want
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    target=$hard
    echo "fptlab-entrypoint: the open-file hard limit is $hard (below $want); Ray sweeps with many trials" \
        "may fail with 'too many open files'. Start the container with --ulimit nofile=$want:$want (compose:" \
        "FPTLAB_NOFILE in docker/.env); an engine whose own hard limit is lower must be given more first." >&2
fi
if [ "$soft" != unlimited ] && [ "$soft" -lt "$target" ]; then
    ulimit -S -n "$target" 2>/dev/null ||
        echo "fptlab-entrypoint: could not raise the open-file soft limit from $soft to $target" >&2
fi

if [ "$#" -eq 0 ]; then
    set -- fptlab --help
fi
case "$1" in
    -*) set -- fptlab "$@" ;;
esac
exec "$@"
