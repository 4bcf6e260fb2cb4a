import asyncio
import gzip
import hashlib
import re
from collections import namedtuple
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from searchr1.data import DataError
from searchr1.data import download as dl
from searchr1.data.cli import main

CORPUS = b"".join(b'{"id": "%d", "contents": "\\"T%d\\"\\ntext %d"}\n' % (i, i, i) for i in range(2000))
PARTS = {"part_aa": bytes(range(256)) * 300, "part_ab": b"\x07" * 50_000}
SERVED = {"wiki-18.jsonl.gz": gzip.compress(CORPUS, mtime=0), **PARTS}
REVISION = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """A local server shaped like the hub: HEAD/GET on /resolve/ redirect, LFS headers, ranges."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.ranges: list[str] = []
        self.revisions: list[str] = []
        self.send_etag = True
        for name, data in SERVED.items():
            (root / name).write_bytes(data)

    async def resolve(self, request: web.Request) -> web.Response:
        self.revisions.append(request.match_info["revision"])
        path = self.root / request.match_info["name"]
        headers = {"Location": f"/files/{path.name}", "X-Linked-Size": str(path.stat().st_size)}
        if self.send_etag:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(path.read_bytes()).hexdigest()}"'
        return web.Response(status=302, headers=headers)

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range", ""))
        return web.FileResponse(self.root / request.match_info["name"])


def pin(artifacts, served=SERVED):
    """The shipped artifacts pinned to the fake hub's bytes (same repos, names and unpacking)."""
    return {
        key: dl.Artifact(
            a.output,
            tuple(
                dl.RemoteFile(r.repo, r.name, REVISION, len(served[r.name]), hashlib.sha256(served[r.name]).hexdigest())
                for r in a.parts
            ),
            a.unpack,
        )
        for key, a in artifacts.items()
    }


@pytest.fixture()
async def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "ARTIFACTS", pin(dl.ARTIFACTS))
    fake = FakeHub(tmp_path / "served")
    app = web.Application()
    app.router.add_route("*", "/datasets/{owner}/{repo}/resolve/{revision}/{name}", fake.resolve)
    app.router.add_get("/files/{name}", fake.file)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def _download(out, endpoint, what=("corpus", "e5-index")):
    return await asyncio.to_thread(dl.download, out, what=list(what), endpoint=endpoint)


async def test_downloads_verify_unpack_and_clean_up(hub, tmp_path):
    fake, endpoint = hub
    out = tmp_path / "out"
    paths = await _download(out, endpoint)
    assert paths == [out / "wiki-18.jsonl", out / "e5_Flat.index"]
    assert (out / "wiki-18.jsonl").read_bytes() == CORPUS
    assert (out / "e5_Flat.index").read_bytes() == PARTS["part_aa"] + PARTS["part_ab"]
    assert sorted(p.name for p in out.iterdir()) == ["e5_Flat.index", "wiki-18.jsonl"]
    assert fake.ranges == ["", "", ""]
    # Finished outputs are never fetched again.
    await _download(out, endpoint)
    assert len(fake.ranges) == 3


async def test_an_interrupted_download_resumes_with_a_range_request(hub, tmp_path):
    fake, endpoint = hub
    out = tmp_path / "out"
    out.mkdir()
    half = len(PARTS["part_aa"]) // 2
    (out / "part_aa.part").write_bytes(PARTS["part_aa"][:half])
    await _download(out, endpoint, what=["e5-index"])
    assert (out / "e5_Flat.index").read_bytes() == PARTS["part_aa"] + PARTS["part_ab"]
    assert fake.ranges == [f"bytes={half}-", ""]


async def test_a_corrupt_partial_file_fails_its_checksum_and_is_removed(hub, tmp_path):
    _, endpoint = hub
    out = tmp_path / "out"
    out.mkdir()
    (out / "part_aa.part").write_bytes(b"\xff" * 1000)
    with pytest.raises(DataError, match="sha256") as info:
        await _download(out, endpoint, what=["e5-index"])
    assert "\n" not in str(info.value)
    assert not (out / "part_aa.part").exists() and not (out / "e5_Flat.index").exists()
    await _download(out, endpoint, what=["e5-index"])  # a rerun recovers
    assert (out / "e5_Flat.index").read_bytes() == PARTS["part_aa"] + PARTS["part_ab"]


async def test_too_little_disk_space_fails_before_fetching_anything(hub, tmp_path, monkeypatch):
    fake, endpoint = hub
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10_000, 9_000, 1_000))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="not enough disk space") as info:
        await _download(out, endpoint)
    assert "GiB free" in str(info.value) and "\n" not in str(info.value)
    assert fake.ranges == [] and list(out.iterdir()) == []


async def test_a_missing_remote_file_is_one_error_line(hub, tmp_path, capsys):
    _, endpoint = hub
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(
            main,
            ["download", "--out", str(tmp_path / "o"), "--endpoint", endpoint + "/nothing-here", "--what", "corpus"],
        )
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "HTTP 404" in err


def test_unknown_artifacts_are_rejected_by_the_cli(capsys):
    with pytest.raises(SystemExit) as info:
        main(["download", "--out", "x", "--what", "bm25-index"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_every_shipped_file_is_pinned_to_a_commit_a_size_and_a_sha256():
    files = [r for artifact in dl.ARTIFACTS.values() for r in artifact.parts]
    assert {r.name for r in files} == {"wiki-18.jsonl.gz", "part_aa", "part_ab"}
    for remote in files:
        assert re.fullmatch(r"[0-9a-f]{40}", remote.revision) and re.fullmatch(r"[0-9a-f]{64}", remote.sha256)
        assert remote.size > 1 << 30
        assert f"/resolve/{remote.revision}/" in dl.file_url("https://hub", remote)  # never resolve/main


async def test_files_are_fetched_at_the_pinned_revision(hub, tmp_path):
    fake, endpoint = hub
    await _download(tmp_path / "out", endpoint)
    assert fake.revisions and set(fake.revisions) == {REVISION}


async def test_a_hub_serving_other_bytes_with_their_own_hash_is_refused_before_fetching(hub, tmp_path):
    """The server's own sha256 matches what it serves; only the pin in the package tells it is not our file."""
    fake, endpoint = hub
    (fake.root / "part_ab").write_bytes(b"\x08" * 50_000)  # same size, other bytes
    with pytest.raises(DataError, match="pinned") as info:
        await _download(tmp_path / "out", endpoint, what=["e5-index"])
    assert "\n" not in str(info.value) and fake.ranges == []


async def test_a_file_without_a_reported_hash_is_checked_against_the_pin(hub, tmp_path):
    """Before, a file without an etag was checked by its size alone."""
    fake, endpoint = hub
    fake.send_etag = False
    (fake.root / "part_ab").write_bytes(b"\x08" * 50_000)  # same size, other bytes
    out = tmp_path / "out"
    with pytest.raises(DataError, match="failed its sha256 check"):
        await _download(out, endpoint, what=["e5-index"])
    assert len(fake.ranges) == 2 and not (out / "part_ab.part").exists() and not (out / "e5_Flat.index").exists()
