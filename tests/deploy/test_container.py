"""The image, for real: built with podman from deploy/Dockerfile and run against a PostgreSQL on
this host. `make test-containers` runs it (FLUXBASE_CONTAINER_TESTS=1); it takes minutes.

No image registry is reachable, so the base image is bootstrapped from Debian packages with
mmdebstrap and `podman import`ed (cached under /var/tmp/fluxbase-containers). podman runs
daemonless with runc, cgroupfs and no default ulimits, from a CONTAINERS_CONF of the test's
own, and containers use the host network. pip inside the build reaches PyPI through this
machine's CA bundle, passed as a build secret: the test proves no layer keeps it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from deploy_support import DEPLOY, ROOT, tool

from fluxbase.db.embedded import EmbeddedPostgres
from harness import JWT_SECRET, free_port

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(
        not os.environ.get("FLUXBASE_CONTAINER_TESTS"), reason="slow: run by `make test-containers`"
    ),
]

CACHE = Path("/var/tmp/fluxbase-containers")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_IMAGE = (
    "localhost/fluxbase-base:bookworm-" + hashlib.sha256(" ".join(BASE_PACKAGES).encode()).hexdigest()[:12]
)
IMAGE = "localhost/fluxbase:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", re.S)


def podman_env() -> dict[str, str]:
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    conf.write_text(
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        "[containers]\ndefault_ulimits = []\n"
    )
    storage = CACHE / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{CACHE / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [tool("podman"), *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def ensure_base_image() -> None:
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    tarball = CACHE / "base.tar"
    subprocess.run(
        [tool("mmdebstrap"), "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
         str(tarball)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    podman("import", str(tarball), BASE_IMAGE, timeout=300)
    tarball.unlink()


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """deploy/Dockerfile built with the bootstrapped base for both BASE_IMAGE and NODE_IMAGE
    (no admin/ yet, so the dashboard stage runs no npm)."""
    ensure_base_image()
    podman(
        "build", "--network", "host", "--format", "docker", "-f", str(DEPLOY / "Dockerfile"),
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"NODE_IMAGE={BASE_IMAGE}",
        "--secret", f"id=ca_bundle,src={CA_BUNDLE}", "-t", IMAGE, str(ROOT),
        timeout=900,
    )  # fmt: skip
    yield IMAGE
    # Each build leaves its stages behind as untagged images: keep the cache from growing.
    podman("image", "prune", "--force", check=False)


@pytest.fixture(scope="module")
def host_postgres() -> Iterator[str]:
    """A PostgreSQL on this host reached over TCP on 127.0.0.1 with a password, as a container
    reaches a real one (the harness's clusters listen on a private socket only)."""
    cluster = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="fluxbase-pg-tcp-")), port=free_port())
    cluster.start()
    password = secrets.token_hex(16)
    with psycopg.connect(cluster.dsn(database="postgres"), autocommit=True) as conn:
        conn.execute("alter system set listen_addresses = '127.0.0.1'")
        conn.execute(f"alter role postgres password '{password}'")
    hba = cluster.pgdata / "pg_hba.conf"
    hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.stop()
    cluster.start()
    try:
        yield f"postgresql://postgres:{password}@127.0.0.1:{cluster.port}/fluxbase"
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


def test_version_runs_inside_the_image(image: str) -> None:
    result = podman("run", "--rm", "--network", "host", image, "--version")
    assert re.fullmatch(r"fluxbase \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_the_image_serves_as_non_root_and_stops_cleanly_on_sigterm(image: str, host_postgres: str) -> None:
    port = free_port()
    name = f"fluxbase-test-{secrets.token_hex(4)}"
    env = [
        "-e", f"DATABASE_URL={host_postgres}", "-e", f"FLUXBASE_JWT_SECRET={JWT_SECRET}",
        "-e", f"FLUXBASE_SERVER_ADDRESS=127.0.0.1:{port}",
    ]  # fmt: skip
    podman("run", "-d", "--name", name, "--network", "host", *env, image)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/ready", timeout=2) as response:
                    status = response.status
                    break
            except OSError:
                state = podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
                assert state == "running", podman("logs", name).stderr
                time.sleep(0.5)
        assert status == 200, podman("logs", name, check=False).stdout
        # The config test inside the running container: the same image, the same environment.
        check = podman("exec", name, "fluxbase", "--config-test", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        assert podman("exec", name, "id", "-u").stdout.strip() != "0"
        assert podman("top", name, "user").stdout.split()[1:] == ["fluxbase"] * len(
            podman("top", name, "user").stdout.split()[1:]
        )
        # The image's HEALTHCHECK, run on demand (no systemd timers here).
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        started = time.monotonic()
        podman("stop", "--time", "40", name, timeout=60)
        assert time.monotonic() - started < 30, "SIGTERM did not stop the server: podman had to kill it"
        assert podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip() == "0"
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        assert '"level":"error"' not in logs.replace(" ", ""), logs
    finally:
        podman("rm", "--force", name, check=False)


def test_the_published_image_keeps_no_build_credentials(image: str) -> None:
    """The CA bundle and pip/npm settings were build secrets: no layer holds them. The CAs this
    machine adds (/usr/local/share/ca-certificates, e.g. a TLS-intercepting proxy's) are what
    the bundle has that public bundles, such as pip's certifi, do not."""
    local_cas = [PEM.findall(path.read_text()) for path in LOCAL_CAS.glob("*.crt")]
    needles = [body.splitlines()[1] for bodies in local_cas for body in bodies]
    patterns = " ".join(f"-e '{needle}'" for needle in needles)
    search = (
        f"grep -rlF {patterns} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev;" if needles else ""
    )
    found = podman(
        "run", "--rm", "--network", "host", "--user", "0", "--entrypoint", "sh", image, "-c",
        f"{search} find / -xdev \\( -name pip.conf -o -name .npmrc -o -name constraints.txt \\) -print;"
        " ls /run/secrets 2>/dev/null; true",
    ).stdout  # fmt: skip
    assert found.strip() == "", found
    history = podman("history", "--no-trunc", image).stdout
    assert not any(needle in history for needle in needles)
