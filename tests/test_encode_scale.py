"""``encode`` at scale: job-array shards, streaming to ``.part`` files, resume after a kill, bounded work in
flight, and workers that die with their parent."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.errors import InputError, RunInterrupted
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer
from ismtk.workflows import encode as encode_module
from ismtk.workflows import resumable
from ismtk.workflows.encode import Shard, encode_files, encode_to_fasta

runner = CliRunner()


@pytest.fixture()
def many(tmp_path, structures_dir) -> Path:
    """24 structure files: three copies of each fixture under new names."""
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(3):
        for path in sorted(structures_dir.glob("*.pdb.gz"))[:8]:
            shutil.copy(path, folder / f"c{k}_{path.name}")
    return folder


def _encode(paths, out, **kwargs):
    return encode_to_fasta(paths, ThreeDiTokenizer(), out, **kwargs)


def test_shards_concatenate_to_one_run(many, tmp_path):
    paths = find_structure_files([many])
    _encode(paths, tmp_path / "all.fasta", aa_out=tmp_path / "all.aa")
    tokens, amino_acids = b"", b""
    for i in (1, 2, 3):
        _encode(paths, tmp_path / f"s{i}.fasta", aa_out=tmp_path / f"s{i}.aa", shard=Shard(i, 3))
        tokens += (tmp_path / f"s{i}.fasta").read_bytes()
        amino_acids += (tmp_path / f"s{i}.aa").read_bytes()
    assert tokens == (tmp_path / "all.fasta").read_bytes() and tokens.count(b">") > 24
    assert amino_acids == (tmp_path / "all.aa").read_bytes()
    shares = [Shard(i, 5).select(list(range(13))) for i in range(1, 6)]
    assert [x for share in shares for x in share] == list(range(13))
    summary = _encode(paths[:2], tmp_path / "empty.fasta", shard=Shard(1, 3))  # more shards than files
    assert summary.files == 0 and (tmp_path / "empty.fasta").read_bytes() == b""



def test_shards_skip_the_names_earlier_shards_take_as_one_run_does(many, tmp_path):
    """One run skips an entry name a file took before; a shard must too, for the shards to add up to one run."""
    files = find_structure_files([many])
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(files[0], twin / files[0].name)  # the first file's name again, read last
    multi = next(f for f in files if len(read_structure(f).chains) > 1)
    chain = read_structure(multi).chains[0]
    renamed = twin / f"{chain.name}.pdb.gz"  # a file named like a chain entry of a multi-chain file
    shutil.copy(files[1] if files[1] != multi else files[2], renamed)
    paths = [*files, twin / files[0].name, renamed]
    whole = _encode(paths, tmp_path / "all.fasta")
    assert len(whole.skipped) >= 2 and sum("already taken" in str(p) for p in whole.skipped) == 2
    tokens = b"".join(
        (_encode(paths, tmp_path / f"s{i}.fasta", shard=Shard(i, 3)), (tmp_path / f"s{i}.fasta").read_bytes())[1]
        for i in (1, 2, 3)
    )
    assert tokens == (tmp_path / "all.fasta").read_bytes()

def test_shard_option_on_the_command_line(many, tmp_path):
    whole = tmp_path / "whole.fasta"
    assert runner.invoke(app, ["encode", str(many), "-o", str(whole), "--tokenizer", "3di", "-t", "1"]).exit_code == 0
    parts = []
    for i in (1, 2):
        out = tmp_path / f"part{i}.fasta"
        result = runner.invoke(app, ["encode", str(many), "-o", str(out), "--tokenizer", "3di", "--shard", f"{i}/2"])
        assert result.exit_code == 0, result.output
        parts.append(out.read_bytes())
    assert b"".join(parts) == whole.read_bytes()
    for bad in ("0/2", "3/2", "x"):
        result = runner.invoke(app, ["encode", str(many), "-o", str(tmp_path / "x.fa"), "--shard", bad])
        assert result.exit_code == 1 and "--shard" in result.output


@pytest.mark.parametrize(("suffix", "commit_seconds"), [(".fasta", 0.0), (".fasta.gz", 0.0), (".fasta", 1e12)])
def test_interrupted_run_resumes_to_the_same_output(many, tmp_path, monkeypatch, suffix, commit_seconds):
    """0: a commit point after every file; 1e12: none while running, only the one an interrupted run writes."""
    monkeypatch.setattr(resumable, "COMMIT_SECONDS", commit_seconds)
    paths = find_structure_files([many])
    fresh, out = tmp_path / f"fresh{suffix}", tmp_path / f"out{suffix}"
    _encode(paths, fresh, aa_out=tmp_path / "fresh.aa")
    seen = []

    def interrupt(result):
        seen.append(result)
        if len(seen) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _encode(paths, out, aa_out=tmp_path / "out.aa", on_result=interrupt)
    assert not out.exists() and Path(f"{out}.part").exists() and Path(f"{out}.resume").exists()
    starts = []
    summary = _encode(paths, out, aa_out=tmp_path / "out.aa", resume=True, on_start=lambda d, t: starts.append((d, t)))
    assert starts == [(10, len(paths))] and summary.resumed_files == 10 and summary.files == len(paths)
    read = gzip.decompress if suffix.endswith(".gz") else bytes
    assert read(out.read_bytes()) == read(fresh.read_bytes())
    assert (tmp_path / "out.aa").read_bytes() == (tmp_path / "fresh.aa").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["many", fresh.name, "fresh.aa", out.name, "out.aa"])


def test_leftovers_are_removed_without_resume_and_other_inputs_are_refused(many, tmp_path, monkeypatch):
    monkeypatch.setattr(resumable, "COMMIT_SECONDS", 0.0)
    paths = find_structure_files([many])
    out = tmp_path / "out.fasta"

    def interrupt(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _encode(paths, out, aa_out=tmp_path / "aa.fasta", on_result=interrupt)
    with pytest.raises(InputError, match="other inputs"):
        _encode(paths[:5], out, resume=True)
    _encode(paths[:5], out)  # no --resume: start over, and the amino-acid leftover goes too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "out.fasta"]
    assert out.read_text().count(">") >= 5
    Path(f"{out}.resume").write_bytes(b"\x00garbage\n")  # a damaged journal: --resume refuses, no --resume starts over
    with pytest.raises(InputError, match="not a resume journal"):
        _encode(paths[:5], out, resume=True)
    _encode(paths[:5], out)
    with pytest.raises(KeyboardInterrupt):
        _encode(paths, out, on_result=interrupt)
    Path(f"{out}.part").unlink()  # the output's .part deleted by hand, its journal left: said so
    with pytest.raises(InputError, match="out.fasta.part is gone, but its journal is there"):
        _encode(paths, out, resume=True)


def test_output_naming_a_folder_is_refused_before_any_work(many, tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        _encode(find_structure_files([many]), tmp_path)


def test_work_in_flight_is_bounded(many, monkeypatch):
    """The first result comes back after a few chunks were handed out, not the whole list."""
    submitted = []
    original = encode_module.ProcessPoolExecutor.submit

    def counting_submit(self, fn, *args, **kwargs):
        submitted.append(len(args[0]))
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(encode_module.ProcessPoolExecutor, "submit", counting_submit)
    monkeypatch.setattr(encode_module, "CHUNK_FILES", 1)
    paths = find_structure_files([many])
    results = encode_files(paths, ThreeDiTokenizer(), threads=2)
    first = next(results)
    assert first.path == str(paths[0]) and len(submitted) == 2 * encode_module.TASKS_PER_WORKER < len(paths)
    rest = list(results)
    assert [r.path for r in [first, *rest]] == [str(p) for p in paths]


def test_a_small_job_takes_a_torch_thread_per_free_core(many, monkeypatch):
    """Fewer files than workers would pay for run in this process, with as many torch threads as cores are free
    of other tasks (never more than asked for, at least one); the caller's thread count is restored."""
    import torch

    monkeypatch.setattr(encode_module, "default_threads", lambda: 4)
    for others, asked, expected in [(0.0, 2, 2), (0.0, 8, 4), (3.0, 4, 1), (2.4, 4, 2), (0.0, 0, 1)]:
        monkeypatch.setattr(encode_module, "_other_tasks", lambda others=others: others)
        assert encode_module.free_cores(asked) == expected
    monkeypatch.setattr(encode_module, "_other_tasks", lambda: 2.0)
    seen = []
    monkeypatch.setattr(encode_module, "encode_file", lambda path, *a: seen.append(torch.get_num_threads()) or path)
    previous = torch.get_num_threads()
    paths = find_structure_files([many])[:3]
    assert list(encode_files(paths, ThreeDiTokenizer(), threads=4)) == [str(p) for p in paths]
    assert seen == [2, 2, 2] and torch.get_num_threads() == previous


def test_the_workers_server_starts_early_only_where_workers_will_run(many, tmp_path):
    """``encode`` starts the server its workers fork from before it loads the tokenizer (both import torch at once),
    only when there will be workers; the output is the one of a single worker."""
    from ismtk.tokenizers import tokenizer_module
    from ismtk.tokenizers.ism import IsmTokenizer

    assert tokenizer_module("3di") == ThreeDiTokenizer.__module__ and tokenizer_module("ism") == IsmTokenizer.__module__
    modules = [tokenizer_module("3di")]
    assert not encode_module.start_workers(15, 2, modules)  # 7 files per worker: encoded in this process
    assert not encode_module.start_workers(100, 1, modules)
    assert encode_module.start_workers(16, 2, modules)
    outputs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.fasta"
        result = runner.invoke(app, ["encode", str(many), "-o", str(out), "--tokenizer", "3di", "-t", threads])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b">") > 24


def test_createdb_starts_the_workers_server_only_for_structures(many, tmp_path, monkeypatch):
    """``createdb`` starts the server its encoding workers fork from before it loads the tokenizers, for the
    tokenizers of every track, and hands the files it found on to the encoding; a database or token FASTA input
    starts nothing. Two workers write the database one writes."""
    from ismtk.tokenizers import tokenizer_module
    from ismtk.workflows import search as search_module

    started = []
    monkeypatch.setattr(search_module, "start_workers", lambda *args: started.append(args))
    files = search_module.start_encoding([many], ["3di", "ism"], 2)
    assert files == find_structure_files([many]) and len(files) == 24
    assert started == [(24, 2, [tokenizer_module("3di"), tokenizer_module("ism")])]
    monkeypatch.undo()
    dbs = []
    for threads in ("1", "2"):
        db = tmp_path / f"db{threads}"
        result = runner.invoke(app, ["createdb", str(many), str(db), "--tokenizer", "3di", "-t", threads])
        assert result.exit_code == 0, result.output
        dbs.append([(db / name).read_bytes() for name in ("names.txt", "tokens.npy", "aa.npy")])
    assert dbs[0] == dbs[1]
    fasta = tmp_path / "t.fasta"
    fasta.write_text(">a tokenizer=3di\nACDE\n")
    assert search_module.start_encoding([tmp_path / "db1"], ["3di"], 2) is None
    assert search_module.start_encoding([fasta], ["3di"], 2) is None


def test_search_starts_the_workers_server_for_a_target_of_structures(many, tmp_path, monkeypatch):
    """``easy-search`` of a folder of structures starts the server of the target's encoding workers before it
    loads a tokenizer, for the main tokenizer and every token track of ``--score``; a database target starts
    nothing; the hits do not depend on the worker count."""
    from ismtk.tokenizers import tokenizer_module
    from ismtk.workflows import search as search_module

    events = []
    real, load = search_module.start_workers, search_module.load_tokenizer
    monkeypatch.setattr(search_module, "start_workers", lambda *args: events.append(args) or real(*args))
    monkeypatch.setattr(search_module, "load_tokenizer", lambda spec: events.append("load") or load(spec))
    query = find_structure_files([many])[0]
    module = tokenizer_module("3di")
    hits = []
    for threads in (1, 2):
        events.clear()
        out = tmp_path / f"hits{threads}.m8"
        result = runner.invoke(app, ["easy-search", str(query), str(many), str(out), "--score", "3di:1,aa:0.5",
                                     "-t", str(threads)])
        assert result.exit_code == 0, result.output
        assert events[0] == (24, threads, [module, module])  # before any tokenizer loads
        assert events[1:] and all(e == "load" for e in events[1:])
        hits.append(out.read_text())
    assert hits[0] == hits[1] and hits[0].count("\n") >= 3
    db = tmp_path / "db"
    assert runner.invoke(app, ["createdb", str(many), str(db), "-t", "1"]).exit_code == 0
    events.clear()
    result = runner.invoke(app, ["easy-search", str(query), str(db), str(tmp_path / "db.m8"), "-t", "2"])
    assert result.exit_code == 0, result.output
    assert all(e == "load" for e in events)


def test_devices_path_gives_the_same_output(many):
    """One worker per device (``--gpus``) runs the same code; here two 'cpu' devices stand in for GPUs."""
    paths = find_structure_files([many])[:10]
    one = [(c.name, c.tokens.tolist()) for r in encode_files(paths, ThreeDiTokenizer()) for c in r.chains]
    two = [
        (c.name, c.tokens.tolist())
        for r in encode_files(paths, ThreeDiTokenizer(), devices=["cpu", "cpu"])
        for c in r.chains
    ]
    assert one == two and len(one) >= 10


def test_one_process_per_gpu():
    """--gpus N: one process per GPU; one GPU (--device cuda, or auto on a GPU machine): one process, not one per
    core, each with its CUDA context and model copy on the same GPU; the CPU: one per thread."""
    assert encode_module.worker_devices("cpu", 3, gpus=2) == ["cuda:0", "cuda:1"]
    assert encode_module.worker_devices("cuda:1", 16) == ["cuda:1"]
    assert encode_module.worker_devices("cpu", 3) == ["cpu"] * 3


def test_a_device_failure_stops_the_batch_instead_of_skipping_every_file(many, monkeypatch):
    """A GPU out of memory fails every later file too: raised (naming the file, pointing to --resume), not a skip."""
    import torch

    def out_of_memory(self, chain):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    path = find_structure_files([many])[0]
    monkeypatch.setattr(ThreeDiTokenizer, "encode", out_of_memory)
    with pytest.raises(InputError, match=r"device failed .*OutOfMemoryError.*--resume") as caught:
        encode_module.encode_file(path, ThreeDiTokenizer())
    assert str(path) in str(caught.value)
    monkeypatch.setattr(ThreeDiTokenizer, "encode", lambda self, chain: 1 / 0)
    assert "internal error" in str(encode_module.encode_file(path, ThreeDiTokenizer()).skipped[0])  # a bug: a skip



def test_a_device_failure_keeps_what_was_written_for_resume(many, tmp_path, monkeypatch):
    """The device-failure message points to --resume, so the run's .part and journal must survive it."""
    import torch

    monkeypatch.setattr(resumable, "COMMIT_SECONDS", 0.0)
    paths = find_structure_files([many])
    fresh, out = tmp_path / "fresh.fasta", tmp_path / "out.fasta"
    _encode(paths, fresh)
    encode = ThreeDiTokenizer.encode
    calls = []

    def fails_on_the_sixth_chain(self, chain):
        calls.append(chain)
        if len(calls) == 6:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return encode(self, chain)

    monkeypatch.setattr(ThreeDiTokenizer, "encode", fails_on_the_sixth_chain)
    with pytest.raises(RunInterrupted, match="device failed"):
        _encode(paths, out)
    assert Path(f"{out}.part").exists() and Path(f"{out}.resume").exists()
    monkeypatch.setattr(ThreeDiTokenizer, "encode", encode)
    starts = []
    _encode(paths, out, resume=True, on_start=lambda done, total: starts.append(done))
    assert starts[0] > 0 and out.read_bytes() == fresh.read_bytes()

def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):  # the thread or process ended since it was listed
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pids: set[int]) -> list[int]:
    """Those of ``pids`` still running (zombies waiting for their reaper are not)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in pids):
        time.sleep(0.05)
    return [pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"]


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent, ...), or None once it has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.fixture()
def lots(many, tmp_path) -> Path:
    """1,440 files, several seconds of work (about 1 s per 200 files on a quiet 2-core machine): enough for two
    workers to be caught in the middle of it, past the journal's first commit point."""
    copies = tmp_path / "more"
    copies.mkdir()
    for k in range(60):
        for path in many.iterdir():
            shutil.copy(path, copies / f"{k}_{path.name}")
    return copies


ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_stopped_run_leaves_no_worker_and_resumes(lots, tmp_path, stop):
    """kill -9 or Ctrl-C of encode with two workers: no process survives it, Ctrl-C says it stopped, and the
    run resumes to the output of an uninterrupted one."""
    out = tmp_path / "tokens.fasta"
    command = [sys.executable, "-m", "ismtk", "encode", str(lots), "-o", str(out), "--tokenizer", "3di", "-t", "2"]
    # Ctrl-C's default action even where the tests run as a background job, whose children inherit SIGINT ignored
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = Path(f"{out}.resume")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 2):
        assert process.poll() is None, "the run ended before it could be stopped: give it more files"
        time.sleep(0.05)
    workers = _descendants(process.pid)
    assert len(journal.read_text().splitlines()) >= 2 and workers, "the run made no progress"
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert not _alive(workers), f"workers outlived their parent: {_alive(workers)}"
    if stop == signal.SIGINT:
        assert process.returncode == 130 and "continue with the same command and --resume" in stderr, stderr
        assert "error: interrupted (Ctrl-C): stopped" in stderr and "Traceback" not in stderr
    assert not out.exists()
    resumed = subprocess.run([*command, "--resume"], check=False, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming:" in resumed.stderr
    fresh = tmp_path / "fresh.fasta"
    subprocess.run([*command[:6], str(fresh), *command[7:]], env=ENV, check=True, capture_output=True)
    assert out.read_bytes() == fresh.read_bytes()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_createdb_leaves_no_worker_and_no_database(lots, tmp_path):
    db = tmp_path / "db"
    # ISM tokens (the default): slow enough per file that the run is surely caught in the middle
    command = [sys.executable, "-m", "ismtk", "createdb", str(lots), str(db), "--tokenizer", "ism", "-t", "2"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 4:  # resource tracker, fork server and two workers
        workers = _descendants(process.pid)
        time.sleep(0.05)
    assert len(workers) >= 4 and process.poll() is None, "the workers did not start"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not _alive(workers), f"workers outlived a kill -9 of their parent: {_alive(workers)}"
    assert not db.exists()


def _workers_of_pool(pid: int) -> set[int]:
    """Encode workers of process ``pid``: its descendants not started by it directly (a forkserver's children)."""
    return {child for child in _descendants(pid) if (stat := _stat(child)) is not None and int(stat[1]) != pid}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_between_results_stops_the_workers_at_once(many, tmp_path):
    """Ctrl-C that lands while a result is being written, not while waiting for one: the workers stop before the
    interrupt leaves ``encode_to_fasta`` (before, they went on until interpreter exit, whose pool shutdown then
    waited for every chunk in flight)."""
    workers: set[int] = set()

    def interrupt(result) -> None:
        workers.update(_workers_of_pool(os.getpid()))
        raise KeyboardInterrupt

    # the traceback is kept, as the command line keeps it (the context of its exit) until the process ends: its
    # frames keep the results' generator alive, so nothing reference counting does can stop the workers
    with pytest.raises(KeyboardInterrupt) as interrupted:
        encode_to_fasta(find_structure_files([many]), ThreeDiTokenizer(), tmp_path / "out.fasta", threads=2,
                        on_result=interrupt)
    assert workers and not _alive(workers), f"workers outlived the interrupt: {_alive(workers)}"
    assert interrupted.tb is not None


@pytest.mark.parametrize("suffix", [".fasta", ".fasta.gz"])
def test_an_interrupt_inside_a_file_s_records_commits_the_files_before_it(tmp_path, suffix):
    """Ctrl-C between two records of one multi-chain file: the commit on exit must not count the half file, or
    --resume keeps its first chains, skips the file, and the amino-acid output loses the rest."""
    out, aa = tmp_path / f"t{suffix}", tmp_path / "aa.fasta"
    with pytest.raises(KeyboardInterrupt), resumable.ResumableFasta(out, aa, key="k") as writer:
        writer.write("one_A", "DPV", "MKL")
        writer.file_done(1, 1, 3, 0, 0)
        writer.write("two_A", "VVL", "AAG")  # the first chain of the second file, then the interrupt
        raise KeyboardInterrupt
    with resumable.ResumableFasta(out, aa, key="k", resume=True) as writer:
        assert writer.state.files == 1 and list(writer.names()) == ["one_A"]
        writer.write("two_A", "VVL", "AAG")
        writer.write("two_B", "LLD", "GGK")
        writer.file_done(2, 3, 9, 0, 0)
    read = gzip.decompress if suffix.endswith(".gz") else bytes
    assert read(out.read_bytes()) == b">one_A\nDPV\n>two_A\nVVL\n>two_B\nLLD\n"
    assert aa.read_text() == ">one_A\nMKL\n>two_A\nAAG\n>two_B\nGGK\n"


def test_a_shard_whose_files_give_no_chain_writes_empty_outputs(many, tmp_path, bad_files):
    """One run stops with an error; a job array's task must write its (empty) part so the parts add up."""
    bad = [bad_files["empty"], bad_files["binary"]]
    paths = [*find_structure_files([many])[:2], *bad]
    summary = _encode(paths, tmp_path / "s2.fasta", aa_out=tmp_path / "s2.aa", shard=Shard(2, 2))
    assert summary.chains == 0 and len(summary.skipped) == 2
    assert (tmp_path / "s2.fasta").read_bytes() == (tmp_path / "s2.aa").read_bytes() == b""
    with pytest.raises(InputError, match="no chain could be encoded"):
        _encode(bad, tmp_path / "one.fasta")


def test_outputs_never_replace_a_path_list_or_an_input_named_like_a_side_file(many, tmp_path):
    files = find_structure_files([many])[:2]
    listed = tmp_path / "paths.txt"
    listed.write_text("".join(f"{p}\n" for p in files))
    before = listed.read_bytes()
    for option in ("-o", "--aa-output"):
        outputs = ["-o", str(tmp_path / "t.fa"), option, str(listed)]
        result = runner.invoke(app, ["encode", str(listed), "--tokenizer", "3di", "-t", "1", *outputs])
        assert result.exit_code == 1 and "names this input" in result.output and listed.read_bytes() == before
    side = tmp_path / "x.part"
    shutil.copy(files[0], side)
    result = runner.invoke(app, ["encode", str(side), "-o", str(tmp_path / "x"), "--tokenizer", "3di"])
    assert result.exit_code == 1 and "x.part beside it, which would replace this input" in result.output
    assert side.read_bytes() == files[0].read_bytes()


def test_an_upper_case_gz_suffix_writes_gzip(many, tmp_path):
    out = tmp_path / "t.fasta.GZ"
    _encode(find_structure_files([many])[:2], out)
    assert gzip.decompress(out.read_bytes()).startswith(b">")
