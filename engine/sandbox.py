"""Which sandbox layers this machine offers, and the command that starts a worker's sandbox.

Probed once per process (a few milliseconds). Each layer that is missing becomes one warning line
naming what to install; `docs/sandbox.md` says what each layer blocks. Nothing here imports
anything heavy: `sdtui verify` must start fast.
"""

from __future__ import annotations

import errno
import functools
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from engine import _sandbox_worker as worker

WORKER_SCRIPT = Path(worker.__file__).resolve()
IN_SANDBOX_SCRIPT = "/sandbox/worker.pyc"
SANDBOX_TMP_BYTES = 256 << 20  # the sandbox's private /tmp (memory-backed)

# Capabilities the sandbox server keeps (root only): switch each sample child to the worker's
# private uid, kill everything of that uid, clean up the files it left. A sample child has none.
SERVER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER")

# Syscalls a sample never needs and that reach beyond its process (EPERM).
SECCOMP_DENY = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "name_to_handle_at", "open_by_handle_at", "fanotify_init", "lookup_dcookie", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "vhangup",
)
_CLONE_NS_FLAGS = (0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00020000, 0x00000080)
_TIOCSTI = 0x5412


@dataclass
class Limits:
    """Per-sample resource limits (rlimits of the sample child)."""

    memory: int = 1 << 30  # address space, bytes
    output: int = 1 << 20  # bytes in any file it writes, stdout and stderr included
    files: int = 64  # open file descriptors
    processes: int = 64  # tasks of its uid (binds only with a separate uid)
    cpu: int = 4  # CPU seconds (the wall-clock timeout usually fires first)


@dataclass
class Plan:
    """How this machine's workers are sandboxed."""

    layers: list[str]
    warnings: list[str]
    mode: str  # "bwrap" | "unshare" | "none"
    seccomp_bpf: bytes | None
    landlock_abi: int
    root: bool
    missing: list[str] = field(default_factory=list)

    def worker_config(self, limits: Limits) -> dict:
        """What one judge needs to start (and restart) its sandbox server."""
        uid = 2_000_000_000 + secrets.randbelow(1_000_000_000) if self.root else None
        python = os.path.realpath(sys.executable)
        if self.mode == "bwrap":
            tmp_root = "/tmp/samples"
            command = _bwrap_command(python, self.root)
            rules = [("/", _READ)]
        else:
            tmp_root = tempfile.mkdtemp(prefix="sdtui-sandbox-")
            script = worker_program()
            command = [python, "-I", "-S", "-B", script, "server", "{FD}"]
            if self.mode == "unshare":
                command = [shutil.which("unshare"), "--net", "--pid", "--fork", "--kill-child", "--mount-proc", *command]
            rules = [(p, _READ) for p in _python_read_paths(python)] + [(script, _READ)]
            # the import system lists the standard library's directories (names only: no file
            # beneath them is readable unless listed above, so site-packages' files stay closed)
            rules += [(d, _READ_DIR) for d in _stdlib_dirs()]
        if uid is None:
            limits = Limits(**{**limits.__dict__, "processes": _current_nproc()})
        return {
            "command": command,
            "host_tmp": None if self.mode == "bwrap" else tmp_root,
            "server": {
                "tmp_root": tmp_root,
                "uid": uid,
                "pidns": self.mode in ("bwrap", "unshare"),
                "pdeathsig": True,
                "limits": dict(limits.__dict__),
                "seccomp": _b64(self.seccomp_bpf),
                "landlock": self.landlock_abi,
                "pidns_fs": self.mode == "bwrap",  # the file system is already private and read-only
                "landlock_rules": rules,
            },
        }


_READ = 1 | 4 | 8  # landlock: execute, read file, read dir
_READ_DIR = 8


def _b64(data: bytes | None) -> str | None:
    import base64

    return base64.b64encode(data).decode() if data else None


def _current_nproc() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    return soft if soft != resource.RLIM_INFINITY else (1 << 20)


@functools.lru_cache(maxsize=1)
def worker_program() -> str:
    """The worker compiled to a .pyc, which the interpreter runs directly.

    A script given as source is compiled at every start and never cached; compiling this one
    leaves ~4 MB of freed heap behind, pinned by what the worker loads next. In the sandbox
    server that is ~1000 more page-table entries for fork to copy for every sample (and a
    fragmented heap for each sample child to write into). Kept in a private per-user directory,
    named by the source's and the interpreter's hash; falls back to the source file."""
    import hashlib
    import py_compile
    import stat

    try:
        source = WORKER_SCRIPT.read_bytes()
        tag = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
        where = os.path.join(tempfile.gettempdir(), f"sdtui-worker-{os.geteuid()}")
        os.makedirs(where, mode=0o700, exist_ok=True)
        st = os.lstat(where)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return str(WORKER_SCRIPT)  # not ours alone: whoever can write there could change the code
        target = os.path.join(where, f"worker-{tag}.pyc")
        if not os.path.exists(target):
            made = py_compile.compile(str(WORKER_SCRIPT), cfile=f"{target}.{os.getpid()}", doraise=True)
            os.replace(made, target)  # atomic: a concurrent engine process sees all of it or none
        return target
    except (OSError, py_compile.PyCompileError):
        return str(WORKER_SCRIPT)


DISABLE_ENV = "SDTUI_SANDBOX_DISABLE"  # e.g. "bwrap,seccomp": run as if those layers were missing


def probe() -> Plan:
    """Find out which layers work here (cached per value of $SDTUI_SANDBOX_DISABLE)."""
    return _probe(os.environ.get(DISABLE_ENV, ""))


@functools.lru_cache(maxsize=8)
def _probe(disabled_spec: str) -> Plan:
    disabled = {d.strip() for d in disabled_spec.split(",") if d.strip()}
    unknown = disabled - {"bwrap", "unshare", "separate-uid", "seccomp", "landlock"}
    if unknown:
        raise ValueError(f"{DISABLE_ENV}: unknown layer {sorted(unknown)[0]!r}")
    layers, warnings, missing = ["rlimits"], [], []
    root = os.geteuid() == 0 and "separate-uid" not in disabled
    mode = "none"
    if "bwrap" not in disabled and _bwrap_works(root):
        mode = "bwrap"
        layers += ["bwrap", "no-network", "pid-namespace"]
    else:
        missing.append("bwrap")
        why = ("disabled by " + DISABLE_ENV if "bwrap" in disabled else "not installed"
               if shutil.which("bwrap") is None else "installed but cannot create namespaces here")
        warnings.append(
            f"bubblewrap {why}: samples can read the host's files (site-packages included) "
            "and, without Landlock, write them; install it with: apt-get install bubblewrap"
        )
        if os.geteuid() == 0 and "unshare" not in disabled and _unshare_works():
            mode = "unshare"
            layers += ["no-network", "pid-namespace"]
        else:
            missing += ["no-network", "pid-namespace"]
            warnings.append("no network or pid namespace: samples can reach the network and see host processes")
    if root and mode != "bwrap" and not all(_world_readable(d) for d in _stdlib_dirs()):
        # bubblewrap would mount it readable; here another uid could not even import the stdlib
        root = False
        warnings.append("the standard library is not readable by other users (is Python under /root?): "
                        "without bubblewrap samples run as root")
    if root:
        layers.append("separate-uid")
    elif os.geteuid() == 0:
        missing.append("separate-uid")
        warnings.append("samples run as root (no separate uid): the process limit does not bind and a sample can kill its sandbox server")
    bpf = _seccomp_bpf() if "seccomp" not in disabled else None
    if bpf is not None:
        layers.append("seccomp")
    else:
        missing.append("seccomp")
        warnings.append(
            "seccomp filter unavailable (needs the pyseccomp package and libseccomp2): samples can call "
            "ptrace, mount, bpf, io_uring and open network sockets; install with: pip install pyseccomp"
        )
    abi = worker.landlock_abi() if "landlock" not in disabled else 0
    if abi:
        layers.append("landlock")
    elif mode != "bwrap":
        missing.append("landlock")
        warnings.append("Landlock unavailable (Linux >= 5.13 with landlock enabled): nothing restricts file access")
    return Plan(layers, warnings, mode, bpf, abi, root, missing)


def _world_readable(path: str) -> bool:
    """Whether another, unprivileged uid can list `path` (every parent searchable)."""
    p = Path(path)
    try:
        if not p.stat().st_mode & 0o005 == 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in p.parents)
    except OSError:
        return False


def _python_read_paths(python: str) -> list[str]:
    """What a sample may read when there is no bubblewrap: the interpreter, its libraries and the
    standard library, entry by entry so that site-packages stays out."""
    paths = [python, "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/urandom", "/dev/null"]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
        paths.append(os.path.join(libdir, soname))
    for stdlib in _stdlib_dirs():
        for entry in os.listdir(stdlib):
            if entry not in ("site-packages", "dist-packages"):
                paths.append(os.path.join(stdlib, entry))
    return paths


def _stdlib_dirs() -> list[str]:
    """The base interpreter's standard library (never a virtualenv's lib directory)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}
    return list(dict.fromkeys(sysconfig.get_paths(vars=base)[k] for k in ("stdlib", "platstdlib")))


def _site_dirs(python_lib_dirs: list[str]) -> list[str]:
    found = set()
    for base in python_lib_dirs:
        for name in ("site-packages", "dist-packages"):
            found.add(os.path.join(base, name))
    for pattern in ("/usr/lib/python3*/*-packages", "/usr/local/lib/python3*/*-packages", "/usr/lib/python3/dist-packages"):
        found.update(glob.glob(pattern))
    return sorted(p for p in found if os.path.isdir(p))


def _bwrap_command(python: str, root: bool) -> list[str]:
    """bubblewrap: read-only system and standard library, no site-packages, nothing of the host's
    home, workspace or environment, private /tmp, no network, own pid namespace."""
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if root:
        for cap in SERVER_CAPS:
            cmd += ["--cap-add", cap]
    cmd += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "PYTHONHASHSEED", "0", "--setenv", "HOME", "/tmp",
            # resolve every symbol at start-up: lazy binding would write the linker's tables in each
            # sample child (copy-on-write faults); the server removes it before forking any
            "--setenv", "LD_BIND_NOW", "1"]
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    lib_dirs = _stdlib_dirs()
    extra = [python, *lib_dirs]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
        extra.append(os.path.join(libdir, soname))
    made = set()
    for path in dict.fromkeys(extra):
        if not path.startswith("/usr/") and os.path.exists(path):
            # parents world-traversable (bwrap would copy e.g. /root's 0700): the sample runs as another uid
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    cmd += ["--perms", "0755", "--dir", str(parent)]
            cmd += ["--ro-bind", path, path]
    for site in _site_dirs(lib_dirs):  # hidden behind an empty, read-only directory
        cmd += ["--perms", "0555", "--size", "4096", "--tmpfs", site, "--remount-ro", site]
    if os.path.exists("/etc/ld.so.cache"):
        cmd += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    program = worker_program()
    inside = IN_SANDBOX_SCRIPT if program.endswith(".pyc") else IN_SANDBOX_SCRIPT[:-1]
    cmd += ["--ro-bind", program, inside, "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(SANDBOX_TMP_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp",
            "--", python, "-I", "-S", "-B", inside, "server", "{FD}"]
    return cmd


def _bwrap_works(root: bool) -> bool:
    if shutil.which("bwrap") is None:
        return False
    python = os.path.realpath(sys.executable)
    cmd = _bwrap_command(python, root)
    cmd[cmd.index("--") + 1 :] = [python, "-I", "-S", "-c", "import os; os.stat('/tmp')"]
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        cmd = [exe, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "true"]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _seccomp_bpf() -> bytes | None:
    """A deny-list filter compiled by libseccomp (through pyseccomp) into raw BPF, which the sandbox
    server installs with prctl: the sandbox itself needs neither the package nor site-packages."""
    try:
        import pyseccomp as sc
    except Exception:  # ImportError, or libseccomp.so.2 missing (OSError)
        return None
    try:
        f = sc.SyscallFilter(defaction=sc.ALLOW)
        deny = sc.ERRNO(errno.EPERM)
        for name in SECCOMP_DENY:
            try:
                f.add_rule(deny, name)
            except Exception:  # not a syscall on this architecture
                pass
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # glibc falls back to clone, whose flags we can see
        for flag in _CLONE_NS_FLAGS:
            f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        f.add_rule(deny, "ioctl", sc.Arg(1, sc.EQ, _TIOCSTI))  # no typing into a terminal
        with tempfile.TemporaryFile() as fh:
            f.export_bpf(fh)
            fh.seek(0)
            return fh.read()
    except Exception:
        return None
