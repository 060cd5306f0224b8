"""Many bags in one run: sequentially, on a real local Ray cluster, resumed; pooled metrics; failures.

Three tiny synthetic bags (160x120, 3 frames; the networks run at their own size anyway) and one bag that
cannot be replayed. The Ray cluster is started by the command for the run and shut down at its end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ros_domain_id

from dla_perception.replay.metrics import ratios_from_counts
from dla_perception.tools.cli import main

FRAMES = 3
DETERMINISTIC = ("frames", "frames_with_output", "proximity", "missing_outputs", "ground_truth", "detection")


def _bag(path: Path, seed: int) -> Path:
    from dla_perception.synthetic.bag import write_stereo_bag
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_sequence

    camera = StereoCamera().scaled(160, 120)
    return write_stereo_bag(path, generate_sequence(seed, FRAMES, camera), camera)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from test_replay_bags import STEREO, write_bag

    root = tmp_path_factory.mktemp("fleet")
    broken = {t: m for t, m in STEREO.items() if t != "/right/image_rect"}  # opens, cannot be replayed
    return {"a": _bag(root / "bags" / "a", 9200), "b": _bag(root / "bags" / "b", 9201),
            "broken": write_bag(root / "broken", topics=broken), "root": root}


@pytest.fixture(autouse=True)
def _domains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLA_PERCEPTION_REPLAY_DOMAIN_ID", str(ros_domain_id(5)))
    # Ray workers: a domain each from this base (bases 0-69 belong to other checkouts' tests).
    monkeypatch.setenv("DLA_PERCEPTION_FLEET_DOMAIN_BASE", str(70 + ros_domain_id(0) % 20))


def _replay(*arguments: str | Path) -> int:
    return main(["replay", *map(str, arguments), "--no-progress", "--nodes", "proximity",
                 "--frame-timeout", "30"])


def _same_results(one: dict, other: dict) -> None:
    for key in DETERMINISTIC:
        assert one.get(key) == other.get(key), key
    outputs = {t: n for t, n in one["output_bag_messages"].items() if t != "/diagnostics"}  # timed
    assert outputs == {t: n for t, n in other["output_bag_messages"].items() if t != "/diagnostics"}


@pytest.fixture(scope="module")
def sequential(bags: dict[str, Path]) -> tuple[Path, int, dict]:
    out = bags["root"] / "sequential"
    manifest = bags["root"] / "ci.txt"
    manifest.write_text("# two good bags and one that cannot be replayed\nbags/b\nbroken --name broken_bag\n")
    code = main(["replay", str(bags["a"]), str(manifest), "--out", str(out), "--no-progress",
                 "--nodes", "proximity", "--frame-timeout", "30"])
    return out, code, json.loads((out / "metrics.json").read_text())  # as it was (resume rewrites it)


def test_many_bags_pool_their_counts_and_a_failure_does_not_stop_the_others(sequential) -> None:
    out, code, metrics = sequential
    assert code == 2  # a bag failed
    entries = {e["name"]: e for e in metrics["bags"]}
    assert list(entries) == ["a", "b", "broken_bag"]
    assert entries["broken_bag"]["status"] == "failed"
    assert "right/image_rect" in entries["broken_bag"]["error"]
    for name in ("a", "b"):
        assert entries[name]["status"] == "replayed" and entries[name]["frames_with_output"] == FRAMES
        assert (out / name / "report.html").is_file()
        assert (out / name / "output_bag" / "metadata.yaml").is_file()
        assert entries[name]["path"].endswith(f"bags/{name}")
    assert metrics["frames"] == 2 * FRAMES and metrics["bags_failed"] == 1
    pooled = metrics["proximity"]
    counts = [[sum(entries[n]["proximity"][k][p] for n in ("a", "b")) for p in range(len(pooled["iou"]))]
              for k in ("true_positive", "false_positive", "false_negative")]
    assert pooled["true_positive"] == counts[0]
    assert pooled["iou"] == ratios_from_counts(*counts)["iou"]  # from pooled counts, not a mean of ratios
    engines = metrics["engines"]
    assert all(e["inferences"] == sum(entries[n]["engines"][name]["inferences"] for n in ("a", "b"))
               for name, e in engines.items())
    assert "broken_bag" in (out / "report.html").read_text()


def test_resume_skips_bags_with_results_of_the_same_code_model_and_config(sequential, bags) -> None:
    out, _, _ = sequential
    before = (out / "a" / "metrics.json").read_text()
    assert _replay(bags["a"], bags["b"], "--out", out, "--resume") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["status"] for e in metrics["bags"]] == ["resumed", "resumed"]
    assert (out / "a" / "metrics.json").read_text() == before
    # Another parameter is another configuration: the bag runs again.
    assert _replay(bags["a"], "--out", out, "--resume", "-p", "alert_distance_m:=1.5") == 0
    assert json.loads((out / "metrics.json").read_text())["bags"][0]["status"] == "replayed"


def test_ray_workers_give_each_bag_the_metrics_it_has_alone_and_sequentially(sequential, bags) -> None:
    pytest.importorskip("ray", reason="the fleet extra (ray) is in requirements/dev.txt")
    _, _, sequential_metrics = sequential
    out = bags["root"] / "ray"
    assert _replay(bags["a"], bags["b"], "--workers", "2", "--out", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["status"] for e in metrics["bags"]] == ["replayed", "replayed"]
    alone = bags["root"] / "alone"
    assert _replay(bags["a"], "--out", alone) == 0
    by_name = {e["name"]: e for e in sequential_metrics["bags"]}
    for entry in metrics["bags"]:
        _same_results(entry, by_name[entry["name"]])
    _same_results(metrics["bags"][0], json.loads((alone / "metrics.json").read_text()))
    import ray

    assert not ray.is_initialized()  # the cluster started for the run is gone


def test_workers_without_ray_say_how_to_get_it(bags, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert _replay(bags["a"], bags["b"], "--workers", "2", "--out", bags["root"] / "noray") == 2
    assert "pip install 'dla_perception[fleet]'" in capsys.readouterr().err
