"""fptlab command line: thin commands over the library. Heavy modules (torch, transformers) are
imported inside commands so `fptlab --help` answers at once; FptlabError -> one message, exit 1."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fptlab.cli_common import DataDirOpt, SetOpt, user_errors
from fptlab.errors import FptlabWarning

app = typer.Typer(
    help="fptlab: Frozen Pretrained Transformer experiments (Lu et al., 'Pretrained Transformers As Universal "
    "Computation Engines'): run single configurations or whole TOML grids as Ray Tune sweeps into a results "
    "database (SQLite or PostgreSQL); regenerate the paper's tables and figures from that database (report); list tasks, backbones, "
    "parameter groups and init schemes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _raw_config(config: Path | None, flags: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    from fptlab.config import apply_overrides, load_toml

    raw = load_toml(config) if config else {}
    raw.update({k: v for k, v in flags.items() if v is not None})
    return apply_overrides(raw, overrides)


@app.command()
def run(
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task name (see `fptlab ls tasks`).")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="Backbone name (see `fptlab ls backbones`) (default: minilm).")] = None,
    init: Annotated[str | None, typer.Option("--init", help="pretrained | random | stats (see `fptlab ls inits`) (default: pretrained).")] = None,
    train: Annotated[str | None, typer.Option("--train", help="Comma-separated trainable groups, GROUP@LAYERS (attention@-1) or all (default: input,output,positions,layernorm).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Gradient steps (default: 1000).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Examples per step (default: 16).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate (default: 1e-3).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for every random source (default: 0).")] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", help="Steps between test evaluations (default: 100).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML run config; flags and --set override it.")] = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config, its hash and parameter counts; load no data, train nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of stdout (human output goes to stderr).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for run folders: OUT/<config hash>/ holds metrics.jsonl, checkpoint.pt and artifacts (body/, attention maps).")] = Path("runs"),
    data_dir: DataDirOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    threads: Annotated[int | None, typer.Option("--threads", help="torch intra-op threads (default: torch's own, $OMP_NUM_THREADS or the physical cores). A sweep trial uses its --cpus-per-trial: the same count reproduces its curve exactly.")] = None,
) -> None:
    """Train one FPT configuration and report test accuracy and parameter counts."""
    with user_errors():
        if threads is not None and threads < 1:
            from fptlab.errors import FptlabError

            raise FptlabError(f"--threads must be a positive number of CPU threads, got {threads}. Drop it to use torch's default.")
        from fptlab.cli_checks import existing_folder_or_absent, writable_folder
        from fptlab.config import config_from_dict
        from fptlab.plan import resolve_config, summarize

        if data_dir is not None:
            existing_folder_or_absent("--data-dir", data_dir)
        flags = dict(task=task, backbone=backbone, init=init, train=train, steps=steps, batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every)
        cfg = config_from_dict(_raw_config(config, flags, set_ or []), origin=str(config) if config else "run config")
        cfg = resolve_config(cfg, data_dir)
        say = (lambda text: typer.echo(text, err=True)) if json_out else typer.echo
        if dry_run:
            summary = summarize(cfg)
            _print_summary(say, summary.as_dict())
            if json_out:
                typer.echo(json.dumps(_clean({"status": "dry_run", **summary.as_dict()})))
            return
        writable_folder("--out", out)
        result = _train(cfg, out, data_dir, progress, threads)
        payload = _clean(result.as_dict())
        _print_result(say, payload, out / cfg.hash)
        if json_out:
            typer.echo(json.dumps(payload))
        if result.status != "completed":
            raise typer.Exit(3)


def _train(cfg: Any, out: Path, data_dir: Path | None, progress: bool, threads: int | None = None) -> Any:
    from fptlab.sinks import JsonlSink
    from fptlab.train import train

    run_dir = out / cfg.hash
    weights = _trial_weights(cfg.weights, out)
    return train(cfg, JsonlSink(run_dir / "metrics.jsonl"), data_dir=data_dir, run_dir=run_dir, weights_path=weights, progress=progress,
                 threads=threads)


def _trial_weights(weights: str, out: Path) -> Path | None:
    """Where `weights = "trial:<hash>"` is: the results database's record of it (when one exists here),
    else `<out>/<hash>/body` or the default sweep storage's trial folder."""
    from fptlab.bodies import DEFAULT_ROOTS, locate_body, trial_hash

    if trial_hash(weights) is None:
        return None
    from fptlab.cli_common import existing_store

    return locate_body(weights, roots=[out, *DEFAULT_ROOTS], store=existing_store(None))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3f}%" if whole else "-"


def _print_summary(say: Any, s: dict[str, Any]) -> None:
    say(f"config hash   {s['config_hash']}")
    say("config        " + json.dumps(s["config"], sort_keys=True))
    spec = s["task_spec"]
    say(f"task shape    {spec['seq_len']} tokens × {spec['input_dim']} ({spec['input_kind']}), {spec['n_outputs']} label(s) × {spec['n_classes']} classes")
    say(f"parameters    trainable {s['trainable_params']:,} of {s['total_params']:,} ({_pct(s['trainable_params'], s['total_params'])})")
    trainable = s["trainable_by_group"]
    for group, n in s["params_by_group"].items():
        if n:
            part = trainable.get(group, 0)
            mark = "*" if part == n else ("~" if part else " ")  # ~ = only some blocks of the group
            say(f"  {mark} {group:<12} {n:>14,}" + (f"  ({part:,} trainable)" if 0 < part < n else ""))


def _print_result(say: Any, r: dict[str, Any], run_dir: Path) -> None:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    say(f"status        {r['status']}{' (stopped at target accuracy)' if r['stopped_early'] else ''} after {r['steps']} steps on {r['device']}")
    say(f"test acc      {fmt(r['test_accuracy'])} (best {fmt(r['best_test_accuracy'])}), train acc {fmt(r['train_accuracy'])}")
    say(f"parameters    trainable {r['trainable_params']:,} of {r['total_params']:,} ({_pct(r['trainable_params'], r['total_params'])})")
    say(f"time          {r['wall_seconds']:.1f} s ({fmt(r['steps_per_second'])} steps/s); records in {run_dir}")


LISTINGS = ("tasks", "backbones", "groups", "inits")


@app.command("ls")
def ls(what: Annotated[str, typer.Argument(help="tasks | backbones | groups | inits")]) -> None:
    """List registered names, one per line."""
    with user_errors():
        from fptlab.registry import unknown_name_message

        if what not in LISTINGS:
            from fptlab.errors import UnknownNameError

            raise UnknownNameError(unknown_name_message("listing", what, list(LISTINGS)))
        for name in _names(what):
            typer.echo(name)


def _names(what: str) -> list[str]:
    """`fptlab ls WHAT`: a registry's names (tasks, backbones, inits), or the parameter groups."""
    if what == "groups":
        from fptlab.groups import ALL, ALL_GROUPS

        return [*ALL_GROUPS, ALL]
    from fptlab.registry import named_registry

    return named_registry(what.removesuffix("s")).names()


def _register_sweep_commands() -> None:
    from fptlab import cli_export, cli_report, cli_sweep

    cli_sweep.register(app)
    cli_export.register(app)
    cli_report.register(app)


_register_sweep_commands()


def main() -> None:
    import warnings

    plain = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        # fptlab's own warnings are messages for the user, not for the developer of the line that raised them.
        if issubclass(category, FptlabWarning):
            from fptlab.escape import for_terminal

            return for_terminal(f"Warning: {message}") + "\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
