#!/usr/bin/env bash
# Build the cpu node image and smoke-test it the way a cluster uses it (`make image-test`; CI runs it
# after the test suite):
#
#   1. a container engine: docker when its engine answers, else podman. With neither, as root on
#      Debian, it installs Debian's podman, runc and debootstrap.
#   2. a base image: debian:bookworm-slim from a registry, or, when no registry answers, the same made
#      here with debootstrap from the Debian mirror apt is configured with (kept for the next run).
#   3. the image, with this machine's pip settings passed in (index URLs as a pip.conf build secret,
#      the CA bundle as the ca-bundle secret, a local torch wheel through docker/wheels/).
#   4. `fptlab --help`; `fptlab run` of Bit XOR on gpt2-tiny; a Ray head and a Ray worker in two
#      containers, and a sweep-driver container that runs experiments/smoke.toml into SQLite, then
#      into a PostgreSQL container (postgres:15 from a registry, else built from Debian's postgresql-15).
#
# It prints each step's time and the image size, exits non-zero on the first failure, and removes the
# containers, network, volume and files it made. The images stay (fptlab:cpu, the base, the test
# PostgreSQL image), so a second run reuses them as build cache.
#
# Settings (environment):
#   FPTLAB_ENGINE      docker | podman (default: the first that works)
#   FPTLAB_IMAGE       tag to build (default fptlab:cpu)
#   FPTLAB_BASE_IMAGE  base image to build on (default: debian:bookworm-slim, else the debootstrap one)
#   DEBIAN_MIRROR      mirror for debootstrap (default: the one apt uses for bookworm)
#   TORCH_VERSION      default 2.13.0, the Makefile's pin
#   PYTHON             python3 whose pip settings are passed to the build (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${FPTLAB_IMAGE:-fptlab:cpu}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
PYTHON=${PYTHON:-python3}
SUITE=bookworm          # the image's Debian release: Python 3.11, the torch wheel's cp311
LOCAL_BASE=localhost/fptlab-base:bookworm-slim
PG_IMAGE_LOCAL=localhost/fptlab-test-postgres:15
RUN_ID=fptlab-test-$$
NET=$RUN_ID
SHARED=$RUN_ID-shared
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXX")
LINKED_WHEELS=()
STEPS=()
T_START=$(date +%s.%N)

say() { printf 'test-image: %s\n' "$*" >&2; }
die() {
    say "FAILED: $*"
    exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME COMMAND...: run COMMAND, print and record how long it took.
step() {
    local name=$1 t0
    shift
    t0=$(date +%s.%N)
    CURRENT_STEP=$name
    say "--- $name"
    "$@"
    CURRENT_STEP=""
    STEPS+=("$(printf '%-34s %7s s' "$name" "$(elapsed "$t0")")")
    say "--- $name: $(elapsed "$t0") s"
}

summary() {
    local rc=$1
    if [ -n "${CURRENT_STEP:-}" ]; then
        STEPS+=("$(printf '%-34s %7s' "$CURRENT_STEP" FAILED)")
    fi
    if [ "${#STEPS[@]}" -gt 0 ]; then
        say "step times:"
        printf '  %s\n' "${STEPS[@]}" >&2
    fi
    [ -n "${IMAGE_SIZE:-}" ] && say "image $IMAGE: $IMAGE_SIZE"
    say "total: $(elapsed "$T_START") s, exit status $rc"
}

cleanup() {
    local rc=$?
    set +e
    summary "$rc"
    if [ -n "${ENGINE:-}" ]; then
        local names
        names=$("${ENGINE[@]}" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$RUN_ID-" || true)
        for name in $names; do
            "${ENGINE[@]}" rm -f -v "$name" >/dev/null 2>&1  # -v: the image's anonymous volumes too
        done
        "${ENGINE[@]}" network rm "$NET" >/dev/null 2>&1
        "${ENGINE[@]}" volume rm -f "$SHARED" >/dev/null 2>&1
    fi
    [ "${#LINKED_WHEELS[@]}" -gt 0 ] && rm -f "${LINKED_WHEELS[@]}"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the engine ----------------------------------------------------------------------------------
NO_ENGINE="no container engine: no Docker engine answers ('docker info' fails; a docker client alone is not enough) and podman is not installed"
PACKAGES_HINT="install Debian's packages podman, runc and debootstrap (apt-get install podman runc debootstrap), or start a Docker engine"

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "$NO_ENGINE, and this is not a root shell on Debian that could install it: $PACKAGES_HINT"
    fi
    say "installing Debian's $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 ||
        { apt-get update -q >>"$WORK/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1; } ||
        { tail -20 "$WORK/apt.log" >&2; die "apt-get install $* failed (above): $PACKAGES_HINT"; }
}

pick_engine() {
    local want=${FPTLAB_ENGINE:-}
    if [ "$want" != podman ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        ENGINE=(docker)
        export DOCKER_BUILDKIT=1
    elif [ "$want" = docker ]; then
        die "FPTLAB_ENGINE=docker, but no Docker engine answers ('docker info' fails): start dockerd, or unset FPTLAB_ENGINE to use podman"
    else
        if command -v docker >/dev/null && [ "$want" != podman ]; then
            say "docker's client is here but no Docker engine answers ('docker info' fails): using podman"
        fi
        # runc: podman's default runtime on Debian 12 (crun) cannot start containers on some hosts.
        if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
            apt_install podman runc
        fi
        podman info >"$WORK/podman-info.log" 2>&1 ||
            { tail -5 "$WORK/podman-info.log" >&2; die "podman is installed but 'podman info' fails (above)"; }
        ENGINE=(podman)
    fi
    say "engine: $("${ENGINE[0]}" --version)"
}

# Open-file (and, for podman, process) limits for every container: 65536 open files, or the host's hard
# limit when that is lower (a container cannot be given more than the engine's own hard limit). Podman
# asks for 1048576 of each unless told, which fails on such hosts. Podman's default runtime (crun 1.8
# on Debian 12) also refuses hosts with cgroups in hybrid mode, where runc works.
pick_ulimits() {
    local hard nofile nproc runtime
    hard=$(ulimit -Hn)
    for nofile in 65536 "$hard"; do
        [ "$nofile" = unlimited ] && continue
        for nproc in "" "$(ulimit -Hu)" 32768 4096; do
            local try=(--ulimit "nofile=$nofile:$nofile")
            [ -n "$nproc" ] && [ "$nproc" != unlimited ] && try+=(--ulimit "nproc=$nproc:$nproc")
            for runtime in "" runc; do
                local eng=("${ENGINE[@]}")
                if [ -n "$runtime" ]; then
                    if [ "${ENGINE[0]}" != podman ] || ! command -v "$runtime" >/dev/null; then continue; fi
                    eng=(podman --runtime "$runtime")
                fi
                "${eng[@]}" run --rm "${try[@]}" "$BASE" true >/dev/null 2>&1 || continue
                ULIMITS=("${try[@]}")
                ENGINE=("${eng[@]}")
                say "container limits: ${ULIMITS[*]}${runtime:+ (runtime $runtime: the default one cannot start containers here)}"
                if [ "$nofile" -lt 65536 ]; then
                    say "note: the engine's open-file hard limit is $nofile, below the 65536 Ray sweeps want"
                fi
                return 0
            done
        done
    done
    "${ENGINE[@]}" run --rm --ulimit "nofile=$hard:$hard" "$BASE" true || true
    die "no container starts from $BASE, whatever the open-file and process limits (see the engine's message above)"
}

# ---- 2. the base image ------------------------------------------------------------------------------
image_exists() { "${ENGINE[@]}" image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror apt uses for $SUITE (deb822 .sources or one-line .list files), and its security mirror.
apt_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk 'BEGIN { RS = ""; FS = "\n" }
            { types = uris = suites = ""
              for (i = 1; i <= NF; i++) {
                  if ($i ~ /^Types:/) types = $i; else if ($i ~ /^URIs:/) uris = $i; else if ($i ~ /^Suites:/) suites = $i }
              if (types !~ /(^|[ \t])deb([ \t]|$)/) next
              n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
              for (a = 2; a <= n; a++) for (b = 2; b <= m; b++) print u[a], s[b] }' "$f"
    done
}

make_base() {
    local mirror=${DEBIAN_MIRROR:-} security root
    if [ -z "$mirror" ]; then
        mirror=$(apt_sources | awk -v s="$SUITE" '$2 == s { print $1; exit }')
    fi
    [ -n "$mirror" ] || die "no registry answers and apt has no mirror for Debian $SUITE: set DEBIAN_MIRROR=<Debian mirror URL>, or FPTLAB_BASE_IMAGE"
    security=$(apt_sources | awk -v s="$SUITE-security" '$2 == s { print $1; exit }')
    command -v debootstrap >/dev/null || apt_install debootstrap
    [ "$(id -u)" = 0 ] || die "debootstrap needs root: run as root, or set FPTLAB_BASE_IMAGE to a Debian $SUITE image"
    root=$WORK/rootfs
    say "no registry answers: making $LOCAL_BASE with debootstrap ($SUITE, minbase)"
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap $SUITE from $mirror failed"; }
    {
        echo "deb $mirror $SUITE main"
        echo "deb $mirror $SUITE-updates main"
        [ -n "$security" ] && echo "deb $security $SUITE-security main"
    } >"$root/etc/apt/sources.list"
    # What debian:*-slim leaves out of every later install (docs, man pages, translations), and apt's
    # caches; then the same cleanup of what debootstrap installed.
    cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$root/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar -C "$root" -c . | "${ENGINE[@]}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
}

# Short image names (debian:bookworm-slim, postgres:15): the engine's own configuration says which
# registry serves them.
pick_base() {
    BASE_PULLED=0
    if [ -n "${FPTLAB_BASE_IMAGE:-}" ]; then
        BASE=$FPTLAB_BASE_IMAGE
    elif image_exists debian:bookworm-slim || timeout 300 "${ENGINE[@]}" pull -q debian:bookworm-slim >/dev/null 2>&1; then
        BASE=debian:bookworm-slim
        BASE_PULLED=1
    elif image_exists "$LOCAL_BASE"; then
        BASE=$LOCAL_BASE
        say "no registry answers: reusing $LOCAL_BASE (made earlier with debootstrap)"
    else
        BASE=$LOCAL_BASE
        make_base
    fi
    say "base image: $BASE"
}

# ---- 3. the image -----------------------------------------------------------------------------------
# This machine's pip settings: `pip config list` (files and PIP_* variables) as KEY=VALUE lines.
pip_setting() {
    "$PYTHON" -m pip config list 2>/dev/null |
        awk -F= -v k="$1" '{ split($1, p, "."); if (p[2] == k) { v = substr($0, length($1) + 2); gsub(/^'\''|'\''$/, "", v); print v } }' |
        head -1
}

pass_pip_settings() {
    BUILD_ARGS=()
    command -v "$PYTHON" >/dev/null || { say "no $PYTHON: the build uses pip's defaults"; return 0; }
    local index extra="" url trusted cert timeout dir wheel
    index=$(pip_setting index-url)
    for url in $(pip_setting extra-index-url); do
        case "$url" in http://* | https://*) extra="$extra $url" ;; esac  # file:// folders are not in the build
    done
    trusted=$(pip_setting trusted-host)
    timeout=$(pip_setting timeout)
    [ -n "$timeout" ] || timeout=$(pip_setting default-timeout)
    {
        echo "[global]"
        case "$index" in http://* | https://*) echo "index-url = $index" ;; esac
        [ -n "$extra" ] && echo "extra-index-url =$extra"
        [ -n "$trusted" ] && echo "trusted-host = $trusted"
        [ -n "$timeout" ] && echo "timeout = $timeout"
    } >"$WORK/pip.conf"
    BUILD_ARGS+=(--secret "id=pip.conf,src=$WORK/pip.conf")
    cert=$(pip_setting cert)
    if [ -n "$cert" ] && [ -f "$cert" ]; then
        BUILD_ARGS+=(--secret "id=ca-bundle,src=$cert")
        say "pip settings passed: index ${index:-pip default}${extra:+, extra index$extra}; CA bundle $cert"
    else
        say "pip settings passed: index ${index:-pip default}${extra:+, extra index$extra}"
    fi
    # torch's CPU wheel from pip's find-links folders, linked into the build context (docker/wheels/).
    for dir in $(pip_setting find-links); do
        dir=${dir#file://}
        for wheel in "$dir"/torch-"$TORCH_VERSION"[+-]*cp311*.whl; do
            [ -f "$wheel" ] || continue
            local dest="docker/wheels/${wheel##*/}"
            [ -e "$dest" ] && continue
            ln "$wheel" "$dest" 2>/dev/null || cp "$wheel" "$dest"
            LINKED_WHEELS+=("$dest")
            say "torch wheel: ${wheel##*/} (from pip's find-links)"
        done
    done
}

build_image() {
    local args=(-f docker/Dockerfile --build-arg FLAVOUR=cpu --build-arg "BASE_IMAGE=$BASE"
        --build-arg "TORCH_VERSION=$TORCH_VERSION" "${BUILD_ARGS[@]}" -t "$IMAGE")
    if [ "${ENGINE[0]}" = podman ]; then
        args+=(--ignorefile docker/Dockerfile.dockerignore --network host "${ULIMITS[@]}")
        [ "$BASE_PULLED" = 1 ] || args+=(--pull=never)
    else
        args+=(--progress=plain)
    fi
    { "${ENGINE[@]}" build "${args[@]}" . 2>&1; echo "$?" >"$WORK/build.rc"; } | tee "$WORK/build.log" |
        grep --line-buffered -E '^(STEP|#[0-9]+ \[|ERROR|Error)|install-fptlab:' >&2 || true
    [ "$(cat "$WORK/build.rc")" = 0 ] || { tail -40 "$WORK/build.log" >&2; die "the image build failed (its last lines are above)"; }
    local bytes
    bytes=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
    IMAGE_SIZE="$(awk -v b="$bytes" 'BEGIN { printf "%.2f GB (%d MB)", b / 1e9, b / 1e6 }')"
    say "image size: $IMAGE_SIZE"
    # shellcheck disable=SC2016  # expanded in the container
    "${ENGINE[@]}" run --rm "${ULIMITS[@]}" "$IMAGE" sh -c 'cat /opt/venv/fptlab-image-versions.txt;
        du -sm /opt/venv "$(python -c "import torch, os; print(os.path.dirname(torch.__file__))")" | sed "s/^/MB /"' >&2
}

# ---- 4. smoke tests ---------------------------------------------------------------------------------
in_image() { "${ENGINE[@]}" run --rm "${ULIMITS[@]}" -e FPTLAB_OFFLINE=1 -e HF_HUB_OFFLINE=1 "$@"; }

smoke_help() {
    in_image "$IMAGE" >"$WORK/help.txt"                 # the default command is fptlab --help
    in_image "$IMAGE" fptlab --help >>"$WORK/help.txt"
    grep -q "sweep" "$WORK/help.txt" || die "fptlab --help does not list the sweep command"
}

smoke_run() {
    in_image "$IMAGE" fptlab run --task bit_xor --backbone gpt2-tiny --init random --steps 40 --eval-every 20 \
        --no-progress --json --out /tmp/runs >"$WORK/run.json"
    tail -1 "$WORK/run.json" | grep -q '"status": "completed"' || { cat "$WORK/run.json" >&2; die "fptlab run did not complete"; }
    say "fptlab run: $(tail -1 "$WORK/run.json" | grep -oE '"test_accuracy": [0-9.]+')"
}

ip_of() { "${ENGINE[@]}" inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every second until it succeeds.
wait_for() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "$what did not happen within $seconds s"
}

RAY_ENV=()
node() {  # node NAME ARGS...: a detached Ray container on the test network
    local name=$1
    shift
    "${ENGINE[@]}" run -d --name "$RUN_ID-$name" --network "$NET" "${ULIMITS[@]}" --shm-size=1g \
        -v "$SHARED:/shared" "${RAY_ENV[@]}" "$@" >/dev/null
}

start_cluster() {
    RAY_ENV=(-e RAY_AUTH_MODE=token -e "RAY_AUTH_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
        -e FPTLAB_OFFLINE=1 -e HF_HUB_OFFLINE=1)
    "${ENGINE[@]}" network create "$NET" >/dev/null
    "${ENGINE[@]}" volume create "$SHARED" >/dev/null
    node head "$IMAGE" ray start --head --port=6379 --include-dashboard=false --num-cpus=0 \
        --object-store-memory=300000000 --block
    HEAD_IP=$(ip_of "$RUN_ID-head")
    wait_for 90 "the Ray head answering" "${ENGINE[@]}" exec "$RUN_ID-head" ray health-check --address "$HEAD_IP:6379"
    node worker --add-host "ray-head:$HEAD_IP" "$IMAGE" ray start --address=ray-head:6379 --num-cpus=2 \
        --object-store-memory=300000000 --block
    wait_for 90 "the Ray worker joining" two_nodes
    say "Ray cluster: head $HEAD_IP, worker $(ip_of "$RUN_ID-worker")"
}

# Two nodes alive (the head and the worker); --num-cpus=0 on the head: trials run on the worker.
two_nodes() { "${ENGINE[@]}" exec "$RUN_ID-head" ray status 2>/dev/null | grep -cE '^ +1 node_' | grep -qx 2; }

# The sweep driver in a container of its own, as compose's sweep service: a 0-CPU Ray node, then
# `fptlab db upgrade` and `fptlab sweep ... --address auto`, then a count of the completed cells.
drive() {
    local db=$1 storage=$2
    shift 2
    # shellcheck disable=SC2016  # expanded in the container
    "${ENGINE[@]}" run --rm --name "$RUN_ID-driver" --network "$NET" "${ULIMITS[@]}" --shm-size=512m \
        -v "$SHARED:/shared" "${RAY_ENV[@]}" --add-host "ray-head:$HEAD_IP" -e "DB=$db" -e "STORAGE=$storage" "$@" \
        "$IMAGE" sh -c '
            set -eu
            ray start --address=ray-head:6379 --num-cpus=0 --num-gpus=0 --object-store-memory=200000000 >/dev/null
            trap "ray stop >/dev/null 2>&1 || true" EXIT
            fptlab db upgrade --db "$DB"
            fptlab sweep experiments/smoke.toml --address auto --db "$DB" --storage "$STORAGE" --no-progress
            done=$(fptlab trials --experiment smoke --status completed --json --db "$DB" | grep -c config_hash)
            echo "completed cells: $done"
            [ "$done" = 8 ]
            ls "$STORAGE" | grep -q . || { echo "no checkpoints in $STORAGE"; exit 1; }'
}

smoke_sqlite() { drive "sqlite:////shared/smoke.db" /shared/runs-sqlite; }

postgres_image() {
    if [ "$BASE_PULLED" = 1 ] && { image_exists postgres:15 || timeout 300 "${ENGINE[@]}" pull -q postgres:15 >/dev/null 2>&1; }; then
        PG_IMAGE=postgres:15
        return 0
    fi
    PG_IMAGE=$PG_IMAGE_LOCAL
    mkdir -p "$WORK/pg"
    # The official image's variables (POSTGRES_USER, _PASSWORD, _DB) and data folder, on Debian's package.
    cat >"$WORK/pg/Dockerfile" <<'EOF'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15 \
 && install -d -o postgres -g postgres /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
USER postgres
CMD set -eu; pw=$(mktemp); printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"; \
    initdb -U "$POSTGRES_USER" -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pw" >/dev/null; \
    rm -f "$pw"; echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"; \
    pg_ctl -w -o "-c listen_addresses=''" start >/dev/null; createdb -U "$POSTGRES_USER" "$POSTGRES_DB"; pg_ctl -w stop >/dev/null; \
    exec postgres -c listen_addresses='*'
EOF
    local args=(--build-arg "BASE_IMAGE=$BASE" -t "$PG_IMAGE")
    [ "${ENGINE[0]}" = podman ] && args+=(--network host "${ULIMITS[@]}" --pull=never)
    "${ENGINE[@]}" build "${args[@]}" "$WORK/pg" >"$WORK/pg-build.log" 2>&1 ||
        { tail -20 "$WORK/pg-build.log" >&2; die "building the PostgreSQL test image from Debian's postgresql-15 failed"; }
}

smoke_postgres() {
    local password
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    "${ENGINE[@]}" run -d --name "$RUN_ID-postgres" --network "$NET" "${ULIMITS[@]}" -e POSTGRES_USER=fptlab \
        -e POSTGRES_DB=fptlab -e "POSTGRES_PASSWORD=$password" "$PG_IMAGE" >/dev/null
    local pg_ip
    pg_ip=$(ip_of "$RUN_ID-postgres")
    wait_for 60 "PostgreSQL accepting connections" \
        "${ENGINE[@]}" exec "$RUN_ID-postgres" pg_isready -q -h "$pg_ip" -U fptlab -d fptlab
    # The password goes in PGPASSWORD, never in the URL, as compose.yml does.
    drive "postgresql+psycopg://fptlab@postgres:5432/fptlab" /shared/runs-postgres \
        --add-host "postgres:$pg_ip" -e "PGPASSWORD=$password"
}

# Stopping a Ray node must end it cleanly within the grace period (tini passes SIGTERM to Ray).
stop_cluster() {
    local name t0
    for name in worker head; do
        t0=$(date +%s.%N)
        "${ENGINE[@]}" stop -t 30 "$RUN_ID-$name" >/dev/null
        say "stopped the $name in $(elapsed "$t0") s"
    done
}

# ---- main ---------------------------------------------------------------------------------------------
step "engine" pick_engine
step "base image" pick_base
step "container limits" pick_ulimits
step "pip settings" pass_pip_settings
step "image build" build_image
step "fptlab --help" smoke_help
step "fptlab run (bit_xor, gpt2-tiny)" smoke_run
step "Ray head + worker up" start_cluster
step "sweep smoke.toml into SQLite" smoke_sqlite
step "PostgreSQL image" postgres_image
step "sweep smoke.toml into PostgreSQL" smoke_postgres
step "Ray head + worker stop" stop_cluster
say "OK: $IMAGE built and passed its smoke test"
