"""Hostile candidates against harness.sandbox: each must fail clearly, on time, leaving nothing.

Every test gets a unique marker in the sandbox's working-directory prefix, so any process the
candidate left behind shows it in its cwd or command line; `no_leftovers` checks after each.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from procs import started

from harness.sandbox import runner as sandbox
from harness.sandbox.pool import EvalPool
from harness.sandbox.runner import Limits, call_python, run_program

MARGIN_S = 3.0
needs_fs_isolation = pytest.mark.skipif(
    not sandbox.isolation().fs, reason="no private mount/PID namespace (needs root + unshare)")
needs_net_isolation = pytest.mark.skipif(
    not sandbox.network_isolated(), reason="no private network namespace here (unshare --net)")


def leftovers(marker: str) -> list[str]:
    """'pid cmdline cwd' of every live process that carries the marker."""
    found = []
    for p in psutil.process_iter(["cmdline", "cwd", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
            continue
        text = f"{p.pid} {' '.join(p.info['cmdline'] or [])} {p.info['cwd'] or ''}"
        if marker in text:
            found.append(text)
    return found


def wait_no_leftovers(marker: str, timeout_s: float = 2.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (found := leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.fixture(autouse=True)
def marker(monkeypatch):
    """A unique string in every workdir path; after the test, no process may carry it."""
    marker = f"sbxtest{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(sandbox, "_WORKDIR_PREFIX", f"harness-sbx-{marker}-")
    yield marker
    assert wait_no_leftovers(marker) == []


def src(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


# --- positive cases ---------------------------------------------------------------------------


def test_a_python_program_gets_its_stdin_and_returns_its_stdout():
    result = run_program("print(input()[::-1])", stdin="abc\n")
    assert result.ok and result.stdout == "cba\n" and result.exit_code == 0


def test_call_python_returns_the_json_value_with_numpy_converted():
    source = src("""
        import numpy as np
        def solve(n):
            return {"a": np.arange(n), "s": np.float32(0.5), "t": (1, 2)}
    """)
    result = call_python(source, "solve", {"n": 3})
    assert result.ok, result.reason
    assert result.value == {"a": [0, 1, 2], "s": 0.5, "t": [1, 2]}


def test_a_cpp_echo_program_reads_stdin():
    source = '#include <iostream>\nint main() { std::string s; while (std::cin >> s) ' \
             'std::cout << s << "\\n"; }'
    result = run_program(source, "cpp", stdin="hello world")
    assert result.ok, result.reason
    assert result.stdout == "hello\nworld\n"


def test_an_unknown_language_is_a_programmer_error():
    with pytest.raises(ValueError, match="unknown language"):
        run_program("", "cobol")


# --- time -------------------------------------------------------------------------------------


def test_an_infinite_loop_times_out_within_the_wall_limit():
    result = run_program("while True: pass", limits=Limits(wall_s=2))
    assert result.status == "timeout" and result.wall_s < 2 + MARGIN_S
    assert "timeout" in result.reason


def test_sleeping_forever_times_out():
    result = call_python("import time\ndef f(): time.sleep(10**6)", "f", {}, Limits(wall_s=1))
    assert result.status == "timeout" and result.reason == "timeout after 1 s wall"
    assert result.wall_s < 1 + MARGIN_S


def test_using_too_much_cpu_is_a_timeout_that_mentions_cpu():
    result = run_program("while True: pass", limits=Limits(wall_s=10, cpu_s=1))
    assert result.status == "timeout" and "CPU" in result.reason
    assert result.wall_s < 1 + MARGIN_S


# --- processes --------------------------------------------------------------------------------


def test_a_fork_bomb_is_killed_at_the_process_limit():
    source = src("""
        import os, time
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """)
    result = run_program(source, limits=Limits(wall_s=3, max_procs=20))
    assert result.status == "killed" and "process limit" in result.reason
    assert result.wall_s < 3 + MARGIN_S


def test_a_double_forked_daemon_that_ignores_sigterm_is_killed(marker):
    source = src("""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(10**6)
            os._exit(0)
        time.sleep(0.5)  # the daemon is up; the main process leaves it behind
    """)
    result = run_program(source, limits=Limits(wall_s=5))
    assert result.ok, result.reason  # the main process exited 0; the daemon must still die


def test_killing_its_parent_leaves_the_harness_alive():
    source = "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(10)"
    result = run_program(source, limits=Limits(wall_s=3))
    assert not result.ok and result.wall_s < 3 + MARGIN_S
    assert psutil.Process().is_running()


@needs_fs_isolation  # the private PID namespace is what hides the harness
def test_the_harness_cannot_be_signalled_by_its_pid():
    source = f"import os\nos.kill({os.getpid()}, 9)"
    result = run_program(source)
    assert result.status == "error" and "ProcessLookupError" in result.reason


# --- memory and output ------------------------------------------------------------------------


def test_allocating_50_gb_is_a_memory_failure():
    result = run_program("x = bytearray(50 * 2**30)", limits=Limits(memory_mb=512))
    assert result.status == "memory" and "MemoryError" in result.reason


def test_allocating_50_gb_in_call_python_is_a_memory_failure():
    result = call_python("def f(): return len(bytearray(50 * 2**30))", "f", {})
    assert result.status == "memory"


def test_writing_1_gb_to_stdout_is_bad_output_and_comes_back_fast():
    source = "import sys\nfor _ in range(1024): sys.stdout.write('x' * 2**20)"
    limits = Limits(wall_s=20, max_output_bytes=100_000)
    result = run_program(source, limits=limits)
    assert result.status == "bad_output" and "output exceeded" in result.reason
    assert result.truncated and len(result.stdout) == 100_000
    assert result.wall_s < 5


def test_a_cpp_output_flood_is_bad_output():
    source = "#include <cstdio>\nint main() { for (;;) putchar('a'); }"
    result = run_program(source, "cpp", limits=Limits(wall_s=10, max_output_bytes=100_000))
    assert result.status == "bad_output" and result.wall_s < 5


def test_a_too_large_return_value_is_bad_output():
    limits = Limits(max_output_bytes=10_000)
    result = call_python("def f(): return list(range(10**6))", "f", {}, limits)
    assert result.status == "bad_output" and "exceeded" in result.reason


def test_output_past_the_cap_is_truncated_but_ok():
    result = run_program("print('y' * 150)", limits=Limits(max_output_bytes=100))
    assert result.ok and result.truncated and result.stdout == "y" * 100


# --- files, network, secrets -------------------------------------------------------------------


@needs_fs_isolation
def test_writing_outside_the_working_directory_fails(marker):
    outside = Path(f"/tmp/{marker}.txt")
    source = src(f"""
        import os, subprocess
        open("inside.txt", "w").write("fine")
        for path in ["{outside}", os.path.expanduser("~/../{marker}.txt"), "/root/{marker}"]:
            try:
                open(path, "w").write("escaped")
                print("WROTE", path)
            except OSError as exc:
                print("refused", exc.errno)
        r = subprocess.run(["mount", "-o", "remount,rw", "/"], capture_output=True)
        print("remount", r.returncode)
    """)
    result = run_program(source)
    assert result.ok, result.reason
    assert "WROTE" not in result.stdout and "remount 0" not in result.stdout
    assert not outside.exists() and not Path(f"/root/{marker}").exists()


@needs_net_isolation
def test_no_connection_to_localhost_or_the_internet():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    source = src(f"""
        import socket
        for addr in [("127.0.0.1", {port}), ("1.1.1.1", 80)]:
            try:
                socket.create_connection(addr, timeout=2).close()
                print("CONNECTED", addr)
            except OSError as exc:
                print("refused", addr, exc)
    """)
    try:
        result = run_program(source, limits=Limits(wall_s=8))
    finally:
        server.close()
    assert result.ok, result.reason
    lines = result.stdout.splitlines()  # bwrap's loopback is up (its own): "Connection refused"
    assert "CONNECTED" not in result.stdout and [ln.split()[0] for ln in lines] == ["refused"] * 2


def test_api_keys_and_tokens_are_not_in_the_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-1")
    monkeypatch.setenv("HF_TOKEN", "hf-secret-2")
    monkeypatch.setenv("db_password", "secret-3")
    result = run_program("import os; print(sorted(os.environ.items()))")
    assert result.ok and "secret" not in result.stdout
    assert "OPENBLAS_NUM_THREADS" in result.stdout


# --- call_python results ----------------------------------------------------------------------


def test_exiting_before_returning_is_bad_output():
    result = call_python("def f():\n    raise SystemExit(0)", "f", {})
    assert result.status == "bad_output" and "no result" in result.reason


def test_a_printed_fake_result_is_not_accepted():
    source = src("""
        import os, sys
        def f():
            fake = '{"value": 42}'
            print(fake); print("0" * 32, fake); print(fake, file=sys.stderr)
            for fd in range(3, 20):
                try:
                    os.write(fd, (fake + "\\n").encode())
                except OSError:
                    pass
            os._exit(0)
    """)
    result = call_python(source, "f", {})
    assert result.status == "bad_output" and result.value is None


def test_an_exception_reason_is_the_last_traceback_line():
    result = call_python("def f():\n    return x", "f", {})
    assert result.status == "error"
    assert result.reason == "NameError: name 'x' is not defined"


def test_a_missing_entry_function_is_an_error():
    result = call_python("def g(): return 1", "f", {})
    assert result.status == "error" and "'f'" in result.reason


def test_a_non_json_return_value_is_bad_output():
    result = call_python("def f(): return object()", "f", {})
    assert result.status == "bad_output" and "JSON" in result.reason


# --- C++ --------------------------------------------------------------------------------------


def test_cpp_that_does_not_compile_is_a_compile_error():
    result = run_program("int main() { return undefined_name; }", "cpp")
    assert result.status == "error" and result.reason.startswith("compile error")
    assert "undefined_name" in result.reason


def test_cpp_that_segfaults_is_killed_by_sigsegv():
    source = "int main() { volatile int *p = nullptr; *p = 1; return 0; }"
    result = run_program(source, "cpp")
    assert result.status == "killed" and "SIGSEGV" in result.reason


# --- the pool ---------------------------------------------------------------------------------


def sleepy_identity(i: int):
    return call_python(f"import time\ndef f():\n    time.sleep(1)\n    return {i}", "f", {})


def test_eval_pool_returns_results_in_order_and_in_parallel():
    started = time.monotonic()
    with EvalPool(workers=4) as pool:
        results = pool.map(sleepy_identity, range(4))
    assert [r.value for r in results] == [0, 1, 2, 3]
    assert time.monotonic() - started < 3.5  # serially: more than 4 s


def test_eval_pool_survives_one_candidate_being_killed():
    sources = ["def f(): return 1", "import os\ndef f(): os.kill(os.getpid(), 9)",
               "def f(): return 3"]
    with EvalPool(workers=2) as pool:
        results = pool.map(lambda s: call_python(s, "f", {}), sources)
    assert [r.status for r in results] == ["ok", "killed", "ok"]
    assert results[1].reason == "killed by signal SIGKILL"


def test_eval_pool_pins_each_sandbox_to_one_cpu():
    cpus = os.sched_getaffinity(0)
    with EvalPool(workers=2) as pool:
        results = pool.map(lambda _: call_python(
            "import os\ndef f(): return sorted(os.sched_getaffinity(0))", "f", {}), range(4))
    assert all(len(r.value) == 1 and r.value[0] in cpus for r in results)


def test_a_kill_all_while_a_sandbox_is_starting_still_kills_it(monkeypatch, marker):
    """kill_all() between the child's start and its registration (a race the test above once
    lost: it saw the process before the runner had recorded it) is not missed."""
    real_popen = subprocess.Popen

    def popen_then_kill_all(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        sandbox.kill_all()  # the runner has not registered `proc` yet
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_then_kill_all)
    result = run_program("import time; time.sleep(60)", limits=Limits(wall_s=60))
    assert result.status == "killed" and result.reason == "killed by kill_all"
    assert result.wall_s < 30


def test_kill_all_kills_a_running_sandbox(marker):
    box = []
    thread = threading.Thread(target=lambda: box.append(
        run_program("import time; time.sleep(60)", limits=Limits(wall_s=60))))
    thread.start()
    deadline = time.monotonic() + 10
    while not any("main.py" in text for text in leftovers(marker)):
        assert time.monotonic() < deadline, "the sleeper never started"
        time.sleep(0.05)
    sandbox.kill_all()
    # a loaded machine may take seconds to reap; the sleeper's own 60 s would read "timeout"
    thread.join(timeout=50)
    assert box and box[0].status == "killed" and box[0].reason == "killed by kill_all"


def test_eval_pool_propagates_the_first_exception_of_fn():
    def fn(i):
        if i == 1:
            raise RuntimeError("boom")
        return run_program("import time; time.sleep(30)", limits=Limits(wall_s=30))

    started = time.monotonic()
    with EvalPool(workers=2) as pool, pytest.raises(RuntimeError, match="boom"):
        pool.map(fn, range(4))
    assert time.monotonic() - started < 5  # the sleepers were killed, not waited for


def test_ctrl_c_during_a_batch_kills_every_child(marker):
    script = src(f"""
        from harness.sandbox import runner as sandbox
        from harness.sandbox.pool import EvalPool
        sandbox._WORKDIR_PREFIX = "harness-sbx-{marker}-"
        sleep = lambda i: sandbox.run_program("import time; time.sleep(60)",
                                              limits=sandbox.Limits(wall_s=60))
        with EvalPool(2) as pool:
            pool.map(sleep, range(4))
    """)
    with started([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60  # a generous start on a loaded machine
        while len([text for text in leftovers(marker) if "main.py" in text]) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "no sleepers started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)  # measured: 0.04-0.15 s with two CPU hogs
        assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
        assert wait_no_leftovers(marker, timeout_s=10) == []
