"""The verifier's worker processes. Standard library only: it runs as `python -I -S`, and inside the
sandbox site-packages are not even mounted. The engine imports it only for its framing helpers.

One verifier worker is two long-lived processes (see docs/sandbox.md):

* the judge (role `judge`, trusted, outside the sandbox) reads jobs from the engine and, for each
  sample, executes the prompt's helpers, the setup and the tests with pristine builtins, calling
  the sample's functions through a proxy;
* the sandbox server (role `server`, started inside bubblewrap) is a fork server: it keeps one
  sample child forked ahead and hands the judge that child's proxy socket; the child loads
  `prompt + completion` and answers the judge's calls with plain values. After each sample the
  server kills everything the sample started and forks the next child.

The verdict is computed in the judge from plain values alone (exact builtin types rebuilt here
from JSON), so nothing the sample does to its own process (exit codes, printed markers, patched
builtins, objects whose `__eq__` lies, forged frames or fds) can make it pass.
"""

from __future__ import annotations

# ast: the judge parses prompts with it, and a sandbox server must have it loaded too: without
# the compiler's AST types, every sample child builds them at its first compile() (~1.4 ms).
import ast
import base64
import builtins
import collections
import ctypes
import itertools
import json
import os
import reprlib
import resource
import signal
import socket
import struct
import sys
import time
import types

MAX_MESSAGE = 64 << 20  # bytes in one protocol message
MAX_DEPTH = 100  # nesting of a value crossing the proxy
MAX_ITEMS = 1_000_000  # items taken from an iterator the sample returns
OUTPUT_HEAD = 4096  # bytes of stdout/stderr sent back per sample

# ---------------------------------------------------------------------------------------- framing
_HDR = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


class PeerGone(Exception):
    """The other side closed its end (it exited or was killed)."""


def _not_json(value):
    raise TypeError(f"a {type(value).__name__} is not JSON data")


# json.dumps/json.loads build a new encoder/decoder (Python-level __init__, a new C scanner) on every
# call. Made once instead: about 3x less work per small message, and in a freshly forked sample
# child far fewer pages touched (each one a copy-on-write fault). Not ensure_ascii: its \\u
# escapes would turn a lone surrogate pair into one character on the way back; raw text with
# "surrogatepass" keeps every str exactly. No circular-reference markers: every message is a tree
# built by `encode` (depth-limited) or by this module.
_ENCODER = (json.encoder.c_make_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, True)
            if json.encoder.c_make_encoder is not None else None)


def _dumps(obj) -> bytes:
    if _ENCODER is None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_not_json)
    else:
        text = "".join(_ENCODER(obj, 0))
    return text.encode("utf-8", "surrogatepass")


def json_reader(hook=None):
    """`loads(data: bytes)` for one message, with `hook` as json's object_hook; made once per peer."""
    decoder = json.JSONDecoder(object_hook=hook)
    scan = json.scanner.c_make_scanner(decoder) if json.scanner.c_make_scanner is not None else decoder.scan_once

    def loads(data: bytes):
        text = data.decode("utf-8", "surrogatepass")
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise ValueError("not JSON") from None
        if end != len(text):
            raise ValueError("data after the JSON value")
        return value

    return loads


_loads = json_reader()


def send_msg(sock: socket.socket, obj, fds: list[int] = ()) -> None:
    data = _dumps(obj)
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_MESSAGE} limit")
    head = _HDR.pack(len(data))
    if fds:
        socket.send_fds(sock, [head], list(fds))
        sock.sendall(data)
    else:
        sock.sendall(head + data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int] | None = None, pending: bytearray | None = None) -> bytes:
    if pending is not None:  # read ahead into `pending`: one recv per message, usually
        while len(pending) < n:
            chunk = sock.recv(max(n - len(pending), 65536))
            if not chunk:
                raise PeerGone()
            pending += chunk
        data = bytes(pending[:n])
        del pending[:n]
        return data
    buf = bytearray()
    while len(buf) < n:
        if fds is not None:
            chunk, got, _, _ = socket.recv_fds(sock, n - len(buf), 4)
            fds.extend(got)
        else:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise PeerGone()
        buf += chunk
    return bytes(buf)


def recv_msg(sock: socket.socket, loads=_loads, fds: list[int] | None = None, buf: bytearray | None = None):
    (n,) = _HDR.unpack(_recv_exact(sock, 4, fds, buf))
    if n > MAX_MESSAGE:
        raise ProtocolError(f"message of {n} bytes is over the {MAX_MESSAGE} limit")
    data = _recv_exact(sock, n, None, buf)
    try:
        return loads(data)
    except (ValueError, TypeError, RecursionError, MemoryError, ProtocolError) as e:
        raise ProtocolError(f"unreadable message: {type(e).__name__}: {str(e)[:200]}") from None


def write_frame(fd: int, obj) -> None:
    data = _dumps(obj)
    view = memoryview(_HDR.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int):
    def exact(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise PeerGone()
            buf += chunk
        return bytes(buf)

    (n,) = _HDR.unpack(exact(4))
    return _loads(exact(n))


# ------------------------------------------------------------------------------------------ codec
# A value crosses the proxy as JSON: None, bool, int, float (NaN/Infinity allowed), str and lists
# are themselves; every other value is a one-key object naming its type. The judge side rebuilds
# only exact builtin (and a few plain stdlib value) types, so whatever the sandbox sends, the tests
# compare values whose behaviour the sample did not define.

_FACTORIES = {f.__name__: f for f in (int, float, str, list, dict, set, tuple, bool, frozenset)}
_SUBCLASSABLE = (int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset)


class Unportable(Exception):
    """A value that cannot cross the proxy."""


def encode(value, handle=None, depth: int = 0):
    """`value` as JSON-able data; `handle(value)` gives the tag for anything else (or raises)."""
    t = type(value)
    if value is None or t is bool or t is float or t is str:
        return value
    if t is int:  # a big one as hex: decimal text of a huge int is slow (and capped) to read
        return value if -(1 << 63) <= value < (1 << 63) else {"i": hex(value)}
    if depth > MAX_DEPTH:
        raise Unportable(f"value nested more than {MAX_DEPTH} deep")
    d = depth + 1
    if t is list:
        return [encode(v, handle, d) for v in value]
    if t is tuple:
        return {"t": [encode(v, handle, d) for v in value]}
    if t is dict:
        return {"d": [[encode(k, handle, d), encode(v, handle, d)] for k, v in value.items()]}
    if t is set:
        return {"s": [encode(v, handle, d) for v in value]}
    if t is frozenset:
        return {"fs": [encode(v, handle, d) for v in value]}
    if t is bytes:
        return {"b": base64.b64encode(value).decode()}
    if t is bytearray:
        return {"ba": base64.b64encode(value).decode()}
    if t is complex:
        return {"c": [value.real, value.imag]}
    if t is collections.Counter:
        return {"Counter": [[encode(k, handle, d), encode(v, handle, d)] for k, v in value.items()]}
    if t is collections.OrderedDict:
        return {"OrderedDict": [[encode(k, handle, d), encode(v, handle, d)] for k, v in value.items()]}
    if t is collections.defaultdict:
        f = value.default_factory
        name = f.__name__ if f is not None and _FACTORIES.get(getattr(f, "__name__", None)) is f else None
        items = [[encode(k, handle, d), encode(v, handle, d)] for k, v in value.items()]
        return {"defaultdict": [name, items]}
    if t is collections.deque:
        return {"deque": [[encode(v, handle, d) for v in value], value.maxlen]}
    kind = (getattr(t, "__module__", ""), getattr(t, "__qualname__", ""))  # no import of decimal here
    if kind == ("decimal", "Decimal"):
        return {"Decimal": str(value)}
    if kind == ("fractions", "Fraction"):
        return {"Fraction": [encode(value.numerator), encode(value.denominator)]}
    if t is range:
        return {"range": [value.start, value.stop, value.step]}
    for base in _SUBCLASSABLE:  # a subclass of a builtin crosses as its plain value
        if isinstance(value, base):
            return encode(_plain(value, base), handle, d)
    if handle is None:
        raise Unportable(f"a {t.__name__} value")
    return handle(value, d)


def _plain(value, base):
    if base is int:
        return int.__int__(value)
    if base is float:
        return float.__float__(value)
    if base is complex:
        return complex(float(value.real), float(value.imag))
    if base is str:
        return str.__str__(value)
    if base is dict:
        return dict(dict.items(value))
    return base(value)


def _is_iterator(value) -> bool:
    t = type(value)
    return hasattr(t, "__next__") and hasattr(t, "__iter__")


def _need(cond: bool) -> None:
    if not cond:
        raise ProtocolError("malformed value")


def _num(x) -> bool:
    return type(x) in (int, float)


def _pairs(v) -> list:
    _need(type(v) is list and all(type(p) is list and len(p) == 2 for p in v))
    return v


def decode_tag(d: dict, extra=None):
    """json object_hook: rebuild one tagged value from already-decoded children."""
    if len(d) != 1:
        raise ProtocolError("malformed value")
    ((tag, v),) = d.items()
    try:
        if tag == "t":
            _need(type(v) is list)
            return tuple(v)
        if tag == "i":
            _need(type(v) is str and len(v) < 10_000_000)
            return int(v, 16)
        if tag == "s":
            _need(type(v) is list)
            return set(v)
        if tag == "fs":
            _need(type(v) is list)
            return frozenset(v)
        if tag == "d":
            return {k: x for k, x in _pairs(v)}
        if tag in ("b", "ba"):
            _need(type(v) is str)
            raw = base64.b64decode(v, validate=True)
            return raw if tag == "b" else bytearray(raw)
        if tag == "c":
            _need(type(v) is list and len(v) == 2 and _num(v[0]) and _num(v[1]))
            return complex(v[0], v[1])
        if tag == "Counter":
            return collections.Counter({k: x for k, x in _pairs(v)})
        if tag == "OrderedDict":
            return collections.OrderedDict(_pairs(v))
        if tag == "defaultdict":
            _need(type(v) is list and len(v) == 2 and (v[0] is None or v[0] in _FACTORIES))
            return collections.defaultdict(_FACTORIES[v[0]] if v[0] else None, _pairs(v[1]))
        if tag == "deque":
            _need(type(v) is list and len(v) == 2 and type(v[0]) is list and (v[1] is None or type(v[1]) is int))
            return collections.deque(v[0], v[1])
        if tag == "Decimal":
            _need(type(v) is str and len(v) < 10_000)
            import decimal

            return decimal.Decimal(v)
        if tag == "Fraction":
            _need(type(v) is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is int and v[1] != 0)
            import fractions

            return fractions.Fraction(v[0], v[1])
        if tag == "range":
            _need(type(v) is list and len(v) == 3 and all(type(x) is int for x in v) and v[2] != 0)
            return range(*v)
        if tag == "iter":  # a generator or other iterator the sample returned, materialised
            _need(type(v) is list)
            return iter(v)
    except ProtocolError:
        raise
    except Exception as e:  # unhashable keys, bad base64, ...
        raise ProtocolError(f"malformed value: {type(e).__name__}") from None
    if extra is not None:
        return extra(tag, v)
    raise ProtocolError(f"unknown value tag {tag!r}")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 8, 8, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def _short(value, n: int = 120) -> str:
    try:
        text = _REPR.repr(value)  # bounded work, whatever the size of the value
    except Exception:
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# =========================================================================================
# Judge side (trusted): runs the tests, talks to the sample child as a client
# =========================================================================================


class SampleDied(Exception):
    """The sample's process ended (or broke the protocol) while the tests needed it."""


class SampleError(Exception):
    """An exception raised by the sample that is not a builtin Exception type (SystemExit, ...)."""


class Remote:
    """A value the sample returned that is not plain data. It stays in the sandbox and is opaque
    here: equal only to itself, so no comparison in the tests can be steered by the sample. It can
    be passed back to the sample, or called when it is a function."""

    __slots__ = ("_conn", "_id", "_type")

    def __init__(self, conn: "Conn", ident: int, typename: str) -> None:
        self._conn, self._id, self._type = conn, ident, typename

    def __call__(self, *args, **kwargs):
        return self._conn.call({"ref": self._id}, f"<{self._type}>", args, kwargs)

    def __repr__(self) -> str:
        return f"<the sample's {self._type} object>"


class RemoteFunction:
    """Stands for a global the sample's program defines (the entry point, a class the tests build)."""

    def __init__(self, conn: "Conn", name: str) -> None:
        self._conn, self.__name__, self.__qualname__ = conn, name, name

    def __call__(self, *args, **kwargs):
        return self._conn.call({"name": self.__name__}, self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<the sample's {self.__name__}>"


class RemoteGlobal:
    """An object the problem's setup built in the sandbox from the sample's classes: opaque here,
    handed to the sample by name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj not in (StopIteration, StopAsyncIteration)
}


class Conn:
    """The judge child's end of the proxy."""

    def __init__(self, sock: socket.socket, setup_globals: dict) -> None:
        self.sock = sock
        self.callbacks: list = []
        self.setup_globals = setup_globals  # id(obj) -> name, for objects the setup defines on both sides
        self._last: tuple = ()
        self._buf = bytearray()
        self.used: set[str] = set()  # which proxy mechanisms beyond plain values this sample needed
        self._loads = json_reader(self._hook)
        self.trace: list[str] = []  # what the sample answered to each call of the tests: its behaviour

    def signature(self) -> str:
        """A digest of the sample's behaviour on the tests' inputs: every value it returned and every
        exception it raised, in order. Two samples that answer alike have the same signature, however
        their code differs (behavioural diversity, engine.diversity). Free: the judge sees the values."""
        import hashlib

        return hashlib.blake2b("\x00".join(self.trace).encode(errors="replace"), digest_size=8).hexdigest()

    # values -------------------------------------------------------------------------------------
    def _hook(self, d: dict):
        if "iter" in d:
            self.used.add("iterator")
        return decode_tag(d, self._extra)

    def _extra(self, tag: str, v):
        if tag == "ref":
            _need(type(v) is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is str)
            self.used.add("sample object")
            return Remote(self, v[0], v[1][:80])
        raise ProtocolError(f"unknown value tag {tag!r}")

    def _handle(self, value, depth: int):
        if isinstance(value, Remote) and value._conn is self:
            return {"ref": value._id}
        if isinstance(value, RemoteFunction):
            return {"name": value.__name__}
        if isinstance(value, RemoteGlobal):
            self.used.add("setup object by name")
            return {"global": value.name}
        name = self.setup_globals.get(id(value))
        if name is not None:
            self.used.add("setup object by name")
            return {"global": name}
        name = getattr(value, "__name__", None)
        if type(name) is str and getattr(builtins, name, None) is value:  # int, str, len, ...
            self.used.add("builtin by name")
            return {"builtin": name}
        if callable(value):  # a function of the tests (a key, a predicate): the sample calls back
            self.used.add("callback")
            self.callbacks.append(value)
            return {"cb": len(self.callbacks) - 1}
        raise Unportable(f"a {type(value).__name__} value")

    def encode(self, value):
        return encode(value, self._handle)

    def recv(self):
        try:
            return recv_msg(self.sock, self._loads, buf=self._buf)
        except (PeerGone, ConnectionError):
            raise SampleDied() from None
        except ProtocolError as e:
            raise SampleDied(str(e)) from None

    # calls --------------------------------------------------------------------------------------
    def call(self, target: dict, label: str, args, kwargs):
        try:
            msg = ["call", target, [self.encode(a) for a in args], [[k, self.encode(v)] for k, v in kwargs.items()]]
        except Unportable as e:
            raise _CannotCarry(f"the tests pass {e} to {label}(), which cannot cross into the sandbox") from None
        self._last = (label, args, kwargs)
        try:
            send_msg(self.sock, msg)
        except OSError:
            raise SampleDied() from None
        value = self.wait()
        self._last = (label, args, kwargs, value)
        self.trace.append(f"{label}={value!r}"[:10_000])
        return value

    @property
    def last_call(self) -> str:
        """`f(args) returned value` for the last call (formatted only when a failure needs it)."""
        if not self._last:
            return ""
        label, args, kwargs = self._last[:3]
        shown = ", ".join([_short(a, 60) for a in args] + [f"{k}={_short(v, 60)}" for k, v in kwargs.items()])
        text = f"{label}({shown})"
        return text + f" returned {_short(self._last[3])}" if len(self._last) == 4 else text

    def wait(self):
        """Wait for the reply to our request, serving the sample's callbacks meanwhile."""
        while True:
            msg = self.recv()
            if type(msg) is not list or not msg or type(msg[0]) is not str:
                raise SampleDied("malformed message")
            op = msg[0]
            if op == "return" and len(msg) == 2:
                return msg[1]
            if op == "raise" and len(msg) == 4:
                self.trace.append(f"raise {msg[1]!r}")
                raise _sample_exception(msg[1], msg[2], msg[3])
            if op == "callback" and len(msg) == 4:
                self._serve_callback(msg)
                continue
            raise SampleDied(f"unexpected message {op!r}")

    def _serve_callback(self, msg) -> None:
        ident, args, kwargs = msg[1], msg[2], msg[3]
        if type(ident) is not int or not 0 <= ident < len(self.callbacks) or type(args) is not list:
            raise SampleDied("malformed callback")
        try:
            result = self.callbacks[ident](*args, **dict(_pairs(kwargs)))
            reply = ["return", self.encode(result)]
        except Unportable as e:
            reply = ["raise", "TypeError", f"callback returned {e}", ""]
        except Exception as e:
            reply = ["raise", type(e).__name__, str(e)[:500], ""]
        send_msg(self.sock, reply)


class _ChildLost(Exception):
    """The pre-forked sample child was gone before it got its program (nothing of the sample ran)."""


class _CannotCarry(Exception):
    """The tests hand the sample a value the proxy cannot carry (a judge-side limitation)."""


def _sample_exception(typename, message, where) -> BaseException:
    if type(typename) is not str or type(message) is not str or type(where) is not str:
        return SampleDied("malformed exception")
    cls = _BUILTIN_EXCEPTIONS.get(typename)
    exc: BaseException
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:
            exc = SampleError(f"{typename}: {message}")
    else:
        exc = SampleError(f"{typename}: {message}" if message else typename)
    exc._sample_raised = (typename[:80], message[:300], where[:200])  # type: ignore[attr-defined]
    return exc


def _compile_prompt(prompt: str):
    """The prompt's own code (helpers, imports, the stub), which the tests may call. A prompt that
    is not complete code on its own (it ends inside a function) gets a `pass` body."""
    for text in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            return ast.parse(text)
        except SyntaxError:
            continue
    return None


def _stub_names(tree) -> set[str]:
    """Functions the prompt declares without a body: the sample's to define."""
    out = set()
    for node in tree.body if tree is not None else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body):
                out.add(node.name)
    return out


def _bound_names(tree) -> set[str]:
    """Names a module binds at its top level."""
    out = set()
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        for t in targets:
            out.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return out


def _free_names(tree) -> set[str]:
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound


def _free_names_of_code(code) -> set[str]:
    """`_free_names` from the compiled code instead of the AST (same result on all of HumanEval's
    and MBPP's tests, in a tenth of the time): names read as globals (LOAD_GLOBAL, LOAD_NAME)
    minus every name bound anywhere (stored as a global or a module name, or local to a function)."""
    import dis

    loads = {dis.opmap[n] for n in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS") if n in dis.opmap}
    stores = {dis.opmap[n] for n in ("STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL")}
    load_global, extended = dis.opmap["LOAD_GLOBAL"], dis.EXTENDED_ARG
    loaded, bound = set(), set()
    todo = [code]
    while todo:
        c = todo.pop()
        bound.update(c.co_varnames, c.co_cellvars, c.co_freevars)
        names, raw, ext = c.co_names, c.co_code, 0
        for op, arg in zip(raw[0::2], raw[1::2]):
            if op == extended:
                ext = (ext | arg) << 8
                continue
            arg, ext = ext | arg, 0
            if op in loads:
                loaded.add(names[arg >> 1 if op == load_global else arg])  # 3.11+: LOAD_GLOBAL's low bit is a flag
            elif op in stores:
                bound.add(names[arg])
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    return loaded - bound


# stdlib modules the tests may use unimported because the sample's program imported them
_JUDGE_MODULES = {
    "math", "cmath", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
    "operator", "random", "statistics", "fractions", "decimal", "copy", "typing", "datetime",
    "hashlib", "json", "array", "numbers", "sys", "time", "calendar", "textwrap", "unicodedata",
}


def _test_lineno(exc: BaseException) -> int:
    """The line of the tests where `exc` went through last (0: it did not)."""
    lineno = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _failure_detail(exc: BaseException, test_src: str, conn: Conn | None) -> str:
    lines = test_src.splitlines()
    lineno = _test_lineno(exc)
    test_line = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
    raised = getattr(exc, "_sample_raised", None)
    if raised is not None:
        typename, message, where = raised
        detail = f"{typename}: {message}" if message else typename
        if where:
            detail += f" (sample {where})"
        if test_line:
            detail += f" in: {test_line}"
    elif isinstance(exc, AssertionError):
        detail = f"AssertionError: {exc}" if str(exc) else f"assertion failed: {test_line}"
        if conn is not None and conn.last_call and "returned" in conn.last_call:
            detail += f" [last call {conn.last_call}]"
    else:
        detail = f"{type(exc).__name__}: {exc}"
        if test_line:
            detail += f" in: {test_line}"
    return detail


def _assert_lines(code) -> list[int]:
    """The lines of the tests' assert statements, in source order, read from the compiled code (an
    assert compiles to LOAD_ASSERTION_ERROR; `assert True` placeholders compile to nothing)."""
    import dis

    load_assertion, extended = dis.opmap["LOAD_ASSERTION_ERROR"], dis.EXTENDED_ARG
    lines: set[int] = set()
    todo = [code]
    while todo:
        c = todo.pop()
        raw, offsets = c.co_code, []
        i = raw.find(load_assertion)
        while i >= 0:  # an opcode at an even offset (odd offsets hold arguments)
            if i % 2 == 0 and (i == 0 or raw[i - 2] != extended):
                offsets.append(i)
            i = raw.find(load_assertion, i + 1)
        if offsets:
            k = 0  # co_lines() runs in offset order, as `offsets` does
            for start, end, line in c.co_lines():
                while k < len(offsets) and offsets[k] < end:
                    if offsets[k] >= start and line is not None:
                        lines.add(line)
                    k += 1
                if k == len(offsets):
                    break
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    return sorted(lines)


class Credit:
    """Partial credit of one sample: the tests' asserts that passed before the first failure. The
    judge counts them from the line where the tests stopped (asserts above it in the source ran and
    passed: exact for straight-line tests, which are all of MBPP's and HumanEval's), never from
    anything the sample reports."""

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.stopped_at: int | None = None  # None: the tests ran to the end

    def failed_at(self, lineno: int) -> None:
        self.stopped_at = lineno

    def counts(self) -> list[int] | None:
        if not self.lines:
            return None
        passed = len(self.lines) if self.stopped_at is None else sum(1 for line in self.lines if line < self.stopped_at)
        return [passed, len(self.lines)]


class _Compiled:
    """A problem's prompt, setup and tests, compiled once per judge (samples of one problem share it)."""

    def __init__(self, job: dict) -> None:
        self.error = ""
        tree = _compile_prompt(job["prompt"])
        self.prompt = compile(tree, "<prompt>", "exec") if tree is not None else None
        self.stubs = _stub_names(tree) | {job["entry_point"]}
        self.setup = None
        self.setup_bound: list[str] = []
        if job["setup"]:
            try:
                setup_tree = ast.parse(job["setup"])
                self.setup = compile(setup_tree, "<setup>", "exec")
                self.setup_bound = sorted(_bound_names(setup_tree))
            except SyntaxError as e:
                self.error = f"the problem's setup code does not compile: {e}"
        self.free: set[str] = set()
        self.assert_lines: list[int] = []
        try:
            # Straight from source (building Python AST objects would double the cost: each
            # problem is compiled once per judge, which in a short run is often once per sample).
            self.test = compile(job["test"], "<test>", "exec")
        except SyntaxError as e:
            self.error = f"the problem's test code does not compile: {e}"
            return
        self.assert_lines = _assert_lines(self.test)
        try:
            self.free = _free_names_of_code(self.test)
        except Exception:  # a bytecode this scan does not know: the same from the AST, 10x slower
            self.free = _free_names(ast.parse(job["test"]))

    def wanted(self, ns: dict) -> list[str]:
        """Names the tests use that neither `ns` (prompt, setup) nor the builtins define: the
        sample's program may (a module it imported, MBPP's helper classes)."""
        return sorted(n for n in self.free if n not in ns and not hasattr(builtins, n))


_COMPILED: dict[tuple, _Compiled] = {}


def _compiled(job: dict) -> _Compiled:
    key = (job["prompt"], job["setup"], job["test"], job["entry_point"])
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) > 2000:
            _COMPILED.clear()
        found = _COMPILED[key] = _Compiled(job)
    return found


def _run_tests(job: dict, sock: socket.socket, credit: Credit) -> dict:
    code = _compiled(job)
    if code.error:
        return {"status": "error", "detail": code.error}
    credit.lines = code.assert_lines
    credit.failed_at(0)  # nothing passed until the tests have run
    mod = types.ModuleType("__test__")
    sys.modules["__test__"] = mod
    ns = mod.__dict__
    if code.prompt is not None:
        try:
            exec(code.prompt, ns)
        except Exception:
            pass  # e.g. an import the judge lacks; the sample then fails to load the same code
    before = dict(ns)
    remote_setup: list[str] = []
    if code.setup is not None:
        try:
            exec(code.setup, ns)
        except NameError:
            # The setup builds its objects from classes the sample's program defines (MBPP's
            # trees of `Node`): they exist only in the sandbox, where the setup also runs, and the
            # tests hand them to the sample by name.
            ns.clear()
            ns.update(before)
            remote_setup = code.setup_bound
        except Exception as e:
            return {"status": "error", "detail": f"the problem's setup code fails: {type(e).__name__}: {e}"}
    # objects the setup code binds exist in the sandbox too (it runs there after the program)
    setup_names = {id(v): k for k, v in ns.items() if before.get(k) is not v and not k.startswith("__")
                   and not isinstance(v, types.ModuleType) and not callable(v)}
    conn = Conn(sock, setup_names)
    for name in remote_setup:
        conn.used.add("setup in sandbox")
        ns[name] = RemoteGlobal(name)
    entry = job["entry_point"]
    for name in code.stubs:
        ns[name] = RemoteFunction(conn, name)
    free = code.wanted(ns)

    try:
        # The program, and the names to look up once it has loaded (one round trip for both).
        sock.sendall(_job_frame(job["program"], job["setup"], free))
    except OSError:
        raise _ChildLost() from None
    try:
        first = conn.recv()
    except _Deadline:
        raise
    except SampleDied as e:
        return {"status": "failed", "died": "before the tests ran", "detail": str(e)}
    if type(first) is not list or len(first) != 2 or first[0] != "ready":
        if type(first) is list and len(first) == 2 and first[0] == "load_error" and type(first[1]) is str:
            return {"status": "failed", "detail": f"the program does not load: {first[1][:300]}"}
        return {"status": "failed", "detail": "the sample's process broke the protocol before the tests ran"}

    try:
        if free:
            names = first[1]
            if type(names) is not list:
                raise SampleDied("malformed names reply")
            for pair in names:
                if type(pair) is not list or len(pair) != 2:
                    continue
                name, kind = pair
                if type(name) is not str or name not in free or type(kind) is not list or not kind:
                    continue
                if kind[0] == "module" and len(kind) == 2 and kind[1] in _JUDGE_MODULES:
                    ns[name] = __import__(kind[1])
                elif kind[0] == "callable":
                    conn.used.add("sample name")
                    ns[name] = RemoteFunction(conn, name)
                elif kind[0] == "value" and len(kind) == 2:
                    ns[name] = kind[1]
        exec(code.test, ns)
        if job["has_check"]:
            check = ns.get("check")
            if not callable(check):
                return {"status": "error", "detail": "the problem's test code does not define check(candidate)"}
            check(ns[entry] if isinstance(ns.get(entry), RemoteFunction) else RemoteFunction(conn, entry))
    except _Deadline:
        raise
    except SampleDied as e:
        credit.failed_at(_test_lineno(e))
        where = f"during {conn.last_call}" if conn.last_call else "during the tests"
        conn.trace.append("died")
        return {"status": "failed", "died": where, "detail": str(e), "sig": conn.signature()}
    except _CannotCarry as e:
        return {"status": "error", "detail": str(e)}
    except BaseException as e:  # noqa: BLE001 - a test failure of any kind
        credit.failed_at(_test_lineno(e))
        return {"status": "failed", "detail": _failure_detail(e, job["test"], conn), "via": sorted(conn.used),
                "sig": conn.signature()}
    credit.stopped_at = None  # the tests ran to the end
    return {"status": "passed", "detail": "", "via": sorted(conn.used), "sig": conn.signature()}


class _Deadline(BaseException):
    """The sample's time is up (a BaseException: tests' `except Exception` must not swallow it)."""


_RECURSION_LIMIT = sys.getrecursionlimit()


def _reset_judge_state() -> None:
    """What a problem's tests may have changed in this long-lived process."""
    sys.modules.pop("__test__", None)
    sys.setrecursionlimit(_RECURSION_LIMIT)
    if "decimal" in sys.modules:
        sys.modules["decimal"].setcontext(sys.modules["decimal"].Context())


_FD = struct.Struct("i")


def _memory_file(name: str) -> int:
    """A file with no path (nothing else can open it) for a sample's stdout or stderr."""
    try:
        return os.memfd_create(name, 0)  # RLIMIT_FSIZE applies to it as to any file
    except (AttributeError, OSError):
        import tempfile

        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())


class Sandbox:
    """The judge's handle on its sandbox server.

    After the start-up exchange the server talks in fixed little byte messages, so that its own
    per-sample work stays small (see `_server_main`). b"C" + output pair + an fd: the next
    sample child (forked ahead) is ready, here is the judge's end of its proxy socket; the judge
    sends the program straight to the child. b"E" (the judge is done with the child) or b"K"
    (timed out: kill it at once): the server kills everything of the sample, reaps it and
    answers b"S" + its wait status. Output goes to two pairs of memory files that the judge owns
    and reads back itself, used in turn, so the next child (forked as soon as this one is
    reaped) never writes to a file the judge is still reading."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.proc = None
        self.sock: socket.socket | None = None
        self.info: dict = {}
        self.outputs: list[tuple[int, int]] = []
        self.pair = 0  # which output pair the current child writes to

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        import subprocess

        self.stop()
        mine, theirs = socket.socketpair()
        cmd = [a.replace("{FD}", str(theirs.fileno())) for a in self.config["command"]]
        self.proc = subprocess.Popen(
            cmd, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, close_fds=True,
        )
        theirs.close()
        self.sock = mine
        self.outputs = [(_memory_file("stdout"), _memory_file("stderr")) for _ in range(2)]
        mine.settimeout(30)
        try:
            send_msg(mine, ["init", self.config["server"]], [fd for pair in self.outputs for fd in pair])
            reply = recv_msg(mine)
        except (PeerGone, OSError, ProtocolError) as e:
            err = b""
            try:
                self.proc.kill()
                err = self.proc.stderr.read()[-2000:]
            except Exception:
                pass
            self.stop()
            text = " ".join(err.decode(errors="replace").split())
            raise RuntimeError(f"the sandbox did not start ({type(e).__name__}): {text}") from None
        mine.settimeout(None)
        self.proc.stderr.close()
        if reply[0] != "ready":
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {reply}")
        self.info = reply[1]

    def child(self) -> socket.socket:
        """The proxy socket of the next sample child (forked ahead by the server)."""
        self.sock.settimeout(30)
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 2, 1)
        finally:
            if self.sock is not None:
                self.sock.settimeout(None)
        if len(data) != 2 or data[:1] != b"C" or data[1] not in (0, 1) or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ProtocolError("the sandbox server sent no sample child")
        self.pair = data[1]
        return socket.socket(fileno=fds[0])

    def end(self, timed_out: bool = False) -> dict | None:
        """The sample is over: the server kills everything it started; how it ended and what it
        printed (None, and the server stopped, when it is gone: the next sample restarts it)."""
        try:
            self.sock.settimeout(10)
            self.sock.sendall(b"K" if timed_out else b"E")
            reply = _recv_exact(self.sock, 1 + _FD.size)
            self.sock.settimeout(None)
        except (OSError, PeerGone, AttributeError):
            reply = b""
        if reply[:1] != b"S":
            self.stop()
            return None
        (status,) = _FD.unpack(reply[1:])
        out, out_size = _take_output(self.outputs[self.pair][0])
        err, err_size = _take_output(self.outputs[self.pair][1])
        limit = self.config["server"]["limits"]["output"]
        note = ""
        if max(out_size, err_size) >= limit:
            note = f"output reached the {limit >> 10} KiB limit"
        if status >= 0 and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
            note = "CPU time limit reached"
        if status >= 0 and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 112:
            note = "sandbox setup failed: " + err.strip()[-300:]
        return {"exit": _exit_text(status) if status >= 0 else "ended", "stdout": out, "stderr": err, "note": note}

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
            self.proc = None
        for pair in self.outputs:
            for fd in pair:
                os.close(fd)
        self.outputs = []


def _take_output(fd: int) -> tuple[str, int]:
    """What a finished sample wrote to `fd` (the first OUTPUT_HEAD bytes) and its size; emptied."""
    size = os.fstat(fd).st_size
    if not size:
        return "", 0
    data = os.pread(fd, OUTPUT_HEAD, 0)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)  # the offset is shared with the sample child's fd 1 or 2
    return data.decode("utf-8", errors="replace"), size


def _judge_main(engine_in: int, engine_out: int) -> None:
    config = read_frame(engine_in)
    sandbox = Sandbox(config)
    try:
        sandbox.start()
        write_frame(engine_out, {"ready": sandbox.info})
    except RuntimeError as e:
        write_frame(engine_out, {"failed": str(e)})
        return
    while True:
        try:
            job = read_frame(engine_in)
        except PeerGone:
            break
        if job.get("op") == "stop":
            break
        t0 = time.monotonic()
        verdict = _judge_job(job, sandbox)
        verdict["duration"] = time.monotonic() - t0
        write_frame(engine_out, verdict)
    sandbox.stop()


def _judge_job(job: dict, sandbox: Sandbox) -> dict:
    t0 = time.monotonic()
    deadline = t0 + job["timeout"]
    for attempt in (1, 2, 3):
        ours = None
        if not sandbox.alive():
            try:
                sandbox.start()
            except RuntimeError as e:
                return {"status": "error", "detail": str(e)}
        try:
            ours = sandbox.child()
        except (OSError, PeerGone, ProtocolError):
            sandbox.stop()
            continue
        # The tests run here, in the judge (they are the problem's own, trusted code); an interval
        # timer bounds them. On expiry the proxy's socket is shut down too, so even a test that
        # swallows the exception cannot wait on the sample again.
        state = {"armed": True, "expired": False}
        credit = Credit()

        def on_alarm(signum, frame):
            if state["armed"]:
                state["expired"] = True
                try:
                    ours.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise _Deadline()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        lost = False
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001), 0.05)
                result = _run_tests(job, ours, credit)
            finally:
                state["armed"] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Deadline as e:
            result = {}
            credit.failed_at(_test_lineno(e))  # where the tests waited when time ran out
        except _ChildLost:  # none of the sample's code ran: another child
            lost = True
        signal.signal(signal.SIGALRM, previous)
        if not lost:
            break
        ours.close()
        _reset_judge_state()
        sandbox.end()
    else:
        if ours is not None:
            ours.close()
        return {"status": "error", "detail": "the sandbox server keeps dying"}
    if state["expired"]:
        result = {"status": "timed out", "detail": f"no verdict within {job['timeout']:g} s"}
    counts = credit.counts()
    if counts is not None:
        result["asserts"] = counts
    ours.close()  # the child sees the end of its input, flushes its output and exits
    _reset_judge_state()

    info = sandbox.end(timed_out=state["expired"])
    if info is None:
        if result["status"] != "timed out":
            result = {"status": "failed", "detail": "the sandbox server was killed during this sample"}
        return result
    result["stdout"], result["stderr"] = info["stdout"], info["stderr"]
    died = result.pop("died", None)
    if died is not None:
        how = info["exit"]
        why = f": {result['detail']}" if result.get("detail") else ""
        result["detail"] = f"the sample's process {how} {died}{why}"
    if info.get("note") and result["status"] != "passed":
        result["detail"] = f"{result['detail']} ({info['note']})" if result["detail"] else info["note"]
    return result


# =========================================================================================
# Sandbox side (untrusted): the fork server and the sample child
# =========================================================================================

# What samples import most, loaded once in the fork server. Not more: every page of the server
# makes each fork slower (fork + exit is ~0.5 ms at 11 MB and ~1 ms at 17 MB here). Not tempfile:
# it imports random, whose at-fork hook reseeds in every child (~35 copy-on-write faults each);
# a sample that imports random gets a fresh one, seeded from os.urandom, either way.
_PRELOAD = ("typing", "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
            "operator", "resource")
# The judge runs the tests: what HumanEval's and MBPP's tests import.
_JUDGE_PRELOAD = _PRELOAD + ("random", "copy", "hashlib", "decimal", "fractions")

_libc = None


def _libc_call(name: str, *args) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return getattr(_libc, name)(*args)


def _prctl(option: int, arg2: int = 0, arg3=0, arg4: int = 0, arg5: int = 0) -> int:
    return _libc_call("prctl", ctypes.c_int(option), ctypes.c_ulong(arg2), arg3 if isinstance(arg3, ctypes._Pointer) else ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))


PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 1, 4, 36, 38, 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp(bpf: bytes) -> None:
    if len(bpf) % 8 or not bpf:
        raise OSError("malformed seccomp program")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.pointer(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


# Landlock (through its syscalls; x86_64 and aarch64 share these numbers)
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446
_LL_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_WRITES = 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x1000  # remove/make_*
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 0x2000, 0x4000, 0x8000
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2


class _LLRulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _LLPathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(nr: int, *args) -> int:
    res = _libc_call("syscall", ctypes.c_long(nr), *args)
    if res < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return res


def landlock_abi() -> int:
    try:
        return _syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # VERSION flag
    except (OSError, AttributeError):
        return 0


def _landlock(rules: list[tuple[str, int]], abi: int) -> None:
    """Everything the kernel knows how to restrict is denied except `rules` (path, rights)."""
    fs = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_READ_DIR | _FS_WRITES
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    attr = _LLRulesetAttr(fs, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                          (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_LLRulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    rs = _syscall(_LL_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
                rule = _LLPathBeneath(rights & fs, fd)
                _syscall(_LL_ADD, ctypes.c_int(rs), ctypes.c_int(_LL_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
            finally:
                os.close(fd)
        _syscall(_LL_RESTRICT, ctypes.c_int(rs), ctypes.c_uint32(0))
    finally:
        os.close(rs)


class _SampleSide:
    """The sample child's end of the proxy: fd 3, read and written with plain os calls. It is made
    in the server before forking (so a child starts with it ready), never used there."""

    def __init__(self, ns: dict) -> None:
        self.ns, self.refs, self.buf = ns, [], bytearray()
        self.loads = json_reader(lambda d: decode_tag(d, self._extra))

    def send(self, obj) -> None:
        data = _dumps(obj)
        if len(data) > MAX_MESSAGE:
            raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_MESSAGE} limit")
        view = memoryview(_HDR.pack(len(data)) + data)
        while view:
            view = view[os.write(_PROXY_FD, view):]

    def recv(self):
        buf = self.buf
        while True:
            if len(buf) >= 4:
                (n,) = _HDR.unpack_from(buf)
                if n > MAX_MESSAGE:
                    raise ProtocolError(f"message of {n} bytes is over the {MAX_MESSAGE} limit")
                if len(buf) >= 4 + n:
                    data = bytes(buf[4 : 4 + n])
                    del buf[: 4 + n]
                    return self.loads(data)
            chunk = os.read(_PROXY_FD, 65536)
            if not chunk:
                raise PeerGone()
            buf += chunk

    def _handle(self, value, depth: int):
        if _is_iterator(value):  # generators, map objects, ...: their items, materialised
            return {"iter": [encode(v, self._handle, depth) for v in itertools.islice(value, MAX_ITEMS)]}
        self.refs.append(value)
        return {"ref": [len(self.refs) - 1, type(value).__qualname__]}

    def _extra(self, tag: str, v):
        if tag == "ref" and type(v) is int and 0 <= v < len(self.refs):
            return self.refs[v]
        if tag in ("name", "global") and type(v) is str and v in self.ns:
            return self.ns[v]
        if tag == "builtin" and type(v) is str and hasattr(builtins, v):
            return getattr(builtins, v)
        if tag == "cb" and type(v) is int:
            return self._callback(v)
        raise ProtocolError(f"bad reference {tag}")

    def _callback(self, ident: int):
        def callback(*args, **kwargs):
            self.send(["callback", ident, [encode(a, self._handle) for a in args],
                       [[k, encode(x, self._handle)] for k, x in kwargs.items()]])
            return self.serve(until_reply=True)

        return callback

    def serve(self, until_reply: bool = False):
        while True:
            try:
                msg = self.recv()
            except PeerGone:
                _flush_and_exit(0)
            op = msg[0]
            if op == "call":
                self._call(msg[1], msg[2], msg[3])
            elif until_reply and op == "return":
                return msg[1]
            elif until_reply and op == "raise":
                raise _sample_exception(msg[1], msg[2], msg[3])
            else:
                _flush_and_exit(3)

    def _call(self, fn, args, kwargs) -> None:
        try:
            value = fn(*args, **dict(kwargs))
            reply = ["return", encode(value, self._handle)]
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all go to the judge
            reply = ["raise", type(e).__name__, _safe_str(e), _where(e)]
        self.send(reply)  # output is flushed when the judge hangs up (see the server)

    def _names(self, names) -> list:
        out = {}
        for name in names:
            if name not in self.ns:
                continue
            value = self.ns[name]
            if isinstance(value, types.ModuleType):
                out[name] = ["module", value.__name__]
            elif callable(value):
                out[name] = ["callable"]
            else:
                try:
                    out[name] = ["value", encode(value, self._handle)]
                except Exception:
                    pass
        return [[k, v] for k, v in out.items()]


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)[:500]
    except BaseException:  # noqa: BLE001
        return "<unprintable>"


def _where(e: BaseException) -> str:
    """`line N: source` of the innermost frame in the sample's program."""
    try:
        tb, last = e.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<sample>":
                last = tb.tb_lineno
            tb = tb.tb_next
        if last is None:
            return ""
        lines = _PROGRAM[0].splitlines()
        src = lines[last - 1].strip() if 0 < last <= len(lines) else ""
        return f"line {last}: {src}"[:200]
    except BaseException:  # noqa: BLE001
        return ""


_PROGRAM = [""]  # the sample's program, in its child


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


def _flush_and_exit(code: int) -> None:
    _flush()
    os._exit(code)


_PROXY_FD = 3  # a sample child's socket to its judge
_WORKDIR = ""  # the sample's own directory (one path, emptied by the server after every sample)


_JOB = struct.Struct(">III")  # the job frame: sizes of the program, the setup and the wanted names


def _job_frame(program: str, setup: str, wanted: list[str]) -> bytes:
    """The first message to a sample child: plain text after a fixed header, so that the child
    reads it with a few os.read calls and no JSON decoding (each object it makes costs pages)."""
    parts = [x.encode("utf-8", "surrogatepass") for x in (program, setup, "\n".join(wanted))]
    return _JOB.pack(*map(len, parts)) + b"".join(parts)


def _read_fd(n: int) -> bytes:
    data = os.read(_PROXY_FD, n)
    while len(data) < n:
        more = os.read(_PROXY_FD, n - len(data))
        if not more:
            raise PeerGone()
        data += more
    return data


def _read_job() -> tuple[str, str, list[str]]:
    sizes = _JOB.unpack(_read_fd(_JOB.size))
    if sum(sizes) > MAX_MESSAGE:
        raise ValueError("job over the message limit")
    data = _read_fd(sum(sizes))
    program = data[: sizes[0]].decode("utf-8", "surrogatepass")
    setup = data[sizes[0] : sizes[0] + sizes[1]].decode("utf-8", "surrogatepass")
    wanted = data[sizes[0] + sizes[1] :].decode("utf-8", "surrogatepass")
    return program, setup, wanted.split("\n") if wanted else []


def _sample_child(sock_fd: int, cfg: dict, side: _SampleSide) -> None:
    """Runs in a fresh child, forked ahead of its job: drop privileges, apply limits, then wait for
    the program from the judge on fd 3, load it and serve calls.

    Everything that can be done once is done in the server before forking (environment,
    stdin/stdout/stderr, limits, the namespace with its private builtins, `side`): every page a
    child writes is a copy-on-write fault (~3 us each on the development VM), and those faults are
    most of what a sample costs."""
    try:
        os.setsid()
        uid = cfg["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        os.mkdir(_WORKDIR, 0o700)
        os.chdir(_WORKDIR)
        if sock_fd != _PROXY_FD:
            os.dup2(sock_fd, _PROXY_FD)
        os.closerange(_PROXY_FD + 1, 65536)  # the server's control socket above all: the sample gets only its own
        for which, value in cfg["rlimits"]:
            resource.setrlimit(which, value)
        if cfg.get("landlock_per_sample"):  # without bubblewrap: writes only in its own directory
            _landlock([("/", _FS_READ_FILE | _FS_READ_DIR | _FS_EXECUTE), (_WORKDIR, 0xFFFF),
                       (os.devnull, _FS_READ_FILE | _FS_WRITE_FILE)], cfg["landlock"])
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(2, f"sandbox setup failed: {e!r}\n".encode())
        finally:
            os._exit(112)
    try:
        program, setup, wanted = _read_job()
    except (PeerGone, ValueError, OSError):  # the judge went away (or sent garbage): nothing to run
        os._exit(0)
    ns = side.ns
    _PROGRAM[0] = program
    try:
        exec(compile(program, "<sample>", "exec"), ns)
        if setup:
            exec(compile(setup, "<setup>", "exec"), ns)
        reply = ["ready", side._names(wanted) if wanted else []]
    except BaseException as e:  # noqa: BLE001 - SyntaxError, SystemExit, KeyboardInterrupt, ...
        where = _where(e)
        if isinstance(e, SyntaxError):
            where = f"line {e.lineno}: {(e.text or '').strip()}"
        reply = ["load_error", f"{type(e).__name__}: {_safe_str(e)}" + (f" (sample {where})" if where else "")]
    side.send(reply)
    if reply[0] != "ready":
        _flush_and_exit(0)
    side.serve()
    _flush_and_exit(0)


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _kill_all_but_me(pidns: bool, uid) -> dict[int, int]:
    """Every process the sample started is killed; returns the exit statuses reaped on the way
    (the rest the caller reaps: we are their subreaper)."""
    if pidns:
        os.kill(-1, signal.SIGKILL)  # in our own pid namespace: everyone but us and its init
    elif uid is not None:
        pid = os.fork()
        if pid == 0:
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)  # every process of this worker's private uid
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    else:
        return _kill_descendants()
    return {}


def _kill_descendants() -> dict[int, int]:
    me = os.getpid()
    statuses: dict[int, int] = {}
    for _ in range(100):
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        todo, found = [me], []
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        if not found:
            return statuses
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        statuses.update(_reap(block=True))
    return statuses


def _reap(block: bool) -> dict[int, int]:
    statuses = {}
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return statuses
        if pid == 0:
            return statuses
        statuses[pid] = status


def _empty_dir(path: str) -> None:
    """Whatever a sample left in the samples' directory (its own directory, files it dropped
    beside it for a later sample to find): all of it goes."""
    for name in os.listdir(path):
        entry = os.path.join(path, name)
        try:
            os.rmdir(entry)  # usually its empty directory
        except NotADirectoryError:
            os.unlink(entry)
        except FileNotFoundError:
            pass
        except OSError:
            _rmtree(entry)


def _server_main(ctl_fd: int) -> None:
    global _WORKDIR
    import _socket
    import gc
    import select

    ctl = socket.socket(fileno=ctl_fd)
    outputs: list[int] = []
    msg = recv_msg(ctl, fds=outputs)
    cfg = msg[1]
    for name in _PRELOAD:  # imported once here, so a sample child's imports are free
        try:
            __import__(name)
        except ImportError:
            pass
    layers = []
    tmp_root = cfg["tmp_root"]
    os.makedirs(tmp_root, exist_ok=True)
    os.chmod(tmp_root, 0o1777)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # our memory cannot be read or written through /proc by a sample
    if cfg.get("pdeathsig"):
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if cfg.get("landlock"):
        abi = landlock_abi()
        cfg["landlock"] = abi
        try:
            # Once for the server and every sample child: read only what `landlock_rules` allows,
            # write only under the samples' directory; no TCP; no signals out of the sandbox.
            _landlock(cfg["landlock_rules"] + [(tmp_root, 0xFFFF), (os.devnull, _FS_READ_FILE | _FS_WRITE_FILE),
                                               ("/proc", _FS_READ_FILE | _FS_READ_DIR)], abi)
            layers.append("landlock")
            cfg["landlock_per_sample"] = not cfg.get("pidns_fs", False)
        except OSError as e:
            layers.append(f"!landlock: {e}")
            cfg["landlock"] = 0
    if cfg.get("seccomp"):
        try:
            _install_seccomp(base64.b64decode(cfg["seccomp"]))
            layers.append("seccomp")
        except OSError as e:
            layers.append(f"!seccomp: {e}")
    if len(outputs) != 4:
        send_msg(ctl, ["failed", "the judge sent no output files"])
        return
    send_msg(ctl, ["ready", {"layers": layers, "pid": os.getpid()}])
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    # What every sample child starts from, set up here once instead of in each child (every page a
    # child writes is a copy-on-write fault, ~3 us each on the development VM, and those faults
    # are most of what a sample costs): stdin /dev/null;
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # its environment (bubblewrap already cleared the engine's) and its directory;
    _WORKDIR = os.path.join(tmp_root, "sample")
    if not cfg.get("pidns_fs"):
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    os.environ.pop("PWD", None)
    os.environ.pop("LD_BIND_NOW", None)  # it did its work when this process started (engine/sandbox.py)
    os.environ["HOME"] = os.environ["TMPDIR"] = _WORKDIR
    # its limits;
    lim = cfg["limits"]
    cfg["rlimits"] = [(getattr(resource, name), (value, value)) for name, value in (
        ("RLIMIT_AS", lim["memory"]), ("RLIMIT_FSIZE", lim["output"]), ("RLIMIT_NOFILE", lim["files"]),
        ("RLIMIT_NPROC", lim["processes"]), ("RLIMIT_CORE", 0))] + [(resource.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))]
    cfg.setdefault("uid", None)
    # and the module its program runs in, with its own copy of the builtins module: patching
    # `builtins.len` changes what the sample's code sees, not what the proxy runs on (the verdict
    # never depends on either). The server itself never runs sample code, so each child gets these
    # pristine (copy-on-write).
    sys.argv = [""]
    mod = types.ModuleType("__test__")
    private = types.ModuleType("builtins")
    private.__dict__.update(vars(builtins))
    mod.__dict__["__builtins__"] = private.__dict__
    sys.modules["__test__"] = mod
    sys.modules["builtins"] = private
    side = _SampleSide(mod.__dict__)
    pidns, uid = cfg.get("pidns", False), cfg["uid"]
    child_msg = (b"C\0", b"C\1")

    # Everything loaded so far stays out of the children's garbage collections: a collection
    # writes to every object it visits, and each page written is a copy-on-write fault.
    gc.freeze()
    # Per sample, as little Python as possible: every page the server writes after a fork is a
    # copy-on-write fault too. The messages are fixed bytes (see the judge's Sandbox).
    pair = 0
    while True:
        os.dup2(outputs[2 * pair], 1)  # the child's stdout and stderr (the server never writes there)
        os.dup2(outputs[2 * pair + 1], 2)
        theirs, mine = _socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            _sample_child(mine.fileno(), cfg, side)
            os._exit(0)
        mine.close()
        try:
            ctl.sendmsg([child_msg[pair]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _FD.pack(theirs.fileno()))])
        except OSError:  # the judge is gone (and with it, through --die-with-parent, this sandbox)
            break
        finally:
            theirs.close()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        try:
            end = ctl.recv(1)
        except OSError:
            end = b""
        if end == b"E" and pidfd is not None:
            # The judge has closed the proxy; a well-behaved child flushes its output and exits.
            select.select([pidfd], [], [], 0.05)
        if pidfd is not None:
            os.close(pidfd)
        statuses = _kill_all_but_me(pidns, uid)
        statuses.update(_reap(block=True))
        if end not in (b"E", b"K"):
            break
        _empty_dir(tmp_root)
        ctl.sendall(b"S" + _FD.pack(statuses.get(pid, -1)))
        pair ^= 1


def _rmtree(path: str) -> None:
    import shutil

    def retry(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def main(argv: list[str]) -> None:
    role = argv[1] if len(argv) > 1 else ""
    if role == "server":
        _server_main(int(argv[2]))
    elif role == "judge":
        # Our protocol uses private copies of stdin/stdout; test code that prints cannot reach it.
        engine_in, engine_out = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        for name in _JUDGE_PRELOAD:
            try:
                __import__(name)
            except ImportError:
                pass
        import gc
        import warnings

        warnings.simplefilter("ignore")  # e.g. SyntaxWarnings of a prompt's escapes
        gc.freeze()
        _judge_main(engine_in, engine_out)
    else:
        sys.exit("usage: _sandbox_worker.py judge | server FD")


if __name__ == "__main__":
    main(sys.argv)
