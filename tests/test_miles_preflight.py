"""Each preflight failure is found, on one line that names what to fix."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from searchr1.config import to_typed
from searchr1.trainers.miles.preflight import PreflightError, preflight, raise_on_problems
from tests.support.compose import compose_config
from tests.support.miles_fakes import miles_install

ENV = {"SERPER_API_KEY": "serper-secret", "WANDB_API_KEY": "wandb-secret"}


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # `ray` resolves to a stub there
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "ray").write_text("")
    (tmp_path / "bin" / "ray").chmod(0o755)
    return tmp_path, miles_install(tmp_path / "install")


def problems(overrides, env=ENV, need_ray_cli=True):
    return preflight(to_typed(compose_config(overrides)), env=env, need_ray_cli=need_ray_cli)


def test_a_complete_install_passes(base):
    assert problems(base[1]) == []


def only(found: list[str], text: str) -> None:
    assert len(found) == 1 and text in found[0], found
    assert "\n" not in found[0]


@pytest.mark.parametrize(
    "break_it,text",
    [
        (lambda root: (root / "miles" / "train.py").unlink(), "trainer.miles_root="),
        (lambda root: (root / "Megatron-LM" / "megatron").rmdir(), "trainer.megatron_root="),
        (lambda root: (root / "data" / "train.parquet").unlink(), "data.train_path="),
        (lambda root: (root / "hf" / "config.json").unlink(), "model.hf_checkpoint="),
        (lambda root: (root / "torch_dist" / "latest_checkpointed_iteration.txt").unlink(), "model.ref_load="),
    ],
)
def test_each_missing_file_is_one_line(base, break_it, text):
    tmp, overrides = base
    break_it(tmp / "install")
    only(problems(overrides), text)


def test_test_split_is_needed_only_with_eval(base):
    tmp, overrides = base
    (tmp / "install" / "data" / "test.parquet").unlink()
    assert problems(overrides) == []
    only(problems([*overrides, "trainer.eval_interval=5"]), "data.test_path=")


def test_model_without_megatron_flags(base):
    only(problems([*base[1], "model=smollm2-135m"]), "model.megatron_args is empty")


def test_serper_key_missing(base):
    only(problems(base[1], env={"WANDB_API_KEY": "x"}), "SERPER_API_KEY")


def test_wandb_key_needed_only_online(base):
    assert problems(base[1], env={"SERPER_API_KEY": "x"}) == []  # offline by default
    only(problems([*base[1], "logger.mode=online"], env={"SERPER_API_KEY": "x"}), "WANDB_API_KEY")


def test_ray_cli_missing(base, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    only(problems(base[1]), "'ray' command")
    assert problems(base[1], need_ray_cli=False) == []


def test_shared_dir_must_be_writable_here(base, tmp_path):
    (tmp_path / "a_file").write_text("")
    only(problems([*base[1], f"trainer.shared_dir={tmp_path / 'a_file' / 'sub'}"]), "trainer.shared_dir=")
    assert problems([*base[1], f"trainer.shared_dir={tmp_path / 'shared'}"]) == []


def test_on_a_cluster_paths_are_left_to_the_nodes(base):
    tmp, overrides = base
    (tmp / "install" / "miles" / "train.py").unlink()
    cluster = [*overrides, "trainer.ray_address=http://10.0.0.1:8265"]
    cfg = to_typed(compose_config(cluster))
    assert preflight(cfg, env=ENV, on_cluster=True) == []  # checked by cluster_check on every node instead
    only(preflight(cfg, env=ENV), "trainer.miles_root=")


def test_local_backend_without_urls_on_a_remote_cluster(base):
    only(problems([*base[1], "backend=local", "trainer.ray_address=http://10.0.0.1:8265"]), "backend.urls is empty")


def test_local_backend_without_urls_needs_the_corpus(base):
    tmp, overrides = base
    assert problems([*overrides, "backend=local"]) == []
    (tmp / "install" / "data" / "corpus.jsonl").unlink()
    only(problems([*overrides, "backend=local"]), "data.corpus_path=")


class _Handler(http.server.BaseHTTPRequestHandler):
    reply: tuple[int, bytes] = (200, b"{}")

    def do_POST(self):  # http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.reply
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def retriever_stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    "reply,text",
    [
        ((200, json.dumps({"result": [[]]}).encode()), None),
        ((500, b"boom"), "HTTP 500"),
        ((200, b"{}"), "without a 'result'"),
    ],
)
def test_retriever_must_answer_retrieve(base, retriever_stub, reply, text):
    server, url = retriever_stub
    _Handler.reply = reply
    found = problems([*base[1], "backend=local", f"backend.urls=[{url}]"])
    if text is None:
        assert found == []
    else:
        only(found, text)


def test_unreachable_retriever(base):
    only(problems([*base[1], "backend=local", "backend.urls=[http://127.0.0.1:9]"]), "not reachable")


def test_problems_raise_one_line_each():
    with pytest.raises(PreflightError) as err:
        raise_on_problems(["first thing", "second thing"])
    assert str(err.value).splitlines()[1:] == ["  - first thing", "  - second thing"]
    raise_on_problems([])


def test_the_ray_cli_hint_names_an_extra_that_installs_it(base, monkeypatch, tmp_path):
    import tomllib

    from packaging.requirements import Requirement

    from tests.support.compose import REPO

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (problem,) = problems(base[1])
    assert "pip install 'searchr1[miles]'" in problem
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (ray,) = [Requirement(r) for r in extras["miles"]]
    assert ray.name == "ray" and "default" in ray.extras  # `ray job submit` needs the default extra
    gpu = {Requirement(r).name for r in extras["retriever-gpu"]}
    assert gpu == {Requirement(r).name for r in extras["retriever"]} - {"faiss-cpu"} | {"faiss-gpu"}


def test_the_miles_preflight_is_the_tools_own(base, tmp_path):
    from searchr1.trainers.miles.cluster_check import cluster_spec, node_problems

    tmp, overrides = base
    replay = tmp_path / "replays"
    replay.mkdir()
    # search.replay_path and search.enabled are honoured (the search tool's preflight, the same as the local one)
    only(problems([*overrides, f"search.replay_path={replay}"]), "is a directory")
    assert problems([*overrides, "search.enabled=false"], env={"WANDB_API_KEY": "w"}) == []
    # every tool's services are checked on every node: the http tool's endpoint too
    cfg = to_typed(compose_config([*overrides, "tools=[search,http]", "http.url=http://127.0.0.1:9/api"]))
    spec = cluster_spec(cfg, None)
    assert list(spec["tools"]) == ["search", "http"] and "api_key" not in json.dumps(spec).replace("api_key_env", "")
    only(node_problems(spec), "http.url=http://127.0.0.1:9/api: nothing answers")
