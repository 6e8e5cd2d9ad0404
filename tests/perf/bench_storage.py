"""The storage benchmark (`make bench-storage`): a 1 GiB upload and download over loopback.

Local backend: throughput of `fluxbase serve` storing and serving the file,
as a ratio of `cp` of the same file on the same disk in the same run (and of
`cp` followed by an fsync of the copy, the durability the server gives).
S3 backend: the same transfers through Fluxbase to a moto server process, as
a ratio of a direct aiobotocore transfer (same part size) to the same moto
server.  The serving process's peak RSS (VmHWM) must stay under 150 MB:
bodies are streamed, never held.  Writes its section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from aiobotocore.session import get_session  # noqa: E402
from generated_section import write_generated_section  # noqa: E402

from fluxbase.db.migrate import Migrator  # noqa: E402
from fluxbase.security.api_keys import api_key  # noqa: E402
from harness import (  # noqa: E402 - the test harness is found through the path set above
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    ServerProcess,
    free_port,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)
from storage_support import MOTO_SERVER, s3_env  # noqa: E402

REPORT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- bench-storage:begin (written by tests/perf/bench_storage.py) -->"
END = "<!-- bench-storage:end -->"
SERVICE_KEY = api_key(JWT_SECRET, "service_role")
CHUNK = 1024 * 1024
PART_SIZE = 8 * 1024 * 1024  # the S3 backend's part size
RSS_GOAL_MB = 150.0
TRANSFER_TIMEOUT = 900.0


@dataclass
class Transfer:
    seconds: float
    size: int

    @property
    def mib_s(self) -> float:
        return self.size / (1024 * 1024) / self.seconds


@dataclass
class Result:
    backend: str
    upload: Transfer
    download: Transfer
    baseline_up: Transfer
    baseline_down: Transfer
    baseline_label: str
    peak_rss_mb: float
    extra: dict[str, Transfer]


def make_file(path: Path, size: int) -> None:
    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        for _ in range(size // CHUNK):
            f.write(block)
        os.fsync(f.fileno())


def drop_copy(path: Path) -> None:
    path.unlink(missing_ok=True)


def timed_cp(source: Path, target: Path, fsync: bool) -> Transfer:
    drop_copy(target)
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    if fsync:
        subprocess.run(["sync", str(target)], check=True)
    return Transfer(time.perf_counter() - started, source.stat().st_size)


def serving_pid(server: ServerProcess) -> int:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if len(pids) == 1 else server.process.pid


def peak_rss_mb(pid: int) -> float:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def http_upload(base: str, source: Path) -> Transfer:
    headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/octet-stream"}
    timeout = aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await session.post(f"{base}/storage/v1/bucket", json={"name": "bench"}, headers=headers)
        size = source.stat().st_size
        started = time.perf_counter()
        async with session.post(
            f"{base}/storage/v1/object/bench/big.bin",
            data=_file_chunks(source),
            headers={**headers, "Content-Length": str(size), "x-upsert": "true"},
        ) as response:
            body = await response.text()
            if response.status != 200:
                raise RuntimeError(f"upload failed: {response.status} {body}")
        return Transfer(time.perf_counter() - started, size)


async def http_download(base: str, target: Path) -> Transfer:
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    drop_copy(target)
    timeout = aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        async with session.get(f"{base}/storage/v1/object/bench/big.bin", headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"download failed: {response.status}")
            with open(target, "wb") as f:
                async for chunk in response.content.iter_chunked(CHUNK):
                    f.write(chunk)
        return Transfer(time.perf_counter() - started, target.stat().st_size)


async def direct_s3(moto_url: str, source: Path, target: Path) -> tuple[Transfer, Transfer]:
    """The same bytes straight to moto with aiobotocore: multipart of PART_SIZE, then one GET."""
    session = get_session()
    async with session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as s3:
        await s3.create_bucket(Bucket="direct")
        size = source.stat().st_size
        started = time.perf_counter()
        upload_id = (await s3.create_multipart_upload(Bucket="direct", Key="big"))["UploadId"]
        parts = []
        with open(source, "rb") as f:
            number = 1
            while part := f.read(PART_SIZE):
                answer = await s3.upload_part(
                    Bucket="direct", Key="big", UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                number += 1
        await s3.complete_multipart_upload(
            Bucket="direct", Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        up = Transfer(time.perf_counter() - started, size)
        drop_copy(target)
        started = time.perf_counter()
        answer = await s3.get_object(Bucket="direct", Key="big")
        with open(target, "wb") as f:
            while chunk := await answer["Body"].read(CHUNK):
                f.write(chunk)
        down = Transfer(time.perf_counter() - started, target.stat().st_size)
        await s3.delete_object(Bucket="direct", Key="big")
        return up, down


def check_same(source: Path, copy: Path) -> None:
    result = subprocess.run(["cmp", str(source), str(copy)], capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"{copy} differs from {source}: {result.stdout!r}")


def run_backend(backend: str, dsn: str, work: Path, source: Path, moto_url: str | None) -> Result:
    root = work / f"storage-{backend}"
    env = server_env(
        dsn,
        FLUXBASE_STORAGE_LOCAL_PATH=str(root),
        FLUXBASE_STORAGE_MAX_FILE_SIZE=str(4 * 1024**3),
        FLUXBASE_REALTIME_ENABLED="false",
        FLUXBASE_LOG_LEVEL="warn",
    )
    if backend == "s3":
        assert moto_url is not None
        env.update(s3_env(moto_url, "bench"))
    server = start_server(env, "serve", "--no-migrate", "--workers", "1")
    extra: dict[str, Transfer] = {}
    try:
        pid = serving_pid(server)
        upload = asyncio.run(http_upload(server.url, source))
        download = asyncio.run(http_download(server.url, work / "downloaded.bin"))
        check_same(source, work / "downloaded.bin")
        rss = peak_rss_mb(pid)
    finally:
        server.terminate(timeout=60)
    if backend == "local":
        # Upload against cp of the source; download against cp of the stored blob (reads it back).
        baseline_up = timed_cp(source, work / "cp.bin", fsync=False)
        extra["cp + fsync"] = timed_cp(source, work / "cp.bin", fsync=True)
        [blob] = [p for p in (root / "objects").glob("*/*") if p.is_file()]
        baseline_down = timed_cp(blob, work / "cp.bin", fsync=False)
        label = "`cp` of the same file on the same disk"
    else:
        assert moto_url is not None
        baseline_up, baseline_down = asyncio.run(direct_s3(moto_url, source, work / "direct.bin"))
        check_same(source, work / "direct.bin")
        label = "a direct aiobotocore transfer to the same moto server"
    for name in ("downloaded.bin", "cp.bin", "direct.bin"):
        drop_copy(work / name)
    shutil.rmtree(root, ignore_errors=True)
    return Result(backend, upload, download, baseline_up, baseline_down, label, rss, extra)


def report(results: list[Result], size: int, load: tuple[str, str]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        f"Measured {when} with `make bench-storage` (`python tests/perf/bench_storage.py "
        f"--size-mib {size // (1024 * 1024)}`): one `fluxbase serve` worker, the client (aiohttp, "
        "streaming from and to files on the same disk) and PostgreSQL on the same machine; "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs. "
        f"Load average (1 min) before and after: {load[0]}, {load[1]}; other sessions' suites share "
        "the machine.",
        "",
        "| backend | transfer | Fluxbase MiB/s | baseline MiB/s | ratio | baseline |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        for name, mine, theirs in (
            ("upload 1 GiB", r.upload, r.baseline_up),
            ("download 1 GiB", r.download, r.baseline_down),
        ):
            lines.append(
                f"| {r.backend} | {name} | {mine.mib_s:,.0f} | {theirs.mib_s:,.0f} | "
                f"{mine.mib_s / theirs.mib_s:.2f} | {r.baseline_label} |"
            )
        for name, t in r.extra.items():
            lines.append(
                f"| {r.backend} | upload 1 GiB | {r.upload.mib_s:,.0f} | {t.mib_s:,.0f} | "
                f"{r.upload.mib_s / t.mib_s:.2f} | `{name}` (the durability the server gives) |"
            )
    lines += ["", "Peak RSS of the serving process (VmHWM, whole run of that backend):", ""]
    for r in results:
        verdict = "met" if r.peak_rss_mb < RSS_GOAL_MB else "NOT met"
        lines.append(f"- {r.backend}: {r.peak_rss_mb:.0f} MB (goal < {RSS_GOAL_MB:.0f} MB: {verdict})")
    lines += ["", END]
    return "\n".join(lines)


def write_report(section: str) -> None:
    write_generated_section(REPORT, section, BEGIN, END, "Storage")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--no-report", action="store_true")
    options = parser.parse_args()
    size = options.size_mib * 1024 * 1024
    load_before = f"{os.getloadavg()[0]:.2f}"
    # On the repository's disk (the same one cp and the storage root use), in an ignored folder.
    (ROOT / ".fluxbase").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=ROOT / ".fluxbase"))
    cluster = start_local_cluster()
    moto: subprocess.Popen[bytes] | None = None
    results: list[Result] = []
    try:
        dsn = cluster.dsn(database="postgres")
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        source = work / "source.bin"
        make_file(source, size)
        for backend in options.backends.split(","):
            moto_url = None
            if backend == "s3":
                port = free_port()
                moto = subprocess.Popen(
                    [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(2)
                moto_url = f"http://127.0.0.1:{port}"
            result = run_backend(backend, dsn, work, source, moto_url)
            results.append(result)
            print(
                f"{backend}: upload {result.upload.mib_s:.0f} MiB/s "
                f"(baseline {result.baseline_up.mib_s:.0f}), "
                f"download {result.download.mib_s:.0f} MiB/s (baseline {result.baseline_down.mib_s:.0f}), "
                f"peak RSS {result.peak_rss_mb:.0f} MB",
                flush=True,
            )
            if moto is not None:
                moto.terminate()
                moto.wait(timeout=30)
                moto = None
    finally:
        if moto is not None:
            moto.terminate()
        stop_local_cluster(cluster)
        shutil.rmtree(work, ignore_errors=True)
    section = report(results, size, (load_before, f"{os.getloadavg()[0]:.2f}"))
    print(section)
    if not options.no_report:
        write_report(section)
    return 0 if all(r.peak_rss_mb < RSS_GOAL_MB for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
