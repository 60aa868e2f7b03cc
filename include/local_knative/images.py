"""Say how a container image runs on this machine: the image catalog (there is no container runtime).

A catalog is a YAML file ``images: {"<fnmatch pattern on the full image ref>": {entrypoint: [...],
cmd: [...], workingDir: ".", env: {}}}``; the first pattern that matches an image wins. A relative
``workingDir`` is relative to the catalog file, and ``python`` as the first word means this interpreter
(``sys.executable``), so catalogs work in any virtualenv.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CATALOG = Path(__file__).with_name("images.yaml")


class CatalogError(ValueError):
    """The image catalog file cannot be used."""


@dataclass(frozen=True)
class LaunchSpec:
    """How to start one pod process."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]


@dataclass(frozen=True)
class ImageCatalog:
    """Map image references (fnmatch patterns on the full reference) to local commands.

    :param path: the catalog file (named in ``ErrImagePull`` messages).
    :param images: pattern -> ``{entrypoint, cmd, workingDir, env}``, in file order (first match wins).
    """

    path: Path
    images: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> ImageCatalog:
        """Load and check a catalog file.

        :param path: the YAML file; None means the default catalog next to this module.
        :raises CatalogError: when the file is missing or malformed.
        """
        path = Path(path or DEFAULT_CATALOG).resolve()
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as error:
            raise CatalogError(
                f"image catalog {path} cannot be read: {error}; pass an existing file"
            ) from error
        except yaml.YAMLError as error:
            raise CatalogError(f"image catalog {path} is not valid YAML: {error}") from error
        images = (data or {}).get("images") if isinstance(data, dict) else None
        if not isinstance(images, dict):
            raise CatalogError(
                f"image catalog {path} needs a top-level mapping 'images: {{pattern: {{...}}}}'"
            )
        for pattern, entry in images.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("entrypoint", []), list):
                raise CatalogError(
                    f"image catalog {path}: entry {pattern!r} must be a mapping with an 'entrypoint' list"
                )
            for key in ("cmd",):
                if not isinstance(entry.get(key, []), list):
                    raise CatalogError(f"image catalog {path}: {pattern!r}.{key} must be a list")
            if not isinstance(entry.get("env", {}) or {}, dict):
                raise CatalogError(f"image catalog {path}: {pattern!r}.env must be a mapping")
        return cls(path=path, images=images)

    def resolve(self, container: dict[str, Any]) -> LaunchSpec | None:
        """Return how to run a container, or None when no pattern matches its image.

        As in Kubernetes, the container's ``command`` replaces the entrypoint and its ``args`` replace
        ``cmd``.

        :param container: a container of a Revision spec.
        """
        image = container.get("image", "")
        for pattern, entry in self.images.items():
            if not fnmatch.fnmatchcase(image, pattern):
                continue
            command = container.get("command")
            args = container.get("args")
            entrypoint = [str(word) for word in (command if command else entry.get("entrypoint") or [])]
            rest = list(args or []) if command or args else list(entry.get("cmd") or [])
            argv = entrypoint + [str(word) for word in rest]
            if not argv:
                return None
            if argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            working_dir = Path(entry.get("workingDir") or ".")
            cwd = working_dir if working_dir.is_absolute() else (self.path.parent / working_dir).resolve()
            env = {str(key): str(value) for key, value in (entry.get("env") or {}).items()}
            return LaunchSpec(argv=argv, cwd=cwd, env=env)
        return None
