"""Training loop: losses fall, exact resume after kill -9, 2 processes = 1, bad setups fail."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flipkd.errors import CacheError, ConfigError
from flipkd.trainer import train_student
from flipkd.trainer.checkpoint import latest_checkpoint
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student

HERE = Path(__file__).parent
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]


def _trained(cfg, run: Path) -> tuple[list, object]:
    """Train the tiny student into ``run``; its pairs and teacher cache, for a second call."""
    pairs = make_pairs()
    cache = make_cache(run / "c", pairs)
    train_student(
        cfg, run, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
    )
    return pairs, cache


def test_every_active_loss_term_falls(tmp_path):
    cfg = tiny_config(steps=40, dropout=0.0, lr=1e-2, save_every=0)
    pairs = make_pairs()
    result = train_student(
        cfg, tmp_path, cache=make_cache(tmp_path / "c", pairs), train_pairs=pairs,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    rows = [r for r in _log(tmp_path) if r["kind"] == "train"]
    for term in ("gen", "contrast", "dist"):
        first = sum(r[term] for r in rows[:8]) / 8
        last = sum(r[term] for r in rows[-8:]) / 8
        assert last < first, f"{term} did not fall: {first:.4f} -> {last:.4f}"
    assert result.adapter_dir.is_dir()
    # the resolved config, logs and run info exist and parse
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["steps"] == 40
    assert json.loads((tmp_path / "run.json").read_text())["kind"] == "student"
    assert {"mask/kept_pos", "mask/inbatch_neg", "agree/rep_spearman", "lr"} <= set(rows[0])
    assert (tmp_path / "logs" / "tb").is_dir()


def test_kill_dash_nine_then_resume_equals_uninterrupted(tmp_path):
    steps = 150
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = [PY, str(HERE / "tiny_run.py"), "--steps", str(steps), "--dropout", "0.1"]
    proc = subprocess.Popen([*args[:2], str(killed), *args[2:]], env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        latest = (
            latest_checkpoint(killed / "checkpoints") if (killed / "checkpoints").is_dir() else None
        )
        if latest is not None and int(latest.name.split("-")[1]) >= 20:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "adapter").exists(), "run finished before the kill; make it longer"
    resumed_from = int(latest_checkpoint(killed / "checkpoints").name.split("-")[1])
    assert 0 < resumed_from < steps
    subprocess.run([*args[:2], str(killed), *args[2:], "--resume"], env=ENV, check=True,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    subprocess.run(
        [*args[:2], str(full), *args[2:]], env=ENV, check=True, stderr=subprocess.DEVNULL
    )
    a, b = _adapter(full), _adapter(killed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def _free_port() -> str:
    """A port nothing listens on now: two test runs at once (a fixed port made the second's
    torchrun fail) each get their own rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(PY).parent)) is None, reason="no torchrun"
)
@pytest.mark.parametrize(
    ("scope", "dist"), [("global", "pairs"), ("term-apart", "pairs"), ("term-apart", "texts")]
)
def test_two_gloo_processes_equal_one(tmp_path, scope, dist):
    """term-apart averages the representation terms' gradient over processes itself; L_dist
    over every text reads the gathered texts of all processes."""
    torchrun = str(Path(PY).parent / "torchrun")
    common = [str(HERE / "tiny_run.py"), "--steps", "6", "--dropout", "0", "--grad-accum", "2",
              "--clip-scope", scope, "--dist-scope", dist]  # fmt: skip
    subprocess.run([PY, common[0], str(tmp_path / "one"), *common[1:]], env=ENV, check=True,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", _free_port(), common[0],
         str(tmp_path / "two"), *common[1:]],
        env=ENV, check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    one, two = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    moved = max(float(v.abs().max()) for k, v in one.items() if "lora_B" in k)
    assert moved > 1e-3
    for key in one:
        torch.testing.assert_close(one[key], two[key], atol=1e-4, rtol=1e-3)


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(PY).parent)) is None, reason="no torchrun"
)
def test_two_gloo_processes_resume_from_their_checkpoint(tmp_path):
    """accelerate's save_state/load_state: each process's RNG, the optimizer and the schedule.

    Dropout is on, so the resumed half only matches if every process's RNG state came back.
    """
    torchrun = str(Path(PY).parent / "torchrun")
    script = str(HERE / "tiny_run.py")
    common = ["--steps", "6", "--dropout", "0.1", "--save-every", "3"]

    def run(out: Path, *extra: str) -> None:
        subprocess.run(
            [torchrun, "--nproc_per_node", "2", "--master_port", _free_port(), script, str(out),
             *common, *extra],
            env=ENV, check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    run(full)
    middle = full / "checkpoints" / "step-0000003"
    assert {"random_states_0.pkl", "random_states_1.pkl", "trainable.safetensors",
            "COMPLETE"} <= {p.name for p in middle.iterdir()}  # fmt: skip
    assert not list(middle.glob("model*.safetensors")), "the frozen base must not be saved"
    shutil.copytree(middle, resumed / "checkpoints" / middle.name)
    run(resumed, "--resume")
    a, b = _adapter(full), _adapter(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_a_resume_whose_rng_state_is_missing_is_refused(tmp_path):
    cfg = tiny_config(steps=4)
    pairs, cache = _trained(cfg, tmp_path)
    (latest_checkpoint(tmp_path / "checkpoints") / "random_states_0.pkl").unlink()
    with pytest.raises(ConfigError, match="RNG state of process 0 did not load"):
        train_student(
            cfg, tmp_path, cache=cache, train_pairs=pairs, resume=True,
            student=tiny_student(cfg), progress=False,
        )  # fmt: skip


def test_a_checkpoint_of_the_first_format_still_resumes(tmp_path):
    """Run directories written before the move to accelerate's save_state keep resuming."""
    from safetensors.torch import save_file

    cfg = tiny_config(steps=8, dropout=0.1, save_every=4)
    pairs = make_pairs()
    cache = make_cache(tmp_path / "c", pairs)
    full = tmp_path / "full"
    train_student(
        cfg, full, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
    )
    # rewrite step 4 in the first format, from the same saved state
    new = full / "checkpoints" / "step-0000004"
    old = tmp_path / "old" / "checkpoints" / "step-0000004"
    old.mkdir(parents=True)
    weights = load_file(str(new / "trainable.safetensors"))
    save_file({k.removeprefix("peft."): v for k, v in weights.items()},
              str(old / "trainable.safetensors"))  # fmt: skip
    opt = torch.load(new / "optimizer.bin", weights_only=False)
    torch.save(opt, old / "optimizer.pt")
    torch.save(torch.load(new / "custom_checkpoint_0.pkl", weights_only=False),
               old / "scheduler.pt")  # fmt: skip
    rng = torch.load(new / "random_states_0.pkl", weights_only=False)
    torch.save({"python": rng["random_state"], "numpy": rng["numpy_random_seed"],
                "torch": rng["torch_manual_seed"]}, old / "rng.pt")  # fmt: skip
    state = json.loads((new / "state.json").read_text())
    state.pop("format")
    (old / "state.json").write_text(json.dumps(state))
    (old / "COMPLETE").write_text("ok\n")
    train_student(
        cfg, tmp_path / "old", cache=cache, train_pairs=pairs, resume=True,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    a, b = _adapter(full), _adapter(tmp_path / "old")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"train.batch_size": 1}, ConfigError, "no in-batch negatives"),
        ({"train.batch_size": 500}, ConfigError, "larger than"),
        ({"unlabelled": True}, ConfigError, "no 0/1 label"),
        ({"uncached": True}, CacheError, "not in the teacher cache"),
    ],
)
def test_bad_setup_fails_before_the_first_step(tmp_path, change, error, message):
    cfg = tiny_config(steps=2)
    pairs = make_pairs()
    cache = make_cache(tmp_path / "c", pairs)
    if "train.batch_size" in change:
        cfg.train.batch_size = change["train.batch_size"]
    if change.get("unlabelled"):
        pairs[0] = pairs[0].__class__(pairs[0].text_a, pairs[0].text_b, None, 0.5, "x", 1)
    if change.get("uncached"):
        pairs[0] = pairs[0].__class__("never seen text", pairs[0].text_b, 1, None, "x", 1)
    with pytest.raises(error, match=message):
        train_student(cfg, tmp_path / "run", cache=cache, train_pairs=pairs, progress=False,
                      student=None)  # fmt: skip
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_with_another_config_is_refused(tmp_path):
    cfg = tiny_config(steps=4)
    pairs, cache = _trained(cfg, tmp_path)
    other = tiny_config(steps=4, lr=1e-3)
    with pytest.raises(ConfigError, match="made with config"):
        train_student(other, tmp_path, cache=cache, train_pairs=pairs, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train_student(cfg, tmp_path, cache=cache, train_pairs=pairs, progress=False)


def test_stale_temporary_checkpoint_is_never_trusted(tmp_path):
    cfg = tiny_config(steps=4)
    pairs, cache = _trained(cfg, tmp_path)
    ckpts = tmp_path / "checkpoints"
    # a kill during a write leaves a temporary directory, and an incomplete one lacks COMPLETE
    (ckpts / ".step-0000009.tmp-abc").mkdir()
    (ckpts / "step-0000010").mkdir()
    (ckpts / "step-0000010" / "state.json").write_text("{}")
    assert latest_checkpoint(ckpts).name == "step-0000004"


def test_step_logs_go_through_accelerate_trackers(tmp_path):
    """JSONL (flat keys, kind train/dev) and TensorBoard (kind/name scalars) from one log call."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(steps=4, save_every=0, eval_every=2, log_every=1)
    pairs = make_pairs()
    train_student(
        cfg, tmp_path, cache=make_cache(tmp_path / "c", pairs), train_pairs=pairs,
        dev_pairs=pairs[:16], student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    rows = _log(tmp_path)
    train = [r for r in rows if r["kind"] == "train"]
    dev = [r for r in rows if r["kind"] == "dev"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["step"] for r in dev] == [2, 4]
    assert "mask/kept_pos" in train[0] and "gen_roc_auc" in dev[0]
    events = EventAccumulator(str(tmp_path / "logs" / "tb"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/mask/kept_pos", "dev/gen_roc_auc"} <= scalars
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]


def test_a_resumed_run_reports_its_whole_training_time(tmp_path):
    """train_summary's seconds add the time recorded in the checkpoint resumed from; a
    checkpoint that predates the record leaves the total unknown and says so."""
    cfg = tiny_config(steps=6, save_every=3, keep_checkpoints=2)
    pairs, cache = _trained(cfg, tmp_path / "run")
    first = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    ckpts = tmp_path / "run" / "checkpoints"
    at3 = json.loads((ckpts / "step-0000003" / "state.json").read_text())["train_seconds"]
    at6 = json.loads((ckpts / "step-0000006" / "state.json").read_text())["train_seconds"]
    assert 0 < at3 < at6 <= first["seconds"] and first["seconds_complete"]
    assert first["resumed_at_step"] == 0

    def resume(run: Path) -> dict:
        train_student(cfg, run, cache=cache, train_pairs=pairs, resume=True, progress=False,
                      student=tiny_student(cfg))  # fmt: skip
        return json.loads((run / "train_summary.json").read_text())

    # a kill after step 3: the resumed half adds to the 3 steps' recorded time
    half = tmp_path / "half"
    shutil.copytree(tmp_path / "run", half)
    shutil.rmtree(half / "checkpoints" / "step-0000006")
    summary = resume(half)
    assert summary["resumed_at_step"] == 3 and summary["seconds_complete"]
    assert summary["seconds"] == pytest.approx(at3 + summary["seconds_this_invocation"])

    # a finished run read back (as a sweep or ladder does) keeps its own training time
    again = resume(tmp_path / "run")
    assert again["resumed_at_step"] == 6
    assert again["seconds"] == pytest.approx(at6 + again["seconds_this_invocation"])
    assert again["seconds"] >= first["seconds"] - 0.5

    # checkpoints written before the record: unknown unless the finished run's summary has it
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "half", old)
    for ckpt in (old / "checkpoints").iterdir():
        state = json.loads((ckpt / "state.json").read_text())
        state.pop("train_seconds")
        (ckpt / "state.json").write_text(json.dumps(state))
    kept = json.loads((old / "train_summary.json").read_text())["seconds"]
    assert resume(old)["seconds"] == pytest.approx(kept, abs=0.5)  # read from the old summary
    shutil.rmtree(old / "checkpoints" / "step-0000006")
    (old / "train_summary.json").unlink()
    partial = resume(old)
    assert not partial["seconds_complete"]
    assert partial["seconds"] == partial["seconds_this_invocation"]


def test_runs_of_different_mixed_precision_follow_each_other_in_one_process(tmp_path):
    """A sweep's variants may set train.mixed_precision: accelerate's one process-wide
    state must not refuse the second run, and the bf16 run really trains under autocast."""
    from accelerate.state import AcceleratorState

    seen = {}
    for mixed in ("no", "bf16", "no"):
        cfg = tiny_config(steps=2, save_every=0)
        cfg.train.mixed_precision = mixed
        run = tmp_path / f"{mixed}-{len(seen)}"
        _trained(cfg, run)
        seen[f"{mixed}-{len(seen)}"] = AcceleratorState().mixed_precision
        assert [r for r in _log(run) if r["kind"] == "train"]
        assert json.loads((run / "train_summary.json").read_text())["mixed_precision"] == mixed
    assert list(seen.values()) == ["no", "bf16", "no"]


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned(tmp_path, monkeypatch, caplog):
    from flipkd.trainer import precision

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.precision_warning("no") is None
    cfg = tiny_config(steps=1, save_every=0)
    cfg.train.mixed_precision = "bf16"
    with caplog.at_level("WARNING", logger="flipkd.trainer.loop"):
        _trained(cfg, tmp_path / "run")
    assert any("without bf16 instructions" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    assert precision.precision_warning("bf16") is None
