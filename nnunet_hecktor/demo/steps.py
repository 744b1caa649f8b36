"""Resumable, timed demo steps and stock nnU-Net commands with a live progress bar.

A step is complete when its done-marker ``<output>/demo_steps/<name>.json`` exists; the marker is
written last (atomically), so an interrupted step leaves no marker and is redone on the next run,
while completed steps are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import write_json_atomic

logger = logging.getLogger(__name__)

STEPS_FOLDER = "demo_steps"


@dataclass
class StepRunner:
    """Runs the demo's steps in order, printing what each does and its time, skipping completed ones.

    ``seconds[name]`` holds the time of every step (measured now, or read back from its marker for
    a step completed in an earlier run; ``resumed`` lists those). ``order`` names every step: when
    a step runs, the markers of the steps after it are removed (their outputs are stale), and
    ``ran_earlier`` tells a step whether an earlier step ran in this invocation.
    """

    output: Path
    order: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    ran_earlier: bool = False
    _index: int = 0

    def marker(self, name: str) -> Path:
        return self.output / STEPS_FOLDER / f"{name}.json"

    def is_done(self, name: str) -> bool:
        return self.marker(name).is_file()

    def run(self, name: str, description: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` unless step ``name`` is complete; returns what ``fn`` returned (its JSON-able
        ``info`` when skipped)."""
        self._index += 1
        prefix = f"[demo] step {self._index}/{len(self.order)} {name}"
        marker = self.marker(name)
        if marker.is_file():
            stored = json.loads(marker.read_text())
            self.seconds[name] = float(stored["seconds"])
            if stored.get("cpu_seconds") is not None:
                self.cpu_seconds[name] = float(stored["cpu_seconds"])
            self.info[name] = stored.get("info")
            self.resumed.append(name)
            logger.info("%s: already complete (%.0f s in an earlier run), skipped", prefix, stored["seconds"])
            return stored.get("info")
        logger.info("%s: %s", prefix, description)
        for later in self.order[self.order.index(name) + 1:]:
            self.marker(later).unlink(missing_ok=True)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        value = fn()
        seconds = round(time.perf_counter() - start, 1)
        # CPU time of this process and its finished children (nnU-Net): on a shared machine it says
        # more about the step's cost than the wall time does.
        cpu = round(_cpu_seconds() - cpu_start, 1)
        self.seconds[name], self.cpu_seconds[name] = seconds, cpu
        self.info[name] = value if _is_jsonable(value) else None
        write_json_atomic(marker, {"step": name, "seconds": seconds, "cpu_seconds": cpu,
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "info": self.info[name]})
        logger.info("%s: done in %s (CPU %s)", prefix, _duration(seconds), _duration(cpu))
        self.ran_earlier = True
        return value


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _is_jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


#: nnU-Net training log lines that advance the progress bar / carry the figures shown on it.
_EPOCH = re.compile(r"Epoch (\d+)\s*$")
_PSEUDO_DICE = re.compile(r"Pseudo dice \[([^\]]*)\]")
_PLANNING_STAGES = (("Fingerprint extraction", "fingerprint"), ("Experiment planning", "planning"),
                    ("Preprocessing dataset", "preprocessing"))


def run_nnunet_with_progress(name: str, args: Sequence[str], env: Mapping[str, str], log_file: Path,
                             total: int | None, unit: str, kind: str) -> None:
    """Run a stock ``nnUNetv2_*`` command, streaming its output to ``log_file`` and a tqdm bar.

    ``kind="train"`` advances the bar at every ``Epoch N`` line (``total`` epochs) and shows the
    last pseudo Dice; ``kind="plan"`` advances it at each planning stage (``total`` = 3).
    Raises :class:`HecktorError` with the log's tail when the command fails.
    """
    from tqdm import tqdm

    from nnunet_hecktor.nnunet_env import nnunet_command

    cmd = nnunet_command(name) + [str(a) for a in args]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: list[str] = []
    with log_file.open("w", encoding="utf-8") as log, tqdm(total=total, desc=name, unit=unit) as bar:
        log.write(f"$ {' '.join(cmd)}\n")
        # Unbuffered: nnU-Net's prints reach the pipe (and the bar) as they happen, not in 8 kB blocks.
        process = subprocess.Popen(cmd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert process.stdout is not None
        for raw in process.stdout:
            log.write(raw)
            for line in raw.replace("\r", "\n").splitlines():
                line = line.strip()
                if not line:
                    continue
                tail = (tail + [line])[-30:]
                if kind == "train":
                    match = _EPOCH.search(line)
                    if match:
                        bar.n = int(match.group(1))
                        bar.refresh()
                    dice = _PSEUDO_DICE.search(line)
                    if dice:
                        bar.set_postfix_str(f"pseudo Dice [{dice.group(1)}]")
                elif kind == "plan":
                    for i, (key, label) in enumerate(_PLANNING_STAGES):
                        if key in line:
                            bar.n = i
                            bar.set_postfix_str(label)
                            bar.refresh()
        code = process.wait()
        if code == 0 and total:
            bar.n = total
            bar.refresh()
    if code != 0:
        raise HecktorError(f"{name} failed (exit {code}); log: {log_file}\n" + "\n".join(tail[-20:]))
