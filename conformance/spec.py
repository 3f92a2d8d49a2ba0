"""Equation specs: the YAML schema, enforced on load.

One YAML file per paper (see ``docs/spec-schema.md``). Loading checks every key against the
schema and every expression through :mod:`conformance.expr`; any problem raises
:class:`SpecError` naming the file, the key path and what was expected. Nothing in a spec is
executed: YAML is read with ``yaml.safe_load``; implementations are imported by module name.

>>> from conformance.spec import load_specs
>>> specs = load_specs(["specs"])
>>> specs["rmsnorm"].paper.arxiv
'1910.07467'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sympy
import yaml

from conformance import expr as expr_mod
from conformance.dtype_helpers import DTYPES
from conformance.invariants import INVARIANT_KINDS
from conformance.references import REFERENCES

SCHEMA_VERSION = 1
MAX_SPEC_BYTES = 256 * 1024
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REF_RE = re.compile(r"^(?:[A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_]\w*$")
_DEFAULT_SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"


class SpecError(ValueError):
    """A spec that does not follow the schema: ``file: key.path: expected ..., got ...``."""

    def __init__(self, file: str | Path, path: str, message: str) -> None:
        self.file, self.path, self.detail = str(file), path, message
        where = f"{file}: {path}" if path else str(file)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Paper:
    title: str
    authors: tuple[str, ...]
    arxiv: str | None
    year: int
    url: str | None = None

    @property
    def short(self) -> str:
        return f"{self.title} (arXiv {self.arxiv})" if self.arxiv else f"{self.title} ({self.url})"


@dataclass(frozen=True)
class Symbol:
    """A dimension: an integer drawn from ``[min, max]``."""

    name: str
    min: int
    max: int


# A dimension: a symbol's name, a positive integer, or an expression over symbols (``D // 2``).
Dim = str | int | sympy.Basic


@dataclass(frozen=True)
class TensorInput:
    """An input tensor: shape in symbols, value domain, and how it is generated.

    A *derived* input (``derive``) is not drawn: its values are an expression over symbols, params
    and the inputs declared before it, evaluated in float64 and rounded to the tested dtype like
    any input (e.g. RoPE's cos/sin tables from drawn positions).
    """

    name: str
    shape: tuple[Dim, ...]
    kind: str = "real"  # real | bool
    magnitude: tuple[float, float] = (1e-3, 1e3)
    magnitude_by_dtype: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    optional: bool = False
    rows_nonempty: bool = False  # bool masks: every row has a True at a column <= its row index
    default: bool = True  # value of an absent bool input in the oracle
    derive: sympy.Basic | None = None  # derived input: its value, from symbols, params and earlier inputs

    @property
    def drawn(self) -> bool:
        """Whether Hypothesis draws the values (not derived)."""
        return self.derive is None


@dataclass(frozen=True)
class Param:
    """A non-tensor argument: a list of ``values``, or a range (floats, or integers with ``integer``).

    A param with a ``default`` is an *implementation option* (a layout, say): never drawn; each
    implementation is tested at the value its entry fixes (``params``), else at the default.
    """

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    default: Any = None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is in the param's domain (booleans and numbers are not mixed).

        >>> Param("k", values=(False, True)).allows(1)
        False
        >>> Param("n", low=0, high=8, integer=True).allows(3)
        True
        """
        if self.values:
            return any(isinstance(v, bool) == isinstance(value, bool) and v == value for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())


@dataclass(frozen=True)
class Output:
    name: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Interface:
    """How an implementation is called: a function, or a module built from ``init``."""

    kind: str  # function | module
    args: tuple[str, ...]
    kwargs: Mapping[str, str]
    init: Mapping[str, sympy.Basic]
    state: Mapping[str, str]  # module attribute -> input name
    train: bool = False


@dataclass(frozen=True)
class Oracle:
    """The equation: one expression per output (``exprs``, in the outputs' order).

    ``expr`` is the expression of a single-output spec (``None`` with several outputs or none).
    ``noise_scale`` (per output, optional): the magnitude rounding errors scale with where that is
    more than the result's own (an ill-conditioned equation): the oracle's noise floor is taken there.
    """

    expr: sympy.Basic | None
    expr_text: str | Mapping[str, str] | None
    let: tuple[tuple[str, sympy.Basic], ...]
    reference: str | None
    compute_dtype: Mapping[str, str]
    line: int
    exprs: Mapping[str, sympy.Basic] = field(default_factory=dict)
    noise_scale: Mapping[str, sympy.Basic] = field(default_factory=dict)


@dataclass(frozen=True)
class Invariant:
    id: str
    kind: str
    description: str
    options: Mapping[str, Any]
    when: sympy.Basic | None
    line: int


@dataclass(frozen=True)
class Fact:
    id: str
    kind: str  # gradient | identity
    description: str
    options: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class PatternCheck:
    """A behavioural check of a kind from :mod:`conformance.patterns` (``patterns`` in a spec)."""

    id: str
    kind: str
    description: str
    options: Mapping[str, Any]
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    line: int

    @property
    def check(self) -> str:
        """The check's name in reports: ``<kind>:<id>``."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class ToleranceRule:
    factor: float = 2.0
    floor_ulps: float = 8.0
    reason: str | None = None


@dataclass(frozen=True)
class XFail:
    check: str
    device: str | None
    dtype: str | None
    reason: str


@dataclass(frozen=True)
class Diagnosis:
    """An alternative reading of the spec tried when a check fails (``diagnose`` in a spec).

    When ``check`` fails and ``when`` holds, the oracle is evaluated again on the same inputs with
    the params of ``alternative`` (expressions over symbols and params); if the implementation
    matches that, ``say`` is appended to the failure's detail.
    """

    check: str
    alternative: Mapping[str, sympy.Basic]
    say: str
    when: sympy.Basic | None
    line: int


@dataclass(frozen=True)
class Implementation:
    """An implementation under test; ``params`` fixes some of the spec's params for it (its options).

    ``id`` names it in cases and reports: the ref, followed by its params in brackets, as
    ``--impl`` accepts it (``mod:fn[interleaved=true]``).
    """

    ref: str
    xfail: tuple[XFail, ...] = ()
    line: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the id exactly as given on the command line

    @property
    def id(self) -> str:
        if self.label is not None:
            return self.label
        return format_implementation(self.ref, self.params)


_IMPL_ID_RE = re.compile(r"^(?P<ref>[^\[\]]+?)(?:\[(?P<params>[^\[\]]*)\])?$")


def format_implementation(ref: str, params: Mapping[str, Any]) -> str:
    """``ref`` with its fixed params in brackets.

    >>> format_implementation("implementations.rope:apply_rotary_emb_interleaved", {"interleaved": True})
    'implementations.rope:apply_rotary_emb_interleaved[interleaved=true]'
    """
    if not params:
        return ref
    text = ",".join(f"{k}={_format_value(v)}" for k, v in params.items())
    return f"{ref}[{text}]"


def _format_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def parse_implementation(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``mod:attr[name=value,...]`` into the ref and its params (booleans, integers, numbers).

    >>> parse_implementation("implementations.rope:apply_rotary_emb_interleaved[interleaved=true]")
    ('implementations.rope:apply_rotary_emb_interleaved', {'interleaved': True})
    >>> parse_implementation("implementations.rmsnorm:RMSNorm")
    ('implementations.rmsnorm:RMSNorm', {})
    """
    match = _IMPL_ID_RE.match(text.strip())
    if match is None:
        raise ValueError(f"expected REF or REF[name=value,...], got {text!r}")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (match["params"] or "").split(","))):
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not re.match(r"^[A-Za-z]\w*$", name) or not raw:
            raise ValueError(f"expected name=value in {text!r}, got {item!r}")
        params[name] = _option_value(raw, name, text)
    return match["ref"].strip(), params


def _option_value(raw: str, name: str, text: str) -> bool | int | float:
    """``true``/``false`` (any case), an integer or a number; anything else is an error."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    raise ValueError(f"the value of {name!r} in {text!r} must be true, false or a number, got {raw!r}")


@dataclass(frozen=True)
class Ambiguity:
    question: str
    choice: str


@dataclass(frozen=True)
class EquationSpec:
    id: str
    title: str
    paper: Paper
    equation: str
    section: str | None
    statement: str
    ambiguities: tuple[Ambiguity, ...]
    symbols: Mapping[str, Symbol]
    constraints: tuple[tuple[str, sympy.Basic], ...]
    inputs: Mapping[str, TensorInput]
    params: Mapping[str, Param]
    outputs: Mapping[str, Output]
    interface: Interface | None  # None for a spec of pattern checks only
    oracle: Oracle | None  # None for a spec of pattern checks only
    invariants: tuple[Invariant, ...]
    facts: tuple[Fact, ...]
    grad_wrt: tuple[str, ...]
    grad_order: int
    tolerances: Mapping[str, ToleranceRule]
    implementations: tuple[Implementation, ...]
    file: str
    line: int
    patterns: tuple[PatternCheck, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()

    def tolerance_rule(self, dtype: str) -> ToleranceRule:
        return self.tolerances.get(dtype, ToleranceRule())

    def with_implementations(self, refs: Iterable[str]) -> EquationSpec:
        """The same spec with ``refs`` as its only implementations (``--impl``).

        A ref may fix params in brackets, ``mod:fn[interleaved=true]`` (see :func:`parse_implementation`);
        each names its implementation exactly as given.
        """
        impls = []
        for text in refs:
            ref, params = parse_implementation(text)
            self.check_implementation_params(params)
            impls.append(Implementation(ref=ref, params=params, label=text if params else None))
        return replace(self, implementations=tuple(impls))

    def check_implementation_params(self, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless every fixed param is declared and its value in the param's domain."""
        for name, value in params.items():
            if name not in self.params:
                raise ValueError(f"{name!r} is not a param of spec {self.id!r} (params: {', '.join(self.params) or 'none'})")
            if not self.params[name].allows(value):
                raise ValueError(f"{name}={_format_value(value)} is outside the domain of param {name!r} of spec {self.id!r}")

    def implementation(self, implementation_id: str) -> Implementation:
        """The implementation called ``implementation_id`` (one of the spec's, or one parsed from the id)."""
        for impl in self.implementations:
            if impl.id == implementation_id:
                return impl
        ref, params = parse_implementation(implementation_id)
        self.check_implementation_params(params)
        return Implementation(ref=ref, params=params, label=implementation_id if params else None)

    def fixed_params(self, implementation_id: str) -> dict[str, Any]:
        """The params an implementation is tested at, whatever is drawn: its own, else the spec's defaults."""
        fixed = {name: p.default for name, p in self.params.items() if p.default is not None}
        fixed.update(self.implementation(implementation_id).params)
        return fixed

    def for_implementation(self, implementation_id: str) -> EquationSpec:
        """The spec as one implementation is tested: its fixed params are no longer drawn."""
        fixed = self.fixed_params(implementation_id)
        if not fixed:
            return self
        params = {name: replace(p, default=fixed[name]) if name in fixed else p for name, p in self.params.items()}
        return replace(self, params=params)


def load_specs(paths: Iterable[str | Path] = (), *, default: bool = True) -> dict[str, EquationSpec]:
    """Load every ``*.yaml`` spec under ``paths`` (plus the shipped ``specs/`` when ``default``).

    Raises :class:`SpecError` for the first problem found; duplicate ids across files too.
    """
    files: list[Path] = []
    roots = ([_DEFAULT_SPEC_DIR] if default and _DEFAULT_SPEC_DIR.is_dir() else []) + [Path(p) for p in paths]
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")))
        else:
            raise SpecError(root, "", "expected a spec file or a directory of *.yaml specs; not found")
    specs: dict[str, EquationSpec] = {}
    seen: set[Path] = set()
    for file in files:
        if file.resolve() in seen:
            continue
        seen.add(file.resolve())
        for spec in load_file(file):
            if spec.id in specs:
                raise SpecError(file, f"specs[id={spec.id}]", f"duplicate id, already defined in {specs[spec.id].file}")
            specs[spec.id] = spec
    return dict(sorted(specs.items()))


def load_file(file: str | Path) -> list[EquationSpec]:
    """Load and validate one paper's spec file."""
    file = Path(file)
    raw = file.read_bytes()
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(file, "", f"file is {len(raw)} bytes (at most {MAX_SPEC_BYTES})")
    try:
        text = raw.decode("utf-8")
        data = yaml.safe_load(text)
        lines = _line_index(yaml.compose(text, Loader=yaml.SafeLoader))
    except UnicodeDecodeError:
        raise SpecError(file, "", "expected UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise SpecError(file, "", f"invalid YAML: {exc}") from None
    return _FileParser(file, lines).parse(data)


def _line_index(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map each key path (tuple of keys / list indices) to its 1-based line in the file."""
    index: dict[tuple, int] = {}
    if node is None:
        return index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[path + (key.value,)] = key.start_mark.line + 1
            index.update({k: v for k, v in _line_index(value, path + (key.value,)).items() if k != path + (key.value,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            index.update(_line_index(value, path + (i,)))
    return index


class _FileParser:
    """Validates one file's data; every error names ``file`` and the key path."""

    def __init__(self, file: Path, lines: dict[tuple, int]) -> None:
        self.file = file
        self.lines = lines

    # -- generic helpers -------------------------------------------------------------------
    def fail(self, path: tuple, message: str) -> SpecError:
        return SpecError(self.file, _dotted(path), message)

    def line(self, path: tuple) -> int:
        return self.lines.get(path, 0)

    def mapping(self, value: Any, path: tuple, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys {sorted(required | optional)}, got {_kind(value)}")
        for key in value:
            if not isinstance(key, str) or key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.fail(path + (key,), f"unknown key; expected one of: {allowed}")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(path, f"missing required key(s): {', '.join(missing)}")
        return value

    def typed(self, value: Any, path: tuple, types: type | tuple, what: str) -> Any:
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(path, f"expected {what}, got a boolean")
        if not isinstance(value, types):
            raise self.fail(path, f"expected {what}, got {_kind(value)} {value!r}")
        return value

    def text(self, value: Any, path: tuple) -> str:
        value = self.typed(value, path, str, "a string")
        if not value.strip():
            raise self.fail(path, "expected a non-empty string")
        return value

    def expression(self, value: Any, path: tuple, names: set[str]) -> sympy.Basic:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value)
        text = self.typed(value, path, str, "an expression string")
        try:
            parsed = expr_mod.parse(text)
        except expr_mod.ExprError as exc:
            raise self.fail(path, f"{exc}: {text!r}") from None
        unknown = sorted(expr_mod.names_in(parsed) - names)
        if unknown:
            raise self.fail(path, f"undeclared name(s) {', '.join(unknown)}; declared: {', '.join(sorted(names))}")
        return parsed

    def shape(self, value: Any, path: tuple, symbols: Mapping[str, Symbol]) -> tuple[Dim, ...]:
        self.typed(value, path, list, "a list of symbol names or integers")
        dims: list[Dim] = []
        for i, dim in enumerate(value):
            if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
                dims.append(dim)
            elif isinstance(dim, str) and dim in symbols:
                dims.append(dim)
            elif isinstance(dim, str) and (parsed := self.dim_expression(dim, symbols)) is not None:
                dims.append(parsed)
            else:
                raise self.fail(
                    path + (i,),
                    f"{dim!r} is not a declared symbol (declared: {', '.join(symbols)}) or a positive integer"
                    " or an expression over symbols (such as 'D // 2')",
                )
        return tuple(dims)

    @staticmethod
    def dim_expression(text: str, symbols: Mapping[str, Symbol]) -> sympy.Basic | None:
        """A dimension written as an expression over symbols (``D // 2``), or ``None`` if it is not one."""
        try:
            parsed = expr_mod.parse(text)
        except expr_mod.ExprError:
            return None
        if isinstance(parsed, sympy.Symbol) or not expr_mod.names_in(parsed) or not expr_mod.names_in(parsed) <= set(symbols):
            return None
        return parsed

    # -- file and spec ---------------------------------------------------------------------
    def parse(self, data: Any) -> list[EquationSpec]:
        data = self.mapping(data, (), {"schema", "paper", "specs"}, set())
        if data["schema"] != SCHEMA_VERSION:
            raise self.fail(("schema",), f"expected schema version {SCHEMA_VERSION}, got {data['schema']!r}")
        paper = self.paper(data["paper"], ("paper",))
        entries = self.typed(data["specs"], ("specs",), list, "a list of equation specs")
        if not entries:
            raise self.fail(("specs",), "expected at least one equation spec")
        return [self.spec(entry, ("specs", i), paper) for i, entry in enumerate(entries)]

    def paper(self, value: Any, path: tuple) -> Paper:
        value = self.mapping(value, path, {"title", "authors", "year"}, {"arxiv", "url"})
        authors = self.typed(value["authors"], path + ("authors",), list, "a list of author names")
        if "arxiv" not in value and "url" not in value:
            raise self.fail(path, "expected 'arxiv' (an arXiv id) or, for work not on arXiv, 'url'")
        arxiv = None
        if "arxiv" in value:
            arxiv = str(self.typed(value["arxiv"], path + ("arxiv",), (str, float), "an arXiv id string"))
            if not re.match(r"^\d{4}\.\d{4,5}(v\d+)?$", arxiv):
                raise self.fail(path + ("arxiv",), f"expected an arXiv id like '1706.03762', got {arxiv!r}")
        return Paper(
            title=self.text(value["title"], path + ("title",)),
            authors=tuple(self.text(a, path + ("authors", i)) for i, a in enumerate(authors)),
            arxiv=arxiv,
            year=self.typed(value["year"], path + ("year",), int, "a year"),
            url=self.text(value["url"], path + ("url",)) if "url" in value else None,
        )

    _SPEC_REQUIRED = {"id", "title", "equation", "statement", "implementations"}
    _EQUATION_KEYS = {"symbols", "inputs", "outputs", "interface", "oracle"}
    _SPEC_OPTIONAL = _EQUATION_KEYS | {
        "section",
        "ambiguities",
        "constraints",
        "params",
        "invariants",
        "facts",
        "gradients",
        "tolerances",
        "patterns",
        "diagnose",
    }

    def spec(self, value: Any, path: tuple, paper: Paper) -> EquationSpec:
        value = self.mapping(value, path, self._SPEC_REQUIRED, self._SPEC_OPTIONAL)
        spec_id = self.text(value["id"], path + ("id",))
        if not _ID_RE.match(spec_id):
            raise self.fail(path + ("id",), f"expected a lower-case identifier like 'rmsnorm', got {spec_id!r}")
        common = dict(
            id=spec_id,
            title=self.text(value["title"], path + ("title",)),
            paper=paper,
            equation=str(self.typed(value["equation"], path + ("equation",), (str, int, float), "the paper's equation number")),
            section=str(value["section"]) if "section" in value else None,
            statement=self.text(value["statement"], path + ("statement",)),
            ambiguities=self.ambiguities(value.get("ambiguities", []), path + ("ambiguities",)),
            tolerances=self.tolerances(value.get("tolerances", {}), path + ("tolerances",)),
            patterns=self.patterns(value.get("patterns", []), path + ("patterns",)),
            file=str(self.file),
            line=self.line(path),
        )
        present = self._EQUATION_KEYS & set(value)
        if not present:  # a spec of pattern checks only
            extra = sorted({"constraints", "params", "invariants", "facts", "gradients", "diagnose"} & set(value))
            if extra:
                raise self.fail(path + (extra[0],), "needs an equation: symbols, inputs, outputs, interface and oracle")
            if not common["patterns"]:
                raise self.fail(path, "expected an equation (symbols, inputs, outputs, interface, oracle) or 'patterns'")
            return EquationSpec(
                symbols={},
                constraints=(),
                inputs={},
                params={},
                outputs={},
                interface=None,
                oracle=None,
                invariants=(),
                facts=(),
                grad_wrt=(),
                grad_order=0,
                implementations=self.implementations(value["implementations"], path + ("implementations",), {}),
                **common,
            )
        missing = sorted(self._EQUATION_KEYS - present)
        if missing:
            raise self.fail(
                path,
                f"missing required key(s): {', '.join(missing)} (an equation needs all of "
                f"{', '.join(sorted(self._EQUATION_KEYS))})",
            )
        symbols = self.symbols(value["symbols"], path + ("symbols",))
        params = self.params(value.get("params", {}), path + ("params",), set(symbols))
        self.disjoint(path, symbols, params)
        inputs = self.inputs(value["inputs"], path + ("inputs",), symbols, set(symbols) | set(params))
        outputs = self.outputs(value["outputs"], path + ("outputs",), symbols)
        self.disjoint(path, symbols, params, inputs, outputs)
        scalar_names = set(symbols) | set(params)
        value_names = scalar_names | set(inputs)
        constraints = tuple(
            (text, self.expression(text, path + ("constraints", i), scalar_names))
            for i, text in enumerate(
                self.typed(value.get("constraints", []), path + ("constraints",), list, "a list of expressions")
            )
        )
        grad = value.get("gradients")
        grad_wrt, grad_order = self.gradients(grad, path + ("gradients",), inputs) if grad else ((), 0)
        return EquationSpec(
            symbols=symbols,
            constraints=constraints,
            inputs=inputs,
            params=params,
            outputs=outputs,
            interface=self.interface(value["interface"], path + ("interface",), inputs, params, symbols, scalar_names),
            oracle=self.oracle(value["oracle"], path + ("oracle",), value_names, outputs),
            invariants=self.invariants(
                value.get("invariants", []), path + ("invariants",), value_names | set(outputs), inputs, outputs, params
            ),
            facts=self.facts(value.get("facts", []), path + ("facts",)),
            grad_wrt=grad_wrt,
            grad_order=grad_order,
            implementations=self.implementations(value["implementations"], path + ("implementations",), params),
            diagnoses=self.diagnoses(value.get("diagnose", []), path + ("diagnose",), params, scalar_names),
            **common,
        )

    def patterns(self, value: Any, path: tuple) -> tuple[PatternCheck, ...]:
        from conformance.dtype_helpers import DTYPES as dtypes
        from conformance.patterns import kinds

        self.typed(value, path, list, "a list of pattern checks")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, description, ...")
            kind = kinds().get(body.get("kind"))
            if kind is None:
                raise self.fail(p + ("kind",), f"unknown pattern kind {body.get('kind')!r}; known: {', '.join(sorted(kinds()))}")
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, {"devices", "dtypes"} | kind.optional)
            check_id = self.text(body["id"], p + ("id",))
            if not _ID_RE.match(check_id):
                raise self.fail(p + ("id",), f"expected a lower-case identifier, got {check_id!r}")
            devices = self.choices(body.get("devices", list(kind.devices)), p + ("devices",), ("cpu", "cuda"))
            dts = self.choices(body.get("dtypes", list(kind.dtypes)), p + ("dtypes",), dtypes)
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description", "devices", "dtypes")}
            try:
                options = kind.validate(options)
            except expr_mod.ExprError as exc:
                raise self.fail(p, str(exc)) from None
            except KeyError as exc:
                raise self.fail(p + tuple(exc.args[0]), exc.args[1]) from None
            description = self.text(body["description"], p + ("description",))
            out.append(PatternCheck(check_id, kind.name, description, options, devices, dts, self.line(p)))
        ids = [c.id for c in out]
        if len(ids) != len(set(ids)):
            raise self.fail(path, f"pattern check ids must be unique, got {ids}")
        return tuple(out)

    def choices(self, value: Any, path: tuple, allowed: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or any(v not in allowed for v in value):
            raise self.fail(path, f"expected a non-empty list from {', '.join(allowed)}, got {value!r}")
        return tuple(value)

    def disjoint(self, path: tuple, *groups: Mapping[str, Any]) -> None:
        seen: dict[str, int] = {}
        for g, group in enumerate(groups):
            for name in group:
                if name in seen:
                    raise self.fail(
                        path, f"name {name!r} is declared twice (symbols, params, inputs and outputs share one namespace)"
                    )
                seen[name] = g

    def symbols(self, value: Any, path: tuple) -> dict[str, Symbol]:
        self.typed(value, path, dict, "a mapping of symbol name to {min, max}")
        out: dict[str, Symbol] = {}
        for name, bounds in value.items():
            p = path + (name,)
            self.name(name, p)
            bounds = self.mapping(bounds, p, {"min", "max"}, set())
            lo = self.typed(bounds["min"], p + ("min",), int, "a positive integer")
            hi = self.typed(bounds["max"], p + ("max",), int, "a positive integer")
            if not 1 <= lo <= hi <= 4096:
                raise self.fail(p, f"expected 1 <= min <= max <= 4096, got min={lo}, max={hi}")
            out[name] = Symbol(name, lo, hi)
        return out

    def name(self, name: Any, path: tuple) -> str:
        if not isinstance(name, str):
            raise self.fail(path, f"expected a name, got {_kind(name)}")
        try:
            parsed = expr_mod.parse(name)
        except expr_mod.ExprError as exc:
            raise self.fail(path, str(exc)) from None
        if not isinstance(parsed, sympy.Symbol):
            raise self.fail(path, f"expected a plain name (letters, digits, '_'), got {name!r}")
        return name

    def params(self, value: Any, path: tuple, symbols: set[str]) -> dict[str, Param]:
        self.typed(value, path, dict, "a mapping of parameter name to {values} or {min, max}")
        out: dict[str, Param] = {}
        for name, body in value.items():
            p = path + (name,)
            self.name(name, p)
            body = self.mapping(body, p, set(), {"values", "min", "max", "log", "integer", "default"})
            if "values" in body:
                if set(body) - {"values", "default"}:
                    raise self.fail(p, "expected either 'values' or 'min'/'max', not both")
                values = self.typed(body["values"], p + ("values",), list, "a non-empty list")
                if not values or not all(isinstance(v, (bool, int, float)) for v in values):
                    raise self.fail(p + ("values",), "expected a non-empty list of numbers or booleans")
                param = Param(name, values=tuple(values))
            elif {"min", "max"} <= set(body):
                param = self.param_range(name, body, p)
            else:
                raise self.fail(p, "expected 'values' or both 'min' and 'max'")
            if "default" in body:
                if not param.allows(body["default"]):
                    raise self.fail(p + ("default",), f"expected a value of the param's domain, got {body['default']!r}")
                param = replace(param, default=body["default"])
            out[name] = param
        return out

    def param_range(self, name: str, body: Mapping[str, Any], p: tuple) -> Param:
        """A float range (``log`` for log-uniform draws) or, with ``integer: true``, an integer range."""
        integer = self.typed(body.get("integer", False), p + ("integer",), bool, "true or false")
        kind = (int,) if integer else (int, float)
        what = "an integer" if integer else "a number"
        lo = float(self.typed(body["min"], p + ("min",), kind, what))
        hi = float(self.typed(body["max"], p + ("max",), kind, what))
        log = self.typed(body.get("log", False), p + ("log",), bool, "true or false")
        if integer and log:
            raise self.fail(p + ("log",), "integer params are drawn uniformly; log: true applies to float ranges only")
        if lo > hi or (log and lo <= 0):
            raise self.fail(p, f"expected min <= max (and min > 0 with log: true), got {lo}, {hi}")
        if integer and max(abs(lo), abs(hi)) > expr_mod.MAX_INT:
            raise self.fail(p, f"integer params are bounded by {expr_mod.MAX_INT} in absolute value")
        return Param(name, low=int(lo) if integer else lo, high=int(hi) if integer else hi, log=log, integer=integer)

    _DRAW_KEYS = ("magnitude", "magnitude_by_dtype", "optional", "rows_nonempty", "default")

    def inputs(self, value: Any, path: tuple, symbols: Mapping[str, Symbol], scalar_names: set[str]) -> dict[str, TensorInput]:
        self.typed(value, path, dict, "a mapping of input name to {shape, ...}")
        if not value:
            raise self.fail(path, "expected at least one input")
        out: dict[str, TensorInput] = {}
        for name, body in value.items():
            p = path + (name,)
            self.name(name, p)
            body = self.mapping(body, p, {"shape"}, {"dtype", "derive", *self._DRAW_KEYS})
            derive = None
            if "derive" in body:
                drawn_only = [k for k in self._DRAW_KEYS if k in body]
                if drawn_only:
                    raise self.fail(p + (drawn_only[0],), "applies to drawn inputs only; this input is derived")
                derive = self.expression(body["derive"], p + ("derive",), scalar_names | set(out))
            kind = body.get("dtype", "real")
            if kind not in ("real", "bool"):
                raise self.fail(p + ("dtype",), f"expected 'real' or 'bool', got {kind!r}")
            by_dtype = self.typed(
                body.get("magnitude_by_dtype", {}), p + ("magnitude_by_dtype",), dict, "a mapping dtype -> [low, high]"
            )
            for dt in by_dtype:
                if dt not in DTYPES:
                    raise self.fail(p + ("magnitude_by_dtype", dt), f"expected one of {', '.join(DTYPES)}")
            out[name] = TensorInput(
                name=name,
                shape=self.shape(body["shape"], p + ("shape",), symbols),
                kind=kind,
                magnitude=self.magnitude(body.get("magnitude", [1e-3, 1e3]), p + ("magnitude",)),
                magnitude_by_dtype={dt: self.magnitude(r, p + ("magnitude_by_dtype", dt)) for dt, r in by_dtype.items()},
                optional=self.typed(body.get("optional", False), p + ("optional",), bool, "true or false"),
                rows_nonempty=self.typed(body.get("rows_nonempty", False), p + ("rows_nonempty",), bool, "true or false"),
                default=self.typed(body.get("default", True), p + ("default",), bool, "true or false"),
                derive=derive,
            )
            if kind == "bool" and len(out[name].shape) < 2 and out[name].rows_nonempty:
                raise self.fail(p + ("rows_nonempty",), "needs a shape with at least two dimensions")
        return out

    def magnitude(self, value: Any, path: tuple) -> tuple[float, float]:
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not ok or not 0 < value[0] <= value[1] <= 1e300:
            raise self.fail(path, f"expected [low, high] with 0 < low <= high, got {value!r}")
        return float(value[0]), float(value[1])

    def outputs(self, value: Any, path: tuple, symbols: Mapping[str, Symbol]) -> dict[str, Output]:
        self.typed(value, path, dict, "a mapping of output name to {shape}")
        if not value:
            raise self.fail(path, "expected at least one output (several: the implementation returns a tuple in this order)")
        out = {}
        for name, body in value.items():
            p = path + (name,)
            self.name(name, p)
            body = self.mapping(body, p, {"shape"}, set())
            out[name] = Output(name, self.shape(body["shape"], p + ("shape",), symbols))
        return out

    def interface(
        self,
        value: Any,
        path: tuple,
        inputs: Mapping[str, TensorInput],
        params: Mapping[str, Param],
        symbols: Mapping[str, Symbol],
        scalars: set[str],
    ) -> Interface:
        value = self.mapping(value, path, {"kind", "args"}, {"kwargs", "init", "state", "train"})
        kind = value["kind"]
        if kind not in ("function", "module"):
            raise self.fail(path + ("kind",), f"expected 'function' or 'module', got {kind!r}")
        passable = set(inputs) | set(params) | set(symbols)  # a symbol passes its size (a sequence length, say)
        args = self.typed(value["args"], path + ("args",), list, "a list of input/param names")
        for i, a in enumerate(args):
            if a not in passable:
                raise self.fail(path + ("args", i), f"{a!r} is not a declared input, param or symbol")
        kwargs = self.typed(value.get("kwargs", {}), path + ("kwargs",), dict, "a mapping keyword -> input/param name")
        for kw, a in kwargs.items():
            if a not in passable:
                raise self.fail(path + ("kwargs", kw), f"{a!r} is not a declared input, param or symbol")
        init = self.typed(value.get("init", {}), path + ("init",), dict, "a mapping keyword -> expression")
        state = self.typed(value.get("state", {}), path + ("state",), dict, "a mapping attribute -> input name")
        if kind == "function" and (init or state):
            raise self.fail(path, "'init' and 'state' apply to kind: module only")
        for attr, a in state.items():
            if a not in inputs:
                raise self.fail(path + ("state", attr), f"{a!r} is not a declared input")
        used = set(args) | set(kwargs.values()) | set(state.values())
        unused = sorted(set(inputs) - used)
        if unused:
            raise self.fail(path, f"input(s) {', '.join(unused)} are never passed to the implementation")
        return Interface(
            kind=kind,
            args=tuple(args),
            kwargs=dict(kwargs),
            init={k: self.expression(v, path + ("init", k), scalars) for k, v in init.items()},
            state=dict(state),
            train=self.typed(value.get("train", False), path + ("train",), bool, "true or false"),
        )

    def oracle(self, value: Any, path: tuple, names: set[str], outputs: Mapping[str, Output]) -> Oracle:
        value = self.mapping(value, path, set(), {"expr", "let", "reference", "compute_dtype", "noise_scale"})
        if "expr" not in value and "reference" not in value:
            raise self.fail(path, "expected 'expr' (the equation) and/or 'reference' (a float64 function)")
        lets: list[tuple[str, sympy.Basic]] = []
        let_map = self.typed(value.get("let", {}), path + ("let",), dict, "a mapping name -> expression")
        for name, text in let_map.items():
            self.name(name, path + ("let", name))
            lets.append((name, self.expression(text, path + ("let", name), names | {n for n, _ in lets})))
        known = names | {n for n, _ in lets}
        exprs = self.oracle_exprs(value["expr"], path + ("expr",), known, outputs) if "expr" in value else {}
        expr = next(iter(exprs.values())) if len(outputs) == 1 and exprs else None
        reference = value.get("reference")
        if reference is not None and reference not in REFERENCES:
            raise self.fail(
                path + ("reference",), f"unknown reference function {reference!r}; known: {', '.join(sorted(REFERENCES))}"
            )
        compute = self.typed(value.get("compute_dtype", {}), path + ("compute_dtype",), dict, "a mapping dtype -> dtype")
        for k, v in compute.items():
            if k not in DTYPES or v not in DTYPES:
                raise self.fail(path + ("compute_dtype", k), f"expected dtypes from {', '.join(DTYPES)}")
        noise = self.noise_scale(value.get("noise_scale", {}), path + ("noise_scale",), known, outputs)
        return Oracle(expr, value.get("expr"), tuple(lets), reference, dict(compute), self.line(path), exprs, noise)

    def noise_scale(self, value: Any, path: tuple, names: set[str], outputs: Mapping[str, Output]) -> dict[str, sympy.Basic]:
        """``noise_scale``: one expression for every output, or a mapping output name -> expression."""
        if isinstance(value, dict):
            for name in value:
                if name not in outputs:
                    raise self.fail(path + (name,), f"{name!r} is not a declared output ({', '.join(outputs)})")
            return {name: self.expression(value[name], path + (name,), names) for name in outputs if name in value}
        return {name: self.expression(value, path, names) for name in outputs}

    def oracle_exprs(self, value: Any, path: tuple, names: set[str], outputs: Mapping[str, Output]) -> dict[str, sympy.Basic]:
        """One expression per output, in the outputs' order: a string for one output, a mapping for several."""
        if not isinstance(value, dict):
            if len(outputs) > 1 and isinstance(value, str):
                raise self.fail(
                    path, f"expected a mapping output name -> expression, one per output ({', '.join(outputs)}), got a string"
                )
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise self.fail(
                    path, f"expected an expression string (or a mapping output name -> expression), got {_kind(value)} {value!r}"
                )
            (name,) = outputs
            return {name: self.expression(value, path, names)}
        if set(value) != set(outputs):
            raise self.fail(path, f"expected one expression per output ({', '.join(outputs)}), got {', '.join(map(str, value))}")
        return {name: self.expression(value[name], path + (name,), names) for name in outputs}

    def invariants(
        self,
        value: Any,
        path: tuple,
        names: set[str],
        inputs: Mapping[str, TensorInput],
        outputs: Mapping[str, Output],
        params: Mapping[str, Param],
    ) -> tuple[Invariant, ...]:
        self.typed(value, path, list, "a list of invariants")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, ...")
            kind_name = body.get("kind")
            kind = INVARIANT_KINDS.get(kind_name)
            if kind is None:
                raise self.fail(
                    p + ("kind",), f"unknown invariant kind {kind_name!r}; known: {', '.join(sorted(INVARIANT_KINDS))}"
                )
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, {"when"} | kind.optional)
            inv_id = self.text(body["id"], p + ("id",))
            if not _ID_RE.match(inv_id):
                raise self.fail(p + ("id",), f"expected a lower-case identifier, got {inv_id!r}")
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description", "when")}
            try:
                options = kind.validate(options, names=names, inputs=inputs, outputs=outputs, params=params, parse=expr_mod.parse)
            except expr_mod.ExprError as exc:
                raise self.fail(p, str(exc)) from None
            except KeyError as exc:
                raise self.fail(p + exc.args[0], exc.args[1]) from None
            when = self.expression(body["when"], p + ("when",), names) if "when" in body else None
            out.append(
                Invariant(inv_id, kind_name, self.text(body["description"], p + ("description",)), options, when, self.line(p))
            )
        ids = [inv.id for inv in out]
        if len(ids) != len(set(ids)):
            raise self.fail(path, f"invariant ids must be unique, got {ids}")
        return tuple(out)

    def facts(self, value: Any, path: tuple) -> tuple[Fact, ...]:
        from conformance.symbolic import FACT_KINDS

        self.typed(value, path, list, "a list of symbolic facts")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, ...")
            kind = FACT_KINDS.get(body.get("kind"))
            if kind is None:
                raise self.fail(p + ("kind",), f"unknown fact kind {body.get('kind')!r}; known: {', '.join(sorted(FACT_KINDS))}")
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, kind.optional)
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description")}
            try:
                options = kind.validate(options)
            except expr_mod.ExprError as exc:
                raise self.fail(p, str(exc)) from None
            except KeyError as exc:
                raise self.fail(p + exc.args[0], exc.args[1]) from None
            out.append(
                Fact(
                    self.text(body["id"], p + ("id",)),
                    body["kind"],
                    self.text(body["description"], p + ("description",)),
                    options,
                    self.line(p),
                )
            )
        return tuple(out)

    def gradients(self, value: Any, path: tuple, inputs: Mapping[str, TensorInput]) -> tuple[tuple[str, ...], int]:
        value = self.mapping(value, path, {"wrt"}, {"order"})
        wrt = self.typed(value["wrt"], path + ("wrt",), list, "a list of input names")
        for i, name in enumerate(wrt):
            if name not in inputs or inputs[name].kind != "real":
                raise self.fail(path + ("wrt", i), f"{name!r} is not a declared real input")
        order = self.typed(value.get("order", 1), path + ("order",), int, "1 or 2")
        if order not in (1, 2):
            raise self.fail(path + ("order",), f"expected 1 or 2, got {order}")
        return tuple(wrt), order

    def tolerances(self, value: Any, path: tuple) -> dict[str, ToleranceRule]:
        self.typed(value, path, dict, "a mapping dtype -> {factor, floor_ulps, reason}")
        out = {}
        for dt, body in value.items():
            p = path + (dt,)
            if dt not in DTYPES:
                raise self.fail(p, f"expected one of {', '.join(DTYPES)}")
            body = self.mapping(body, p, {"reason"}, {"factor", "floor_ulps"})
            factor = float(self.typed(body.get("factor", 2.0), p + ("factor",), (int, float), "a number"))
            floor = float(self.typed(body.get("floor_ulps", 8.0), p + ("floor_ulps",), (int, float), "a number"))
            if not (1.0 <= factor <= 100.0 and 0.0 <= floor <= 4096.0):
                raise self.fail(p, "expected 1 <= factor <= 100 and 0 <= floor_ulps <= 4096")
            out[dt] = ToleranceRule(factor, floor, self.text(body["reason"], p + ("reason",)))
        return out

    def implementations(self, value: Any, path: tuple, params: Mapping[str, Param]) -> tuple[Implementation, ...]:
        from conformance.calling import ImplementationError, resolve

        self.typed(value, path, list, "a list of {ref: module:attr}")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            body = self.mapping(body, p, {"ref"}, {"xfail", "params"})
            ref = self.text(body["ref"], p + ("ref",))
            if not _REF_RE.match(ref):
                raise self.fail(p + ("ref",), f"expected 'package.module:attribute' or 'path/file.py:attribute', got {ref!r}")
            try:
                resolve(ref, base=self.file.parent)
            except ImplementationError as exc:
                raise self.fail(p + ("ref",), str(exc)) from None
            xfails = []
            for j, xf in enumerate(self.typed(body.get("xfail", []), p + ("xfail",), list, "a list")):
                q = p + ("xfail", j)
                xf = self.mapping(xf, q, {"check", "reason"}, {"device", "dtype"})
                xfails.append(
                    XFail(
                        self.text(xf["check"], q + ("check",)),
                        xf.get("device"),
                        xf.get("dtype"),
                        self.text(xf["reason"], q + ("reason",)),
                    )
                )
            fixed = self.implementation_params(body.get("params", {}), p + ("params",), params)
            out.append(Implementation(ref, tuple(xfails), self.line(p), fixed))
        ids = [impl.id for impl in out]
        if len(ids) != len(set(ids)):
            raise self.fail(path, f"implementations must differ in ref or params, got {ids}")
        return tuple(out)

    def implementation_params(self, value: Any, path: tuple, params: Mapping[str, Param]) -> dict[str, Any]:
        """The params an implementation fixes (its declared options): declared, and within their domain."""
        self.typed(value, path, dict, "a mapping param name -> value")
        for name, v in value.items():
            if name not in params:
                raise self.fail(path + (name,), f"{name!r} is not a declared param (params: {', '.join(params) or 'none'})")
            if not params[name].allows(v):
                raise self.fail(path + (name,), f"{v!r} is outside the domain of param {name!r}")
        return dict(value)

    _DIAGNOSABLE = ("oracle",)

    def diagnoses(self, value: Any, path: tuple, params: Mapping[str, Param], scalars: set[str]) -> tuple[Diagnosis, ...]:
        """``diagnose``: alternative params the oracle is re-evaluated with when a check fails."""
        self.typed(value, path, list, "a list of {when_failing, try, say}")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            body = self.mapping(body, p, {"try", "say"}, {"when_failing", "when"})
            check = body.get("when_failing", "oracle")
            if check not in self._DIAGNOSABLE:
                raise self.fail(p + ("when_failing",), f"expected one of {', '.join(self._DIAGNOSABLE)}, got {check!r}")
            alternative = self.typed(body["try"], p + ("try",), dict, "a mapping param name -> expression")
            if not alternative:
                raise self.fail(p + ("try",), "expected at least one param")
            for name in alternative:
                if name not in params:
                    declared = ", ".join(params) or "none"
                    raise self.fail(p + ("try", name), f"{name!r} is not a declared param (params: {declared})")
            out.append(
                Diagnosis(
                    check=check,
                    alternative={n: self.expression(_bool_text(e), p + ("try", n), scalars) for n, e in alternative.items()},
                    say=self.text(body["say"], p + ("say",)),
                    when=self.expression(body["when"], p + ("when",), scalars) if "when" in body else None,
                    line=self.line(p),
                )
            )
        return tuple(out)

    def ambiguities(self, value: Any, path: tuple) -> tuple[Ambiguity, ...]:
        self.typed(value, path, list, "a list of {question, choice}")
        out = []
        for i, body in enumerate(value):
            body = self.mapping(body, path + (i,), {"question", "choice"}, set())
            out.append(
                Ambiguity(self.text(body["question"], path + (i, "question")), self.text(body["choice"], path + (i, "choice")))
            )
        return tuple(out)


def _bool_text(value: Any) -> Any:
    """YAML's ``true``/``false`` as the expression language's ``True``/``False``."""
    return ("True" if value else "False") if isinstance(value, bool) else value


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
