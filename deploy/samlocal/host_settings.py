"""Settings read from this machine, never written into the project: the Debian mirror its apt
uses and the package index its pip uses. The stand-in base image is built with them.

    python3 host_settings.py apt-mirror      # the Debian archive URI from /etc/apt/sources.list*
    python3 host_settings.py pip-conf        # a pip.conf with the host's http(s) index settings
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

APT = Path("/etc/apt")
# Suites of the Debian archive proper (not security, updates, backports or third-party repos).
DEBIAN_SUITES = {
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "sid",
    "oldstable",
    "stable",
    "testing",
    "unstable",
}
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host")


def apt_sources(apt: Path = APT) -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) of every enabled deb source, one-line and deb822 formats alike."""
    files = [apt / "sources.list"] if (apt / "sources.list").is_file() else []
    files += sorted((apt / "sources.list.d").glob("*.list"))
    files += sorted((apt / "sources.list.d").glob("*.sources"))
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        yield from (_deb822 if path.suffix == ".sources" else _one_line)(text)


def _one_line(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options: deb [arch=amd64 signed-by=...] uri suite ...
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = ["deb", *words[1:]]
        if len(words) >= 3:
            yield words[1], [words[2]]


def _deb822(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", ""):
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def apt_mirror(apt: Path = APT) -> str:
    for uri, suites in apt_sources(apt):
        if any(suite in DEBIAN_SUITES for suite in suites):
            return uri.rstrip("/")
    raise SystemExit("host_settings: no Debian archive found in /etc/apt/sources.list*")


def pip_conf(listed: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The host's index settings (`pip config list`, then PIP_* variables) as a pip.conf.
    file:// indexes and local paths stay behind (a container cannot see them), and so does
    everything that is not about the index."""
    if listed is None:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    environ = os.environ if environ is None else environ
    values: dict[str, list[str]] = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if sep and name in PIP_KEYS:
            values.setdefault(name, []).extend(value.strip().strip("'\"").split())
    for name in PIP_KEYS:
        env = environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            values[name] = env.split()
    lines = ["[global]"]
    for name, items in values.items():
        kept = [item for item in dict.fromkeys(items) if not item.startswith(("file:", "/"))]
        if name.endswith("url"):
            kept = [item for item in kept if item.startswith(("http://", "https://"))]
        if kept:
            lines.append(f"{name} = {' '.join(kept)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv == ["apt-mirror"]:
        print(apt_mirror())
    elif argv == ["pip-conf"]:
        sys.stdout.write(pip_conf())
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
