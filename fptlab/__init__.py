"""fptlab: reproduce and extend 'Pretrained Transformers As Universal Computation Engines'."""

__version__ = "0.4.0"


def versions() -> dict[str, str | None]:
    """Versions a result depends on, recorded with every run (read from package metadata: nothing
    heavy is imported)."""
    from importlib import metadata

    out: dict[str, str | None] = {"fptlab": __version__}
    for package in ("torch", "transformers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out
