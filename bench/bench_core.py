"""Benchmark of the core's lossless JPEG path against the usual tools, in one run.

    .venv/bin/python -m bench.bench_core [--reps N] [--no-corpus] [--no-naive]

Times, on the generated 12-megapixel phone photo (bench/photo.py) and on every
JPEG of the corpus (../shared/corpus):

- onionclean, in-process ``core.clean`` (output check included), and the
  ``onionclean clean`` command line;
- ``exiftool -all=``, ``mat2`` (Debian's /usr/bin/mat2), ``jpegtran -copy none``;
- the naive Pillow pixel copy (``list(image.getdata())`` into a new image, saved);
- plain ``cp``, and reading the file and writing it back in-process.

Prints per-file time, MB/s (input bytes per second), peak memory (ru_maxrss of
each child process from wait4; tracemalloc for the in-process path) and how
many times slower than onionclean's in-process path each tool is. Work happens
in a temporary directory; nothing is written into the repository except the
cached photo in bench/out/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import core
from bench.photo import phone_jpeg_path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
GNU_TIME = "/usr/bin/time"  # Debian package "time" (scripts/setup.sh installs it)

NAIVE_PILLOW = """
import sys, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from PIL import Image
t, c = time.perf_counter(), time.process_time()
image = Image.open(sys.argv[1])
pixels = list(image.getdata())
copy = Image.new(image.mode, image.size)
copy.putdata(pixels)
copy.save(sys.argv[2])
print(time.perf_counter() - t, time.process_time() - c)
"""


class Sample(NamedTuple):
    """One run of one tool on one file."""

    wall: float  # seconds
    cpu: float  # user + system seconds of the work (child or this process)
    peak: int  # peak memory, bytes
    ok: bool


@dataclass
class Result:
    """Timings of one tool over one set of files (one entry per pass over the set)."""

    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    bytes_in: int = 0  # input bytes per pass
    files: int = 0
    peak_bytes: int = 0  # peak memory
    failures: int = 0
    note: str = ""

    def per_file(self, cpu: bool = False, best: bool = False) -> float:
        """Median (or best) time of one pass over the set, divided by the number of files."""
        runs = self.cpu if cpu else self.wall
        if not runs:
            return 0.0
        return (min(runs) if best else statistics.median(runs)) / max(self.files, 1)

    @property
    def mb_per_s(self) -> float:
        total = statistics.median(self.wall) if self.wall else 0.0
        return self.bytes_in / total / 1e6 if total else 0.0


def run_child(argv: list[str], cwd: Path | None = None) -> tuple[Sample, bytes]:
    """Run a program; return its wall time, CPU time, peak RSS, success, and stdout.

    CPU time and peak come from GNU time (``%U %S %M``): Linux carries the parent's
    RSS high-water mark across fork+exec into ru_maxrss, so wait4 on a child of this
    (large) Python process would report our own size; GNU time's child is forked
    from a tiny process.
    """
    with tempfile.NamedTemporaryFile(prefix="onionclean-bench-rss-") as stats_file:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-q", "-f", "%U %S %M", "-o", stats_file.name, *argv],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False,
        )
        elapsed = time.perf_counter() - t0
        lines = Path(stats_file.name).read_text().strip().splitlines()
    user, system, rss_kb = (lines[-1].split() + ["0", "0", "0"])[:3] if lines else ("0",) * 3
    sample = Sample(elapsed, float(user) + float(system), int(rss_kb) * 1024,
                    proc.returncode == 0)
    return sample, proc.stdout


def onionclean_cli() -> list[str]:
    script = Path(sys.executable).parent / "onionclean"
    return [str(script)] if script.exists() else [sys.executable, "-m", "onionclean_cli"]


# --- one tool on one file --------------------------------------------------------------

Tool = Callable[[Path, int], Sample]


def tool_commands(work: Path) -> dict[str, Tool]:
    """Each external tool as a function (source, index) -> Sample."""

    def out_path(src: Path, i: int, tag: str) -> Path:
        d = work / f"{tag}-{i}"
        d.mkdir(exist_ok=True)
        return d / src.name

    def cli(src: Path, i: int) -> Sample:
        d = work / f"cli-{i}"
        shutil.rmtree(d, ignore_errors=True)
        return run_child([*onionclean_cli(), "clean", "-q", "-o", str(d), str(src)])[0]

    def exiftool(src: Path, i: int) -> Sample:
        out = out_path(src, i, "exiftool")
        out.unlink(missing_ok=True)
        sample, _ = run_child(["exiftool", "-q", "-q", "-all=", "-o", str(out), str(src)])
        return sample._replace(ok=sample.ok and out.exists())

    def mat2(src: Path, i: int) -> Sample:
        d = work / f"mat2-{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        copy = d / src.name
        shutil.copyfile(src, copy)  # mat2 writes NAME.cleaned.EXT beside its input
        return run_child(["mat2", str(copy)])[0]

    def jpegtran(src: Path, i: int) -> Sample:
        out = out_path(src, i, "jpegtran")
        return run_child(["jpegtran", "-copy", "none", "-outfile", str(out), str(src)])[0]

    def naive(src: Path, i: int) -> Sample:
        out = out_path(src, i, "naive")
        sample, stdout = run_child([sys.executable, "-c", NAIVE_PILLOW, str(src), str(out)])
        times = stdout.split()
        if not sample.ok or len(times) != 2:
            return sample._replace(ok=False)
        # the child times its own work, without interpreter start-up and imports
        return sample._replace(wall=float(times[0]), cpu=float(times[1]))

    def cp(src: Path, i: int) -> Sample:
        return run_child(["cp", str(src), str(out_path(src, i, "cp"))])[0]

    return {
        "onionclean CLI (new process per file)": cli,
        "exiftool -all=": exiftool,
        "mat2": mat2,
        "jpegtran -copy none": jpegtran,
        "Pillow naive pixel copy (work only)": naive,
        "cp": cp,
    }


def measure_tool(name: str, func: Tool, files: list[Path], reps: int) -> Result:
    result = Result(name, files=len(files), bytes_in=sum(f.stat().st_size for f in files))
    for rep in range(reps):
        wall = cpu = 0.0
        for i, src in enumerate(files):
            sample = func(src, i)
            if not sample.ok:
                if rep == 0:
                    result.failures += 1
                continue
            wall += sample.wall
            cpu += sample.cpu
            result.peak_bytes = max(result.peak_bytes, sample.peak)
        result.wall.append(wall)
        result.cpu.append(cpu)
    return result


# --- in-process ------------------------------------------------------------------------


def _clean_all(blobs: list[bytes]) -> None:
    for blob in blobs:
        try:
            core.clean(blob)
        except core.CleanError:
            pass


def measure_in_process(files: list[Path], reps: int, work: Path) -> list[Result]:
    blobs = [f.read_bytes() for f in files]
    size = sum(len(b) for b in blobs)
    clean = Result("onionclean core.clean (in-process)", files=len(files), bytes_in=size)
    rcw = Result("onionclean read+clean+write (in-process)", files=len(files), bytes_in=size)
    rw = Result("read+write baseline (in-process)", files=len(files), bytes_in=size)
    for blob in blobs:  # warm-up, and count the files onionclean refuses
        try:
            core.clean(blob)
        except core.CleanError:
            clean.failures += 1
    for rep in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        _clean_all(blobs)
        clean.wall.append(time.perf_counter() - t0)
        clean.cpu.append(time.process_time() - c0)
        # Each pass writes new files (created, never truncated: ext4 flushes a file that
        # is truncated and rewritten), and the two passes alternate to share conditions.
        passes = [(rcw, True), (rw, False)]
        folders = []
        for result, cleaning in passes if rep % 2 else passes[::-1]:
            folder = work / f"rw-{rep}-{cleaning}"
            folder.mkdir()
            folders.append(folder)
            t0, c0 = time.perf_counter(), time.process_time()
            for i, src in enumerate(files):
                with open(src, "rb") as f:
                    data = f.read()
                if cleaning:
                    try:
                        data = core.clean(data).data
                    except core.CleanError:
                        pass
                with open(folder / str(i), "wb") as f:
                    f.write(data)
            result.wall.append(time.perf_counter() - t0)
            result.cpu.append(time.process_time() - c0)
        for folder in folders:
            shutil.rmtree(folder)
    # Memory: the peak of what clean allocates while it runs (the input is the caller's).
    peak = 0
    for blob in blobs:
        tracemalloc.start()
        try:
            core.clean(blob)
        except core.CleanError:
            pass
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    largest = max(len(b) for b in blobs)
    clean.peak_bytes = peak
    ratio = (peak + largest) / largest
    clean.note = f"(peak allocation + largest input) / largest input = {ratio:.2f}x"
    return [clean, rcw, rw]


# --- report ----------------------------------------------------------------------------


def print_table(title: str, results: list[Result], reference: Result) -> None:
    print(f"\n== {title}: {reference.files} file(s), {reference.bytes_in / 1e6:.2f} MB per pass")
    print(f"{'tool':44} {'ms/file':>9} {'cpu ms':>9} {'MB/s':>8} {'peak MB':>8}"
          f" {'x onionclean':>13}")
    for r in results:
        ratio = r.per_file() / reference.per_file() if reference.per_file() else 0.0
        fail = f"  ({r.failures} file(s) refused/failed)" if r.failures else ""
        print(
            f"{r.name:44} {r.per_file() * 1000:9.2f} {r.per_file(cpu=True) * 1000:9.2f}"
            f" {r.mb_per_s:8.1f} {r.peak_bytes / 1e6:8.1f} {ratio:12.1f}x{fail}"
        )
        if r.note:
            print(f"{'':44} {r.note}")


def check_targets(results: dict[str, Result], photo_size: int) -> None:
    """The issue's targets for the lossless JPEG path on the 12-megapixel photo.

    Each ratio is given on median and best wall-clock time and on CPU time (user +
    system), which a busy shared machine disturbs less.
    """
    ref = results["onionclean core.clean (in-process)"]
    rw = results["read+write baseline (in-process)"]
    rcw = results["onionclean read+clean+write (in-process)"]
    print("\n== Targets (12-megapixel photo, in-process, output check included)")
    print(f"  {'':52} {'wall':>8} {'best':>8} {'cpu':>8}")

    def ratio(a: Result, b: Result) -> tuple[float, float, float]:
        return (a.per_file() / b.per_file(), a.per_file(best=True) / b.per_file(best=True),
                a.per_file(cpu=True) / b.per_file(cpu=True))

    def line(label: str, values: tuple[float, float, float], goal: str,
             ok: bool | None) -> None:
        verdict = "" if ok is None else ("OK" if ok else "MISSED")
        wall, best, cpu = values
        print(f"  {label:52} {wall:8.2f} {best:8.2f} {cpu:8.2f}   {goal:10} {verdict}")

    for name, goal in (("exiftool -all=", 10), ("jpegtran -copy none", 10), ("mat2", 30)):
        if name in results and results[name].wall:
            values = ratio(results[name], ref)
            line(f"throughput vs {name} (x)", values, f">= {goal}x", values[0] >= goal)
    values = ratio(ref, rw)
    line("clean time / (read + write time)", values, "<= 1.5", values[0] <= 1.5)
    line("(read + clean + write) / (read + write)", ratio(rcw, rw), "(stricter)", None)
    mem = (ref.peak_bytes + photo_size) / photo_size
    line("memory: (input + peak allocation) / input", (mem, mem, mem), "< 3", mem < 3)
    print("  (wall: median of the passes; best: fastest pass; cpu: user+system, median;"
          " the verdict uses the median wall time)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="passes per external tool")
    parser.add_argument("--in-process-reps", type=int, default=30)
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--no-naive", action="store_true", help="skip the (slow) Pillow copy")
    args = parser.parse_args(argv)
    for program in ("exiftool", "mat2", "jpegtran", "cp", GNU_TIME):
        if shutil.which(program) is None:
            print(f"{program} is missing: run `bash scripts/setup.sh test`", file=sys.stderr)
            return 2
    photo = phone_jpeg_path()
    sets = [("12-megapixel phone photo (bench/photo.py)", [photo], args.reps)]
    if not args.no_corpus:
        corpus = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
        sets.append((f"corpus JPEGs ({CORPUS})", corpus, 1))
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s),"
          f" load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="onionclean-bench-") as tmp:
        work = Path(tmp)
        for title, files, reps in sets:
            results = measure_in_process(files, args.in_process_reps, work)
            for name, func in tool_commands(work).items():
                if args.no_naive and name.startswith("Pillow"):
                    continue
                n = 1 if name.startswith("Pillow") else reps
                func(files[0], 0)  # warm-up (page cache, interpreter files)
                results.append(measure_tool(name, func, files, n))
            print_table(title, results, results[0])
            if len(files) == 1:
                check_targets({r.name: r for r in results}, files[0].stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
