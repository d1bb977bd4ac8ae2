"""Diversity of a model's samples, the campaign gauge, and the collapse policy (DESIGN section 6).

Self-distillation fails by *mode collapse*: after a few rounds the model emits the same program
(or the same program with other names) for every sample. Each number here measures, for one
problem's n samples, how far from that the samples still are:

- **structural distinctness**: distinct programs after normalization (`normalize`: parse, drop
  docstrings and comments, canonicalize local names) / n. 1.0 = every sample is a different
  program; 1/n = all n samples are one program up to names, comments and layout.
- **lexical diversity**: 1 - mean pairwise Jaccard similarity of the samples' token-bigram sets.
  0.0 = all samples have the same bigrams (textual copies); near 1.0 = little shared text.
  Renaming variables keeps a program structurally identical but changes it lexically.
- **distinct-2**: distinct token bigrams / all token bigrams, pooled over the samples (Li et al.
  2016). 1/n for n textual copies of a program without repeated bigrams.
- **gap**: pass@k - pass@1 of the problem. Sampling k times beats sampling once only while the
  samples differ; it shrinks to 0 when a problem is always or never solved.

- **behavioural distinctness**: distinct behaviours / samples with one, where a sample's behaviour
  is the verifier's signature of what it answered to the problem's own tests (every value it
  returned, every exception it raised, in order, up to the verdict). Different code that computes
  the same answers is one behaviour. It costs no verifier time (the judge sees the values anyway);
  samples without a signature (timed out, not loadable, verified before signatures existed) are
  left out. Among passing samples it is mostly 1/n (they answer alike, or they would not pass)
  unless the tests accept several answers, e.g. any root of a polynomial.

Each is computed over all samples and (not the gap) over the passing samples alone. Diversity
needs two samples at least: every number but the gap is None for fewer than two.

Everything is pure: plain Python data in, plain (JSON-serializable) data out.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import textwrap
import tokenize
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.metrics import pass_at_k

if TYPE_CHECKING:  # only attributes are read; keeps pydantic out of this module's import
    from engine.config import CollapseConfig

# --------------------------------------------------------------------------------------------
# Normalization: the same program up to names, comments, docstrings and layout -> the same text.
# --------------------------------------------------------------------------------------------


class _Scope:
    """One Python scope while canonicalizing: which names it binds and which of those stay as is."""

    __slots__ = ("kind", "parent", "bound", "kept", "globals", "nonlocals")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # module | function | class | comp
        self.parent = parent
        self.bound: set[str] = set()
        self.kept: set[str] = set()  # bound here but not renamed: imports, top-level def/class names
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_STATEMENT_LISTS = frozenset({"body", "orelse", "finalbody"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(cls._fields)
    return fields


def _is_docstring(stmt: ast.AST) -> bool:
    # Any bare string statement is a no-op; models use them as comments as well as docstrings.
    return type(stmt) is ast.Expr and type(stmt.value) is ast.Constant and type(stmt.value.value) is str


class _Canonicalizer:
    """One pass over a parsed program that (1) records scopes and bindings, (2) serializes the tree
    unambiguously with a slot wherever an identifier may be renamed, and (3) after the pass
    resolves each slot to its binding scope and fills in a canonical name (v0, v1, ... in order of
    first appearance), also renaming the tree in place so that `ast.dump` shows the same program.

    Renamed: every name the program binds itself (parameters, local and module-level variables,
    loop and comprehension variables, `except ... as`, `with ... as`, walrus targets, match
    captures, nested function and class names). Kept: names it does not bind (builtins, names
    from the prompt or the test harness), imported names, names of top-level functions and
    classes (the tests call them), class attributes and methods, attribute names, keyword names.
    A builtin name the program rebinds (`sum = 0`) is a local variable and is renamed like one.
    """

    def __init__(self) -> None:
        self.out: list[str] = []
        # (index into out, scope, name, node or list holding the name, attribute or list index)
        self.slots: list[tuple[int, _Scope, str, Any, Any]] = []
        self.module = _Scope("module", None)

    # -- the pass ----------------------------------------------------------------------------

    def run(self, tree: ast.Module) -> list[str]:
        self.visit(tree, self.module)
        self._resolve()
        return self.out

    def slot(self, scope: _Scope, name: str, holder: Any, key: Any) -> None:
        self.slots.append((len(self.out), scope, name, holder, key))
        self.out.append(name)  # replaced by the canonical name in _resolve

    def visit(self, node: ast.AST, scope: _Scope) -> None:
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            handler(self, node, scope)
        else:
            self.visit_fields(node, scope)

    def visit_fields(self, node: ast.AST, scope: _Scope) -> None:
        """Serialize `node`: its type, each field (nodes recursively, lists in brackets, other values
        as repr), then ")"."""
        out = self.out
        cls = type(node)
        out.append(cls.__name__)
        for field in _fields(cls):
            value = getattr(node, field, None)
            if type(value) is list:
                self.visit_list(node, field, value, scope)
            elif isinstance(value, ast.AST):
                self.visit(value, scope)
            else:
                out.append(repr(value))
        out.append(")")

    def visit_list(self, node: ast.AST, field: str, items: list, scope: _Scope) -> None:
        out = self.out
        out.append("[")
        if field in _STATEMENT_LISTS and any(_is_docstring(s) for s in items):
            items = [s for s in items if not _is_docstring(s)] or [ast.Pass()]
            setattr(node, field, items)
        visit = self.visit
        for item in items:
            if isinstance(item, ast.AST):
                visit(item, scope)
            else:
                out.append(repr(item))
        out.append("]")

    def visit_many(self, items: list, scope: _Scope) -> None:
        self.out.append("[")
        for item in items:
            if item is None:  # kw_defaults holds None for keyword-only arguments without default
                self.out.append("None")
            else:
                self.visit(item, scope)
        self.out.append("]")

    def visit_opt(self, node: ast.AST | None, scope: _Scope) -> None:
        if node is None:
            self.out.append("None")
        else:
            self.visit(node, scope)

    # -- node kinds that bind names or open scopes -------------------------------------------

    def name(self, node: ast.Name, scope: _Scope) -> None:
        ctx = type(node.ctx)
        if ctx is not ast.Load:
            scope.bound.add(node.id)
        self.out.append("Name")
        self.slot(scope, node.id, node, "id")
        self.out.append(ctx.__name__)

    def arguments(self, args: ast.arguments, outer: _Scope, inner: _Scope) -> None:
        # Defaults and annotations are evaluated outside the function; the names bind inside.
        out = self.out
        out.append("arguments")
        for group in (args.posonlyargs, args.args, [args.vararg], args.kwonlyargs, [args.kwarg]):
            out.append("[")
            for arg in group:
                if arg is None:
                    out.append("None")
                    continue
                inner.bound.add(arg.arg)
                out.append("arg")
                self.slot(inner, arg.arg, arg, "arg")
                self.visit_opt(arg.annotation, outer)
            out.append("]")
        self.visit_many(args.kw_defaults, outer)
        self.visit_many(args.defaults, outer)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> None:
        scope.bound.add(node.name)
        if scope.kind == "module":
            scope.kept.add(node.name)  # the entry point and its top-level helpers keep their names
        inner = _Scope("function", scope)
        self.out.append(type(node).__name__)
        self.slot(scope, node.name, node, "name")
        self.visit_many(node.decorator_list, scope)
        self.visit_many(getattr(node, "type_params", []), scope)  # Python 3.12+
        self.arguments(node.args, scope, inner)
        self.visit_opt(node.returns, scope)
        self.visit_list(node, "body", node.body, inner)
        self.out.append(")")

    def lambda_(self, node: ast.Lambda, scope: _Scope) -> None:
        inner = _Scope("function", scope)
        self.out.append("Lambda")
        self.arguments(node.args, scope, inner)
        self.visit(node.body, inner)
        self.out.append(")")

    def class_(self, node: ast.ClassDef, scope: _Scope) -> None:
        scope.bound.add(node.name)
        if scope.kind == "module":
            scope.kept.add(node.name)
        inner = _Scope("class", scope)
        self.out.append("ClassDef")
        self.slot(scope, node.name, node, "name")
        self.visit_many(getattr(node, "type_params", []), scope)  # Python 3.12+
        self.visit_many(node.bases, scope)
        self.visit_many(node.keywords, scope)
        self.visit_many(node.decorator_list, scope)
        self.visit_list(node, "body", node.body, inner)
        self.out.append(")")

    def comprehension(self, node: ast.AST, scope: _Scope) -> None:
        # The first iterable is evaluated in the enclosing scope, everything else inside.
        inner = _Scope("comp", scope)
        self.out.append(type(node).__name__)
        for i, gen in enumerate(node.generators):
            self.out.append("comprehension")
            self.visit(gen.iter, scope if i == 0 else inner)
            self.visit(gen.target, inner)
            self.visit_many(gen.ifs, inner)
            self.out.append(repr(gen.is_async))
        if type(node) is ast.DictComp:
            self.visit(node.key, inner)
            self.visit(node.value, inner)
        else:
            self.visit(node.elt, inner)
        self.out.append(")")

    def named_expr(self, node: ast.NamedExpr, scope: _Scope) -> None:
        target = scope
        while target.kind == "comp":  # a walrus in a comprehension binds in the enclosing function
            target = target.parent
        self.out.append("NamedExpr")
        self.visit(node.target, target)
        self.visit(node.value, scope)
        self.out.append(")")

    def global_(self, node: ast.Global | ast.Nonlocal, scope: _Scope) -> None:
        declared = scope.globals if type(node) is ast.Global else scope.nonlocals
        self.out.append(type(node).__name__)
        for i, name in enumerate(node.names):
            declared.add(name)
            self.slot(scope, name, node.names, i)
        self.out.append(")")

    def import_(self, node: ast.Import | ast.ImportFrom, scope: _Scope) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            scope.bound.add(bound)
            scope.kept.add(bound)
        self.visit_fields(node, scope)

    def bind_field(self, node: ast.AST, scope: _Scope, field: str) -> None:
        # except ... as NAME, match captures: a plain string field that binds a name.
        name = getattr(node, field)
        if name is not None:
            scope.bound.add(name)
        self.out.append(type(node).__name__)
        for f in type(node)._fields:
            value = getattr(node, f)
            if f == field:
                if value is None:
                    self.out.append("None")
                else:
                    self.slot(scope, value, node, f)
            elif type(value) is list:
                self.visit_list(node, f, value, scope)
            elif isinstance(value, ast.AST):
                self.visit(value, scope)
            else:
                self.out.append(repr(value))
        self.out.append(")")

    def constant(self, node: ast.Constant, scope: _Scope) -> None:
        # repr tells 1, 1.0, True and '1' apart; the `kind` field (u'' prefix) is layout.
        if node.kind is not None:
            node.kind = None
        self.out.append("Constant")
        self.out.append(repr(node.value))

    # -- after the pass ----------------------------------------------------------------------

    def _binding(self, scope: _Scope, name: str) -> _Scope | None:
        """The scope whose binding of `name` a use in `scope` refers to; None for a free name."""
        if name in scope.globals:
            return self.module
        if name in scope.nonlocals:
            s = scope.parent
            while s is not None:
                if s.kind == "function" and name in s.bound:
                    return s
                s = s.parent
            return None
        if name in scope.bound:
            return scope
        s = scope.parent
        while s is not None:
            if s.kind != "class":  # class bodies are not visible from the functions inside them
                if name in s.globals:
                    return self.module
                if name in s.bound:
                    return s
            s = s.parent
        return None

    def _resolve(self) -> None:
        canon: dict[tuple[int, str], str] = {}
        for index, scope, name, holder, key in self.slots:
            b = self._binding(scope, name)
            if b is None or b.kind == "class" or name in b.kept:
                new = name
            else:
                new = canon.get((id(b), name))
                if new is None:
                    new = canon[(id(b), name)] = f"v{len(canon)}"
            self.out[index] = new
            if new != name:
                if type(key) is int:
                    holder[key] = new
                else:
                    setattr(holder, key, new)


_HANDLERS: dict[type, Any] = {
    ast.Name: _Canonicalizer.name,
    ast.Constant: _Canonicalizer.constant,
    ast.FunctionDef: _Canonicalizer.function,
    ast.AsyncFunctionDef: _Canonicalizer.function,
    ast.Lambda: _Canonicalizer.lambda_,
    ast.ClassDef: _Canonicalizer.class_,
    ast.NamedExpr: _Canonicalizer.named_expr,
    ast.Global: _Canonicalizer.global_,
    ast.Nonlocal: _Canonicalizer.global_,
    ast.Import: _Canonicalizer.import_,
    ast.ImportFrom: _Canonicalizer.import_,
    ast.ExceptHandler: lambda self, node, scope: self.bind_field(node, scope, "name"),
    ast.MatchAs: lambda self, node, scope: self.bind_field(node, scope, "name"),
    ast.MatchStar: lambda self, node, scope: self.bind_field(node, scope, "name"),
    ast.MatchMapping: lambda self, node, scope: self.bind_field(node, scope, "rest"),
}
for _comp in _COMPREHENSIONS:
    _HANDLERS[_comp] = _Canonicalizer.comprehension


_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)  # ValueError: NUL bytes (3.11)


def _parse(code: str) -> ast.Module | None:
    """The program's AST, or None. A completion-style body (indented as a whole) is dedented first."""
    try:
        return ast.parse(code)
    except _PARSE_ERRORS:
        pass
    if code[:1].isspace():
        try:
            return ast.parse(textwrap.dedent(code))
        except _PARSE_ERRORS:
            pass
    return None


def _canonical(code: str) -> tuple[ast.Module, list[str]] | None:
    tree = _parse(code)
    if tree is None:
        return None
    try:
        return tree, _Canonicalizer().run(tree)
    except RecursionError:  # absurdly deep nesting: treat like unparsable text
        return None


def normalize(code: str) -> str | None:
    """The program's normalized form (`ast.dump` after dropping docstrings, comments and bare string
    statements, and renaming local names to v0, v1, ... in order of first appearance), or None
    when it does not parse. Two samples with equal forms are the same program."""
    result = _canonical(code)
    return None if result is None else ast.dump(result[0])


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)  # collapsed rounds hash the same text many times
def norm_hash(code: str) -> str:
    """A stable hash of the normalized program (32 hex digits): equal exactly when `normalize` is
    equal; the same on every run and machine with one Python minor version (the AST can change
    between versions). Unparsable code hashes its text with all whitespace removed, prefixed "raw:", so that
    copies of the same broken output still count as one program and never equal a parsable one."""
    result = _canonical(code)
    if result is None:
        return "raw:" + _digest(_SPACE.sub("", code))
    # The token stream of the canonical pass is an unambiguous serialization of the normalized
    # tree (every node is opened by its type and closed, every primitive is one repr'd token):
    # hashing it gives the same equalities as ast.dump without a second walk of the tree.
    return _digest("\x00".join(result[1]))


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def _group(*alternatives: str) -> str:
    # Inner groups made non-capturing, so that findall returns the one outer group as strings.
    return "(?:" + "|".join(re.sub(r"(?<!\\)\((?!\?)", "(?:", a) for a in alternatives) + ")"


# Built from the tokenize module's own patterns (numbers, operators, strings), so that on
# valid code it yields exactly tokenize's significant tokens (NAME, NUMBER, STRING, OP; a test
# checks this): comments, NL/NEWLINE, INDENT/DEDENT and line continuations are skipped. One C-level
# findall is ~7x faster than tokenize.generate_tokens, which alone would take most of the time
# budget of issue 5 (20,000 samples in 5 s), and it never raises: on broken code it keeps going
# (a stray quote or `$` becomes a one-character token), which is the regex fallback for free.
_TOKEN = re.compile(
    # Skipped before each token, possessively (never given back): whitespace and newlines, line
    # continuations, comments. At the end of the text nothing but \Z can follow: an empty match.
    r"(?:[ \f\t\r\n]+|\\\r?\n|#[^\r\n]*)*+"
    + "("
    + _group(
        r"[^\W\d]\w*+(?!['\"])",  # a name; tried first as the commonest token (not a string prefix)
        tokenize.Number,  # before operators: .5 is a number, not "." and 5
        tokenize.Special,
        tokenize.StringPrefix + "'''" + tokenize.Single3,
        tokenize.StringPrefix + '"""' + tokenize.Double3,
        tokenize.String,
        r"\w+",  # a name before an unterminated quote (broken code)
        r"\S",  # anything else (a stray character, an unterminated quote) is a token of its own
        r"\Z",
    )
    + ")",
    re.DOTALL,
)


def tokens(code: str) -> list[str]:
    """The code's tokens as Python's tokenizer splits them (names, numbers, strings, operators),
    without comments, newlines and indentation."""
    out = _TOKEN.findall(code)
    while out and not out[-1]:  # the empty matches at the end of the text (one or two)
        out.pop()
    return out


# --------------------------------------------------------------------------------------------
# Per-problem diversity
# --------------------------------------------------------------------------------------------

# Keys of problem_diversity / round_diversity, with the words a reason or a table uses for them.
COMPONENTS: dict[str, str] = {
    "structural": "structural distinctness",
    "lexical": "lexical diversity",
    "distinct2": "distinct-2",
    "gap": "pass@k - pass@1 gap",
    "structural_passed": "structural distinctness of passing samples",
    "lexical_passed": "lexical diversity of passing samples",
    "distinct2_passed": "distinct-2 of passing samples",
    "behavioural": "behavioural distinctness",
    "behavioural_passed": "behavioural distinctness of passing samples",
}


def _intersections(member: np.ndarray) -> np.ndarray:
    """gram[i, j] = number of columns where rows i and j are both True, for a boolean matrix.

    Bit sets and popcounts rather than a float matrix product: BLAS would spread this tiny product
    over threads, and on a busy 2-core machine that made it up to 4x slower, and erratic."""
    t = member.shape[0]
    if not hasattr(np, "bitwise_count"):  # numpy < 2
        x = member.astype(np.float32)
        return (x @ x.T).astype(np.int64)
    packed = np.packbits(member, axis=1)
    pad = -packed.shape[1] % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    words = np.ascontiguousarray(packed).view(np.uint64)  # (t, w) 64-bit words
    gram = np.empty((t, t), dtype=np.int64)
    step = max(1, 2_000_000 // max(1, t * words.shape[1]))  # bound the (step, t, w) temporary
    for i in range(0, t, step):
        block = words[i : i + step, None, :] & words[None, :, :]
        gram[i : i + step] = np.bitwise_count(block).sum(axis=2)
    return gram


class _Bigrams:
    """The token-bigram sets of a problem's distinct texts, as integers, with every pairwise
    intersection size: what lexical diversity and distinct-2 need, computed once per problem."""

    def __init__(self, texts: Sequence[str]) -> None:
        t = len(texts)
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(tok, len(vocab)) for tok in tokens(text)] for text in texts]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=t)
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(t), lengths)
        # A bigram is a token and the next one of the same text, coded a * vocabulary + b.
        v = max(len(vocab), 1)
        same = owner[:-1] == owner[1:]
        codes = (flat[:-1] * v + flat[1:])[same]
        pairs = np.unique(owner[:-1][same] * (v * v) + codes)  # distinct (text, bigram)
        self.owner = pairs // (v * v)
        self.code = pairs % (v * v)
        self.n_bigrams = np.maximum(lengths - 1, 0)  # with repeats, for distinct-2
        sizes = np.bincount(self.owner, minlength=t)
        # Intersections come only from bigrams that two or more texts share; dropping the others
        # keeps the (text x bigram) matrix small (~100 x a few hundred).
        _, inverse, counts = np.unique(self.code, return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        _, column = np.unique(inverse[shared], return_inverse=True)
        member = np.zeros((t, int(column.max()) + 1 if len(column) else 0), dtype=bool)
        member[self.owner[shared], column] = True
        self.gram = _intersections(member).astype(np.float64)
        np.fill_diagonal(self.gram, sizes)

    def lexical(self, rows: np.ndarray) -> float | None:
        """1 - mean pairwise Jaccard similarity over the texts `rows` (one entry per sample)."""
        m = len(rows)
        if m < 2:
            return None
        g = self.gram[np.ix_(rows, rows)]
        s = np.diag(g)
        union = s[:, None] + s[None, :] - g
        # Two samples without any bigram (empty or one token) are identical text: similarity 1.
        sim = np.where(union > 0, g / np.maximum(union, 1.0), 1.0)
        return float(1.0 - sim[np.triu_indices(m, 1)].mean())

    def distinct2(self, rows: np.ndarray) -> float | None:
        """Distinct bigrams / all bigrams, pooled over the texts `rows` (one entry per sample)."""
        total = int(self.n_bigrams[rows].sum())
        if len(rows) < 2 or total == 0:
            return None
        return len(np.unique(self.code[np.isin(self.owner, rows)])) / total


def _distinct_share(hashes: Sequence[str | None], rows: Sequence[int]) -> float | None:
    """Distinct values among these rows / their count (None for fewer than two rows)."""
    if len(rows) < 2:
        return None
    return len({hashes[i] for i in rows}) / len(rows)


def problem_diversity(
    completions: Sequence[str],
    passed: Sequence[bool],
    k: int,
    hashes: Sequence[str] | None = None,
    signatures: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Diversity of one problem's samples in one round (see the module docstring for each number).

    `passed[i]` says whether sample i passed its tests; `k` is the k of the pass@k - pass@1 gap
    (clamped to n); `hashes` are the samples' `norm_hash` values when the caller has them already
    (the runner stores them per sample), else they are computed here. `signatures` are the samples'
    behaviour signatures from the verifier (None where a sample has none).

    Returns a JSON-serializable dict: n, n_passed, unparsable (samples that do not parse; they
    count as programs by their raw text), and the components of `COMPONENTS`, each a float or None
    where undefined (fewer than two samples, or no bigrams at all).
    """
    n = len(completions)
    if len(passed) != n or any(x is not None and len(x) != n for x in (hashes, signatures)):
        raise ValueError("completions, passed (and hashes, signatures) must have one entry per sample")
    ok = [i for i in range(n) if passed[i]]
    result: dict[str, Any] = {"n": n, "n_passed": len(ok), "unparsable": 0}
    result.update(dict.fromkeys(COMPONENTS))
    if n == 0:
        return result

    # Collapsed rounds repeat texts verbatim: work once per distinct text.
    distinct: dict[str, int] = {}
    which = [distinct.setdefault(text, len(distinct)) for text in completions]
    texts = list(distinct)
    if hashes is None:
        text_hash = [norm_hash(t) for t in texts]
        hashes = [text_hash[j] for j in which]
    result["unparsable"] = sum(1 for h in hashes if h.startswith("raw:"))

    bigrams = _Bigrams(texts)
    every = np.asarray(which, dtype=np.int64)  # sample -> its distinct text
    passing = every[np.asarray(ok, dtype=np.int64)]

    result["structural"] = _distinct_share(hashes, range(n))
    result["lexical"] = bigrams.lexical(every)
    result["distinct2"] = bigrams.distinct2(every)
    result["gap"] = pass_at_k(n, len(ok), min(k, n)) - pass_at_k(n, len(ok), 1)
    result["structural_passed"] = _distinct_share(hashes, ok)
    result["lexical_passed"] = bigrams.lexical(passing)
    result["distinct2_passed"] = bigrams.distinct2(passing)
    if signatures is not None:
        result["behavioural"] = _distinct_share(signatures, [i for i in range(n) if signatures[i]])
        result["behavioural_passed"] = _distinct_share(signatures, [i for i in ok if signatures[i]])
    return result


def round_diversity(per_problem: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Campaign means for one round: each component averaged over the problems where it is defined
    (None where no problem defines it), plus n_problems, n_samples, unparsable_share (share of all
    samples that do not parse) and, per component, how many problems it averages (`n_<key>`)."""
    values = list(per_problem.values())
    out: dict[str, Any] = {"n_problems": len(values)}
    n_samples = sum(v.get("n", 0) for v in values)
    out["n_samples"] = n_samples
    out["unparsable_share"] = sum(v.get("unparsable", 0) for v in values) / n_samples if n_samples else None
    for key in COMPONENTS:
        defined = [v[key] for v in values if v.get(key) is not None]
        out[key] = float(np.mean(defined)) if defined else None
        out["n_" + key] = len(defined)
    return out


# --------------------------------------------------------------------------------------------
# Gauge and collapse policy
# --------------------------------------------------------------------------------------------

# The gauge combines the three numbers of DESIGN section 6; the others are shown beside it.
GAUGE_COMPONENTS = ("structural", "lexical", "gap")
# A component below this at round 0 has nothing measurable to lose (the gap is often ~0 for a weak
# model): it is left out of the gauge, with a note, rather than divided by ~0.
MIN_BASELINE = 0.01
# Components watched one by one as well: a warning when one of them alone falls below warn_fraction,
# even while the mean holds (measured: in campaigns/collapse.toml's round 1 the gap grew to 208% and
# held the gauge at 92 while lexical diversity was at 58% and structural at 69%; the next round
# collapsed). Not the gap: it also falls to 0 when every problem becomes always solved.
WATCHED = ("structural", "lexical")
# A component's share in the combined gauge is capped at 150 (% of round 0), so that one that grew
# from a small base (the gap, as the first problems become barely solved) cannot hide another's fall.
CAP = 150.0


def gauge(cur: Mapping[str, Any], round0: Mapping[str, Any]) -> dict[str, Any]:
    """The diversity gauge of a round: `cur` and `round0` are `round_diversity` results.

    Returns {"value": float | None, "components": {key: {"value", "round0", "relative",
    "in_gauge", "note"}}}. A component's `relative` is 100 x value / round-0 value (None when either
    is undefined or round 0 is below MIN_BASELINE). The gauge's `value` is the mean of the relatives
    of GAUGE_COMPONENTS that have one, each capped at CAP; round 0 against itself is 100. None when
    no component has one (every round-0 value undefined or ~0).
    """
    components: dict[str, dict[str, Any]] = {}
    parts = []
    for key in COMPONENTS:
        value, base = cur.get(key), round0.get(key)
        entry: dict[str, Any] = {"value": value, "round0": base, "relative": None, "in_gauge": False, "note": ""}
        if base is None:
            entry["note"] = "undefined at round 0"
        elif base < MIN_BASELINE:
            entry["note"] = f"{base:.3g} at round 0: nothing to lose"
        elif value is None:
            entry["note"] = "undefined this round"
        else:
            entry["relative"] = 100.0 * value / base
            if key in GAUGE_COMPONENTS:
                entry["in_gauge"] = True
                parts.append(min(entry["relative"], CAP))
        components[key] = entry
    return {"value": float(np.mean(parts)) if parts else None, "components": components}


def _describe(comps: Mapping[str, Mapping[str, Any]], key: str, prev: Mapping[str, Any] | None = None) -> str:
    """The reason's text: 'structural distinctness 0.31 vs 0.78 at round 0; others: lexical ...'."""
    comp = comps[key]
    before = ""
    if prev is not None and prev.get("value") is not None:
        before = f" vs {prev['value']:.2f} the round before,"
    text = f"{COMPONENTS[key]} {comp['value']:.2f}{before or ' vs'} {comp['round0']:.2f} at round 0"
    others = [f"{COMPONENTS[k]} {c['relative']:.0f}%" for k, c in comps.items() if k != key]
    return text + ("; others: " + ", ".join(others) if others else "")


def assess_collapse(gauges: Sequence[Mapping[str, Any]], cfg: CollapseConfig) -> tuple[str, str]:
    """The collapse state after the latest round: `gauges` are the `gauge` results of rounds 0..r
    (oldest first). Returns (state, reason):

    - "collapse": the gauge is below stop_fraction x 100, or it fell by more than max_drop x 100
      points since the round before (counting from 100 at most: above round 0 is a surplus);
    - "warn": the gauge is below warn_fraction x 100, or one of the WATCHED components alone is
      below warn_fraction x its round-0 value;
    - "ok": otherwise, or when the gauge is undefined.

    The reason names the gauge, the threshold and the component that is lowest (or fell most),
    with its numbers, then the other components relative to round 0: "gauge 42 < 50 (stop at
    0.5 x round 0): structural distinctness 0.31 vs 0.78 at round 0; others: lexical diversity 61%,
    pass@k - pass@1 gap 55%".
    """
    if not gauges:
        return "ok", "no rounds yet"
    last = gauges[-1]
    g = last.get("value")
    if g is None:
        return "ok", "gauge undefined: no component is measurable against round 0"
    comps = {k: c for k, c in last["components"].items() if c.get("in_gauge")}
    lowest = min(comps, key=lambda k: comps[k]["relative"])

    prev = gauges[-2] if len(gauges) > 1 else None
    if prev is not None and prev.get("value") is not None:
        # A drop counts from round 0's level at most: 140 -> 115 loses nothing of round 0.
        drop = min(prev["value"], 100.0) - g
        if drop > cfg.max_drop * 100 + 1e-9:
            pcomps = prev["components"]

            def fall(k: str) -> float:  # in the units of the gauge, capped like it
                before = pcomps.get(k, {}).get("relative")
                return min(before if before is not None else 100.0, CAP) - min(comps[k]["relative"], CAP)

            worst = max(comps, key=fall)
            start = " counted from 100" if prev["value"] > 100 else ""
            return "collapse", (
                f"gauge fell {drop:.0f} points in one round ({prev['value']:.0f} -> {g:.0f}{start}; "
                f"limit {cfg.max_drop * 100:.0f}): {_describe(comps, worst, pcomps.get(worst))}"
            )
    if g < cfg.stop_fraction * 100 - 1e-9:
        return "collapse", (
            f"gauge {g:.0f} < {cfg.stop_fraction * 100:.0f} (stop at {cfg.stop_fraction:g} x round 0): "
            f"{_describe(comps, lowest)}"
        )
    if g < cfg.warn_fraction * 100 - 1e-9:
        return "warn", (
            f"gauge {g:.0f} < {cfg.warn_fraction * 100:.0f} (warn at {cfg.warn_fraction:g} x round 0): "
            f"{_describe(comps, lowest)}"
        )
    watched = [k for k in WATCHED if k in comps and comps[k]["relative"] < cfg.warn_fraction * 100 - 1e-9]
    if watched:
        worst = min(watched, key=lambda k: comps[k]["relative"])
        return "warn", (
            f"{COMPONENTS[worst]} at {comps[worst]['relative']:.0f}% of round 0 (warn below "
            f"{cfg.warn_fraction * 100:.0f}%) while the gauge holds at {g:.0f}: {_describe(comps, worst)}"
        )
    return "ok", f"gauge {g:.0f} (warn below {cfg.warn_fraction * 100:.0f}): {_describe(comps, lowest)}"
