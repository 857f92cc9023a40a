"""The heap the firmware needs, measured as the board lives (issue 19): the same frozen lib/ in a
32-bit MicroPython unix build configured as the MKR GSM 1400's samd21 build (firmware/host),
running the project's own boot.py and main.py from a littlefs as at power-up, with
`-X heapsize` = the board's GC heap (plus the measured cost of the host doubles), its modem
UART on the virtual SARA modem of `ztp.stack.Stack`, until the configuration is confirmed.

Theory of operation.
  board_budget()  the board's GC heap and file system size from the image the board runs
                  (`ztp.firmware._image.build_image().budget`: gc_heap = _sstack - _ebss, fs =
                  _sflash_fs); without it, 22,216 B (the stock SAMD21 build) and 32 KB, with a
                  printed note
  HeapRig         the build (`_heap_build.build_host`), one or more Stacks (service + gateway
                  + virtual modem + SIM on loopback) on an event loop of its own thread, the
                  path's seed file systems, and the doubles' credit: a calibration power-up
                  with an empty file system prints what the doubles cost (their module,
                  classes, Pin table, file objects); every run gets heap + credit and checks
                  that it measured the same credit
  PATHS           what is on the flash and what the modem does for each path, and the log
                  lines that prove the path was taken
  min_heap()      per path, the smallest heap in 1 KB steps at which the path completes
                  (bisection, assumed monotonic, then checked again at the answer and one
                  step below); every path must also pass at the board's heap

Everything a run needs from the firmware is in _heap_run's contract ("ztp: configuration
confirmed", /ztp/settings.json with "profile", "good_after_ms", "repl_window_ms").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ztp.firmware._heap_build import (
    FIRMWARE,
    VFS_BLOCK,
    HeapBuildError,
    HostBuild,
    build_host,
    dump_fs,
    make_fs,
)
from ztp.firmware._heap_run import RunResult, gc_blocks, power_up

BOARD_HEAP_FALLBACK = 22216  # stock SAMD21 build: _sstack - _ebss (shared/vendor/README.md)
FS_FALLBACK = 32 * 1024
HEAP_GOAL = 16 * 1024
STEP = 1024
SETTINGS = {"profile": "mkrgsm1400", "good_after_ms": 1500, "repl_window_ms": 0}
RUN_TIMEOUT_S = 45.0
_SEED_HEAP = 64 * 1024  # for setup runs that only make a path's starting file system


@dataclass(frozen=True)
class BoardBudget:
    """The board's GC heap and file system (bytes); `from_image` False = the fallback figures
    (`note` says why); `image` the image's Budget when there is one."""

    gc_heap: int
    fs_bytes: int
    from_image: bool
    note: str = ""
    image: Any = None

    @property
    def fs_blocks(self) -> int:
        return self.fs_bytes // VFS_BLOCK


def board_budget(src: Path | None = None, say: Callable[[str], None] | None = None
                 ) -> BoardBudget:
    """The board's heap and FS from its image (built or cached); the fallback with a note when
    the image module is not there or cannot build (the note goes to `say`, default stderr)."""
    say = say or (lambda m: print(m, file=sys.stderr))
    try:
        from ztp.firmware._image import build_image
    except ImportError as e:
        note = f"no board image module ({e})"
    else:
        try:
            img = build_image(src)
            b = img.budget
            return BoardBudget(gc_heap=int(b.gc_heap), fs_bytes=int(b.fs), from_image=True,
                               image=b)
        except Exception as e:  # ImageError, SourceError: fall back, say why
            note = f"board image not built ({type(e).__name__}: {str(e).splitlines()[0]})"
    note += (f": board heap {BOARD_HEAP_FALLBACK:,} B (stock SAMD21 build), file system "
             f"{FS_FALLBACK // 1024} KB")
    say("heap: " + note)
    return BoardBudget(BOARD_HEAP_FALLBACK, FS_FALLBACK, False, note)


# ---- paths -------------------------------------------------------------------------------------
_CONFIG_PREV = ('{"configuration":{"version":"2021-01-01","config":'
                '[{"action":"iot:Alarm","effect":"Off"}]}}')
_CONFIG_TRIAL = ('{"configuration":{"version":"2021-03-01","config":'
                 '[{"action":"iot:Alarm","effect":"Off"}]}}')


@dataclass(frozen=True)
class PathSpec:
    """One way through power-up. `files`: seed files besides boot.py, main.py and
    ztp/settings.json; `after`: start from the file system a passing run of that path left;
    `sim_busy`: AT+CSIM commands the modem answers +CME ERROR: 14 first; `expect`: log lines
    that show the path was taken (besides the confirmation); `until`: the run goes on past the
    confirmation up to this log line (the run after it)."""

    name: str
    title: str
    expect: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()
    after: str | None = None
    sim_busy: int = 0
    until: str | None = None


PATHS: dict[str, PathSpec] = {p.name: p for p in (
    PathSpec("first_boot", "first boot: empty /ztp, configuration applied",
             ("ztp: result OK",)),
    PathSpec("second_boot", "second boot on the same file system: unchanged",
             ("ztp: result UNCHANGED",), after="first_boot"),
    PathSpec("rollback", "rollback at boot: unconfirmed after 3 boots, then applied",
             ("configuration not confirmed after 3 boots: rolling back",
              "rolled back to the previous configuration", "ztp: result OK"),
             files=(("ztp/config.json", _CONFIG_TRIAL), ("ztp/config.prev", _CONFIG_PREV),
                    ("ztp/trial", "3"))),
    PathSpec("retry", "an attempt fails (SIM busy x3) and is retried",
             ("ztp: attempt 1/3 failed", "retry in", "ztp: result OK"), sim_busy=3),
    PathSpec("report", "first boot, then the run right after the confirmation (issue 17): "
             "the report sent before CA 00, beside the application",
             ("ztp: result OK", "ztp: re-provisioning", "ztp: report delivered"),
             until="ztp: result UNCHANGED"),
)}


@dataclass
class PathReport:
    """The search for one path: `min_heap` (None: no heap up to the limit passed), every run,
    the run at the board's heap, and whether the answer held when checked again (`verified`:
    pass at min_heap, fail one step below; `note` otherwise)."""

    spec: PathSpec
    min_heap: int | None = None
    at_board: RunResult | None = None
    runs: list[RunResult] = field(default_factory=list)
    verified: bool = False
    note: str = ""


@dataclass
class HeapReport:
    board: BoardBudget
    credit: int
    build: HostBuild
    paths: dict[str, PathReport]
    probes: dict[str, RunResult]
    goal: int = HEAP_GOAL

    @property
    def overall_min(self) -> int | None:
        mins = [p.min_heap for p in self.paths.values()]
        return None if not mins or any(m is None for m in mins) else max(
            m for m in mins if m is not None)


# ---- the rig -------------------------------------------------------------------------------
class HeapRig:
    """Build, stacks, seeds and credit, usable from synchronous code (tests, the bench):

        with HeapRig(stacks=2) as rig:
            r = rig.run("first_boot", 16 * 1024)     # -> RunResult

    Args:
        build: the heap run's binary (None: build_host()).
        budget: the board's figures (None: board_budget()).
        stacks: how many Stacks (runs in parallel).
        main_py: the main.py to put on the flash (None: the repository's).
        settings: /ztp/settings.json.
    Raises (on entry): HeapBuildError, SourceError, StackError.
    """

    def __init__(self, build: HostBuild | None = None, budget: BoardBudget | None = None,
                 stacks: int = 1, main_py: Path | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.build = build
        self.budget = budget
        self.n_stacks = stacks
        self.main_py = main_py or FIRMWARE / "main.py"
        self.settings = settings or SETTINGS
        self.credit = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="ztp-heap-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stacks: asyncio.Queue[Any] | None = None
        self._all: list[Any] = []
        self._seeds: dict[str, Path] = {}
        self._ptys: dict[int, str] = {}
        self._n = 0
        self._lock = threading.Lock()
        self._seed_lock = threading.RLock()  # seeds are made once, one at a time

    # -- lifecycle
    def __enter__(self) -> HeapRig:
        try:
            self.build = self.build or build_host()
            self.budget = self.budget or board_budget()
            self._thread.start()
            self._call(self._start())
            self.credit = self._calibrate()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._stop(), timeout=60)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        from ztp.modem import EarlyCommand, Habits
        from ztp.stack import Stack, StackOptions

        self._stacks = asyncio.Queue()
        for i in range(self.n_stacks):
            # the modem as unforgiving as the SARA-U2: pacing (u-blox: >= 20 ms after its last
            # output before a command; one sooner is answered ERROR and fails the run, checked
            # after it), and its output held while the MCU's RTS is not asserted (&K3 at
            # power-up): the double forwards GSM_RTS and GSM_RESETN (power_up's wire)
            habits = Habits(min_command_gap_ms=20, early_command=EarlyCommand.ERROR,
                            rts_asserted=False)
            stack = Stack(StackOptions(fast_hashing=True, habits=habits))
            await stack.__aenter__()
            self._all.append(stack)
            # the double opens the modem's pty through a link of one length for every stack
            # (see _image_for)
            link = self._tmp / f"pty-{i:02d}"
            link.symlink_to(stack.pty)
            self._ptys[id(stack)] = str(link)
            self._stacks.put_nowait(stack)

    async def _stop(self) -> None:
        for stack in self._all:
            with contextlib.suppress(Exception):
                await stack.__aexit__(None, None, None)

    @contextmanager
    def _image_for(self, seed: Path) -> Iterator[Path]:
        with self._lock:
            self._n += 1
            # fixed-length names: the doubles' setup reads the paths, and strings of another
            # length could leave other holes, so another credit (it is checked per run)
            img = self._tmp / f"run-{self._n:06d}.img"
        shutil.copyfile(seed, img)
        try:
            yield img
        finally:
            img.unlink(missing_ok=True)

    # -- file systems
    def _seed_dir(self, spec: PathSpec) -> Path:
        d = self._tmp / f"seed-{spec.name}"
        shutil.rmtree(d, ignore_errors=True)
        (d / "ztp").mkdir(parents=True)
        shutil.copyfile(FIRMWARE / "boot.py", d / "boot.py")
        shutil.copyfile(self.main_py, d / "main.py")
        (d / "ztp" / "settings.json").write_text(json.dumps(self.settings))
        for rel, text in spec.files:
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        return d

    def seed(self, name: str) -> Path:
        """The starting file system image of a path (made once)."""
        assert self.build is not None and self.budget is not None
        with self._seed_lock:
            have = self._seeds.get(name)
            if have is None:
                have = self._seeds[name] = self._make_seed(name)
            return have

    def _make_seed(self, name: str) -> Path:
        assert self.build is not None and self.budget is not None
        spec = PATHS[name]
        img = self._tmp / f"seed-{name}.img"
        if spec.after is None:
            make_fs(self.build, img, self.budget.fs_blocks, self._seed_dir(spec))
        else:
            first = self.seed(spec.after)
            shutil.copyfile(first, img)
            r = self._call(self._run(spec.after, _SEED_HEAP, False, image=img))
            if not r.ok:
                raise HeapBuildError(f"making the file system for {name}: the {spec.after} "
                                     f"run failed ({r.reason}): " + " | ".join(r.tail[-8:]))
        return img

    def files(self, image: Path) -> dict[str, bytes]:
        assert self.build is not None and self.budget is not None
        return dump_fs(self.build, image, self.budget.fs_blocks)

    # -- runs
    def _calibrate(self) -> int:
        assert self.build is not None and self.budget is not None
        empty = self._tmp / "empty"
        empty.mkdir(exist_ok=True)
        img = self._tmp / "run-000000.img"
        make_fs(self.build, img, self.budget.fs_blocks, empty)
        r = self._call(self._run(None, _SEED_HEAP, False, image=img, credit=0, timeout=20))
        if r.credit <= 0:
            raise HeapBuildError("calibration: no credit line from ztp_powerup: "
                                 + " | ".join(r.tail[-8:]))
        return gc_blocks(r.credit)

    async def _run(self, name: str | None, heap: int, probe: bool, *,
                   image: Path | None = None, credit: int | None = None,
                   timeout: float = RUN_TIMEOUT_S) -> RunResult:
        from ztp.stack import DEMO_DEVICE_ID

        assert self._stacks is not None and self.build is not None
        spec = PATHS[name] if name else None
        credit = self.credit if credit is None else credit
        stack = await self._stacks.get()
        try:
            # a fault knob, not the core's counter: the firmware's GSM_RESETN pulse at power-up
            # reboots the modem, and a reboot takes its SIM-busy answers from the knobs
            stack.modem.update_faults(sim_busy_commands=spec.sim_busy if spec else 0)
            await stack.modem.reboot()
            early = stack.modem.core.early_commands
            modem = stack.modem
            modem.set_rts(False)              # a board at power-up: RTS floats (off)
            pulses = len(modem.reset_pulses)

            def wire(name: str, high: bool) -> None:
                if name == "rts":
                    modem.set_rts(high)
                elif name == "resetn":
                    modem.set_reset_line(high)

            assert image is not None
            r = await power_up(
                self.build.micropython, image=image, blocks=self.budget.fs_blocks,
                heapsize=heap + credit, heap=heap, pty=self._ptys[id(stack)],
                unique_id=DEMO_DEVICE_ID,
                expect=spec.expect if spec else (), timeout_s=timeout, probe=probe,
                stop_at=spec.until if spec else None, wire=wire)
            r.reset_pulses = len(modem.reset_pulses) - pulses
            modem.set_reset_line(False)
            early = stack.modem.core.early_commands - early
            if early and r.ok:
                r.ok = False
                r.reason = f"{early} command(s) sent sooner than 20 ms after the modem's output"
            return r
        finally:
            stack.modem.update_faults(sim_busy_commands=0)
            self._stacks.put_nowait(stack)

    def run(self, name: str, heap: int, probe: bool = False, keep: Path | None = None
            ) -> RunResult:
        """Power the board up once on path `name` with `heap` bytes (the board's figure; the
        credit is added). `keep`: copy the file system afterwards there. The run's credit
        must equal the calibration's, else the result is marked failed."""
        seed = self.seed(name)
        with self._image_for(seed) as img:
            r = self._call(self._run(name, heap, probe, image=img))
            if keep is not None:
                shutil.copyfile(img, keep)
        if r.credit != -1 and gc_blocks(r.credit) != self.credit and r.ok:
            r.ok = False
            r.reason = f"credit {r.credit} B differs from the calibration's {self.credit} B"
        return r


# ---- the search ----------------------------------------------------------------------------
def min_heap(rig: HeapRig, name: str, lo: int = 8 * STEP, hi_limit: int = 48 * STEP,
             say: Callable[[str], None] | None = None) -> PathReport:
    """The smallest heap, in STEP (1 KB) steps, at which path `name` completes.

    First the board's own heap (`at_board`). Then, assuming that a larger heap never fails
    where a smaller one passes: bisection between `lo` (taken to fail) and the largest whole
    step at or below the board's heap, or, when the board's heap fails, steps upward until
    one passes (up to `hi_limit`). The answer is run again, and so is one step below it:
    `verified` when the answer passes and the step below fails. When no whole step at or
    below the board's heap passes but the board's heap does, the answer is the board's heap.
    """
    assert rig.budget is not None
    say = say or (lambda m: None)
    rep = PathReport(PATHS[name])

    def trial(heap: int) -> bool:
        r = rig.run(name, heap)
        rep.runs.append(r)
        say(f"{name} heap {heap:,} B: {'pass' if r.ok else 'FAIL ' + r.reason} "
            f"({r.elapsed_s:.1f} s)")
        return r.ok

    board = rig.budget.gc_heap
    board_ok = trial(board)
    rep.at_board = rep.runs[-1]
    top = board // STEP
    if board_ok:
        if not trial(top * STEP):
            rep.min_heap = board
            rep.verified = trial(board)
            if not rep.verified:
                rep.note = f"{board:,} B failed when run again"
            return rep
        good, bad = top, lo // STEP - 1
        while good - bad > 1:
            mid = (good + bad) // 2
            if trial(mid * STEP):
                good = mid
            else:
                bad = mid
    else:
        good = top + 1
        while not trial(good * STEP):
            good += 1
            if good * STEP > hi_limit:
                rep.note = f"fails at every heap up to {hi_limit:,} B"
                return rep
    rep.min_heap = good * STEP
    again = trial(good * STEP)
    below = trial((good - 1) * STEP)
    rep.verified = again and not below
    if not rep.verified:
        rep.note = (f"not repeatable: {good * STEP:,} B {'passed' if again else 'failed'} "
                    f"again, {(good - 1) * STEP:,} B {'passed' if below else 'failed'}")
    return rep


def probe(rig: HeapRig, name: str, heap: int | None = None) -> RunResult:
    """One run with the doubles' probe on (live heap at each machine call, collected first):
    the figures after imports, at the first modem byte and the largest seen."""
    assert rig.budget is not None
    return rig.run(name, heap or rig.budget.gc_heap, probe=True)


def measure(names: tuple[str, ...] = tuple(PATHS), stacks: int = 2, search: bool = True,
            say: Callable[[str], None] | None = None, main_py: Path | None = None,
            build: HostBuild | None = None) -> HeapReport:
    """Everything `ztp bench firmware` reports about the heap: per path the minimum heap
    (search=True) or the run at the board's heap only, plus a probe run per path.

    Raises:
        HeapBuildError: no 32-bit toolchain / the build or a setup run failed.
    """
    with HeapRig(build=build, stacks=stacks, main_py=main_py) as rig:
        assert rig.budget is not None and rig.build is not None
        reports: dict[str, PathReport] = {}
        probes: dict[str, RunResult] = {}

        def one(name: str) -> None:
            probes[name] = probe(rig, name)
            if search:
                reports[name] = min_heap(rig, name, say=say)
            else:
                rep = PathReport(PATHS[name])
                rep.at_board = rig.run(name, rig.budget.gc_heap)  # type: ignore[union-attr]
                rep.runs.append(rep.at_board)
                reports[name] = rep

        with concurrent.futures.ThreadPoolExecutor(max_workers=stacks) as ex:
            for fut in [ex.submit(one, n) for n in names]:
                fut.result()
        return HeapReport(board=rig.budget, credit=rig.credit, build=rig.build,
                          paths={n: reports[n] for n in names},
                          probes={n: probes[n] for n in names})
