"""What the sam-local CI tooling reads from the host and how it rewrites container creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.samlocal.docker_api_proxy import rewrite_create
from deploy.samlocal.host_settings import apt_mirror, pip_conf


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_mirror_comes_from_a_deb822_source_of_the_debian_archive(tmp_path: Path) -> None:
    write(
        tmp_path / "sources.list.d" / "debian.sources",
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: trixie-security\n\n"
        "Types: deb\nURIs: http://mirror.test/debian/\nSuites: trixie trixie-updates\n",
    )
    write(
        tmp_path / "sources.list.d" / "other.sources",
        "Types: deb\nURIs: https://vendor.test/apt\nSuites: nodistro\n",
    )

    assert apt_mirror(tmp_path) == "http://mirror.test/debian"


def test_mirror_comes_from_a_one_line_source_and_skips_disabled_stanzas(tmp_path: Path) -> None:
    write(
        tmp_path / "sources.list.d" / "off.sources",
        "Enabled: no\nTypes: deb\nURIs: http://off.test/debian\nSuites: bookworm\n",
    )
    write(
        tmp_path / "sources.list",
        "# deb http://commented.test/debian bookworm main\n"
        "deb-src http://src.test/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.test/debian bookworm main\n",
    )

    assert apt_mirror(tmp_path) == "http://one.test/debian"


def test_no_debian_source_is_an_error_not_a_guess(tmp_path: Path) -> None:
    write(tmp_path / "sources.list", "deb https://vendor.test/apt nodistro main\n")

    with pytest.raises(SystemExit, match="no Debian archive"):
        apt_mirror(tmp_path)


def test_pip_conf_keeps_only_index_settings_a_container_can_use() -> None:
    listed = (
        "global.index-url='https://index.test/simple'\n"
        "global.extra-index-url='file:///opt/pypi/simple https://extra.test/simple'\n"
        "global.find-links='/opt/wheels'\n"
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
    )

    conf = pip_conf(listed, environ={"PIP_TRUSTED_HOST": "index.test"})

    assert conf.splitlines() == [
        "[global]",
        "index-url = https://index.test/simple",
        "extra-index-url = https://extra.test/simple",
        "trusted-host = index.test",
    ]


def test_pip_environment_overrides_the_configuration() -> None:
    conf = pip_conf(
        "global.index-url='https://old.test/simple'\n",
        environ={"PIP_INDEX_URL": "https://new.test/simple"},
    )

    assert "index-url = https://new.test/simple" in conf.splitlines()
    assert "old.test" not in conf


def sam_create_body() -> dict[str, Any]:
    """A container-create body as SAM CLI sends it for a warm function container."""
    return {
        "Image": "chatfunction:rapid-x86_64",
        "Entrypoint": [
            "/var/rapid/aws-lambda-rie",
            "--log-level",
            "error",
            "/lambda-entrypoint.sh",
        ],
        "Cmd": ["app.handler"],
        "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {
            "Binds": ["/tmp/samcli/rapid:/var/rapid:ro"],
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5123"}]},
        },
    }


def test_create_gets_the_mount_and_the_host_network() -> None:
    body = rewrite_create(sam_create_body(), ["/srv/audit"], port=lambda: 7001)

    assert body["HostConfig"]["Binds"] == [
        "/tmp/samcli/rapid:/var/rapid:ro",
        "/srv/audit:/srv/audit",
    ]
    assert body["HostConfig"]["NetworkMode"] == "host"
    assert "PortBindings" not in body["HostConfig"] and "ExposedPorts" not in body


def test_emulator_listens_where_sam_expects_it_and_has_its_own_runtime_api_port() -> None:
    ports = iter([7001, 7002])
    first = rewrite_create(sam_create_body(), [], port=lambda: next(ports))["Entrypoint"]
    second = rewrite_create(sam_create_body(), [], port=lambda: next(ports))["Entrypoint"]

    assert first[:3] == [
        "/var/rapid/aws-lambda-rie",
        "--runtime-interface-emulator-address",
        "127.0.0.1:5123",
    ]
    assert first[3:5] == ["--runtime-api-address", "127.0.0.1:7001"]
    assert second[3:5] == ["--runtime-api-address", "127.0.0.1:7002"]
    assert first[5:] == ["--log-level", "error", "/lambda-entrypoint.sh"]


def test_other_containers_keep_their_entrypoint() -> None:
    body = {"Image": "busybox", "Entrypoint": ["sh"], "HostConfig": {}}

    assert rewrite_create(body, ["/srv/audit"])["Entrypoint"] == ["sh"]
