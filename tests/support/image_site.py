"""What a function's image would hold, installed into a scratch directory, to run handlers from.

The Dockerfile's install steps are repeated into a directory (the shared package, then the
function's requirements.txt); a clean interpreter (`python -I -S`, see `bootstrap`)
with only that directory and the function's folder on sys.path then runs the handler as the
image would: nothing of the development environment (no site-packages, no editable install, no
PYTHONPATH) is importable. tests/deploy checks with it that the image's packages suffice; the
cold-start benchmark times handlers with it, so that neither the gateway nor its baseline
imports what only the development environment holds.

Each install is kept in the temporary directory under a hash of its inputs, so only the first
use after a change pays for pip.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"
SITES = Path(tempfile.gettempdir()) / "simpleai-image-contents"
PIP = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def image_site(function: str) -> Path:
    """The packages the function's image would hold, installed as the Dockerfile installs them."""
    requirements = requirement_lines(FUNCTIONS / function / "requirements.txt")
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in sorted(COMMON.rglob("*")):
        parts = set(path.relative_to(COMMON).parts)
        if path.is_file() and not parts & {"__pycache__", "build"} and ".egg-info" not in str(path):
            digest.update(str(path.relative_to(COMMON)).encode() + path.read_bytes())
    digest.update("\n".join(requirements).encode())
    site = SITES / digest.hexdigest()[:16]
    if (site / ".complete").exists():
        return site
    subprocess.run([*PIP, "--target", str(site), str(COMMON)], check=True)
    if requirements:
        subprocess.run(
            [*PIP, "--target", str(site), "-r", str(FUNCTIONS / function / "requirements.txt")],
            check=True,
        )
    (site / ".complete").touch()
    return site


def packages_site(requirements: Sequence[str]) -> Path:
    """Only `requirements` (pip requirement specifiers) and their dependencies, installed the
    same way: the image of a function that needs nothing else."""
    inputs = [f"{sys.version_info[:2]}", *requirements]
    digest = hashlib.sha256("\n".join(inputs).encode())
    site = SITES / f"packages-{digest.hexdigest()[:16]}"
    if (site / ".complete").exists():
        return site
    subprocess.run([*PIP, "--target", str(site), *requirements], check=True)
    (site / ".complete").touch()
    return site


def installed_version(site: Path, distribution: str) -> str:
    """The version of `distribution` installed in `site`."""
    found = list(metadata.distributions(name=distribution, path=[str(site)]))
    if not found:
        raise LookupError(f"{distribution} is not installed in {site}")
    return found[0].version


def bootstrap(*path: Path) -> str:
    """Python code that puts `path` (in that order) first on sys.path: in a clean interpreter
    (`python -I -S`, which leaves out site-packages, the user site, PYTHONPATH and the script's
    folder), the part of sys.path a Lambda image sets up (its task root)."""
    return f"import sys; sys.path[:0] = {[str(entry) for entry in path]!r}\n"
