"""Run Knative Revisions as local processes (skeleton; being filled in by H3)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_knative.store import Store

DEFAULT_CATALOG = Path(__file__).with_name("images.yaml")


@dataclass(frozen=True)
class ImageCatalog:
    """Map image references (fnmatch patterns) to local commands."""

    path: Path
    images: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> ImageCatalog:
        """Load a catalog file (None = the default catalog)."""
        import yaml

        path = (path or DEFAULT_CATALOG).resolve()
        data = yaml.safe_load(path.read_text()) or {}
        return cls(path=path, images=dict(data.get("images") or {}))


@dataclass(frozen=True)
class ScalingConfig:
    """Autoscaler timings."""

    stable_window: float = 60.0
    scale_to_zero_grace: float = 30.0
    progress_deadline: float = 120.0
    autoscaler_tick: float = 2.0

    @staticmethod
    def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the scaling flags to a parser."""
        parser.add_argument("--stable-window", type=float, default=60.0)
        parser.add_argument("--scale-to-zero-grace", type=float, default=30.0)
        parser.add_argument("--progress-deadline", type=float, default=120.0)
        parser.add_argument("--autoscaler-tick", type=float, default=2.0)

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> ScalingConfig:
        """Build the config from parsed flags."""
        return cls(args.stable_window, args.scale_to_zero_grace, args.progress_deadline, args.autoscaler_tick)


class RevisionRuntime:
    """Run each Revision's pods as local processes."""

    def __init__(self, store: Store, *, catalog: ImageCatalog, data_dir: Path, scaling: ScalingConfig) -> None:
        self.store = store
        self.catalog = catalog
        self.data_dir = data_dir
        self.scaling = scaling

    async def start(self) -> None:
        """Start (skeleton: does nothing yet)."""

    async def stop(self) -> None:
        """Stop (skeleton: does nothing yet)."""
