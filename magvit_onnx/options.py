"""The options of the commands that run the graphs (`demo`, `info`, `run`), defined once."""
from __future__ import annotations

import click


def check_providers(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An unknown provider name is a usage error (exit 2) like any bad option value; whether a
    known one is available is found when the sessions start (exit 1)."""
    try:
        from magvit_onnx.runtime.providers import ProviderError, resolve
    except ImportError as e:  # onnxruntime is an extra: the one line that names it
        raise click.ClickException(str(e)) from None
    try:
        resolve(value)
    except ProviderError as e:
        raise click.BadParameter(str(e)) from None
    return value


ARTIFACTS = click.option("--artifacts", type=click.Path(file_okay=False), default=None,
                         help="Artifacts folder (default: the shipped default model).")
PROVIDERS = click.option("--providers", default="cpu", show_default=True, callback=check_providers,
                         help="Execution providers, comma-separated: cpu, cuda, tensorrt.")
DECODING = click.option("--decoding", type=click.Choice(["model", "official"]), default="model", show_default=True,
                        help="Decoding defaults: this model's per-task choice (where its manifest has one) or the "
                             "official ones (docs/model-card.md).")
