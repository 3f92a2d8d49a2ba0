"""The spec parser: one file's YAML data checked key by key against the schema, into model records.

Every problem raises one :class:`~conformance.validation.SpecError` naming the file, the key path
(a :class:`~conformance.validation.Where`) and what was expected. Kinds (invariants, facts,
patterns) come from the open registries of :mod:`conformance.registry` and validate their own
options with ``kind.validate(options, where, context)``. Refs (implementations, reference
functions) are checked for syntax only: nothing is imported (:mod:`conformance.refs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import sympy

from conformance import expr as expr_mod
from conformance.dtype_names import DTYPES, EPSILON
from conformance.loader.meaning import check_meaning
from conformance.model import (
    STRING_VALUE_RE,
    UNSUPPORTED_EXCEPTIONS,
    Ambiguity,
    Diagnosis,
    Dim,
    EquationSpec,
    Fact,
    Implementation,
    Interface,
    Invariant,
    Oracle,
    Output,
    Paper,
    Param,
    PatternCheck,
    Symbol,
    TensorInput,
    ToleranceRule,
    Unsupported,
    XFail,
    condition_names,
    presence_name,
)
from conformance.refs import ref_problem
from conformance.registry import FACT_KINDS, INVARIANT_KINDS, PATTERN_KINDS, REFERENCES
from conformance.validation import SpecContext, SpecError, Where, kind_of, parse_expression

SCHEMA_VERSION = 1
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ARXIV_RE = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")


class SpecParser:
    """Validates one file's data; every error names ``file`` and the key path."""

    def __init__(self, file: Path, lines: dict[tuple, int]) -> None:
        self.file = file
        self.lines = lines
        self.string_params: set[str] = set()  # the current spec's string-valued params (never in an expression)

    # -- generic helpers -------------------------------------------------------------------
    def where(self, path: tuple) -> Where:
        return Where(self.file, path)

    def fail(self, path: tuple, message: str) -> SpecError:
        return self.where(path).error(message)

    def line(self, path: tuple) -> int:
        return self.lines.get(path, 0)

    def mapping(self, value: Any, path: tuple, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys {sorted(required | optional)}, got {kind_of(value)}")
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
            raise self.fail(path, f"expected {what}, got {kind_of(value)} {value!r}")
        return value

    def text(self, value: Any, path: tuple) -> str:
        value = self.typed(value, path, str, "a string")
        if not value.strip():
            raise self.fail(path, "expected a non-empty string")
        return value

    def expression(self, value: Any, path: tuple, names: set[str] | None) -> sympy.Basic:
        """``value`` parsed by the safe parser, every free name among ``names`` (``None``: unchecked).

        A string-valued param is refused by name: it is passed to the implementation as given, never evaluated.
        """
        parsed = parse_expression(value, self.where(path), None if names is None else set(names) | self.string_params)
        strings = sorted(expr_mod.names_in(parsed) & self.string_params)
        if strings:
            raise self.fail(
                path,
                f"param {strings[0]!r} has string values: it is passed to the implementation as given and cannot"
                " appear in an expression",
            )
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
        if isinstance(data["schema"], bool) or data["schema"] != SCHEMA_VERSION:
            raise self.fail(("schema",), f"expected schema version {SCHEMA_VERSION}, got {data['schema']!r}")
        paper = self.paper(data["paper"], ("paper",))
        entries = self.typed(data["specs"], ("specs",), list, "a list of equation specs")
        if not entries:
            raise self.fail(("specs",), "expected at least one equation spec")
        specs = []
        for i, entry in enumerate(entries):
            spec = self.spec(entry, ("specs", i), paper)
            check_meaning(spec, self.where(("specs", i)))
            specs.append(spec)
        return specs

    def paper(self, value: Any, path: tuple) -> Paper:
        value = self.mapping(value, path, {"title", "authors", "year"}, {"arxiv", "url"})
        authors = self.typed(value["authors"], path + ("authors",), list, "a list of author names")
        if "arxiv" not in value and "url" not in value:
            raise self.fail(path, "expected 'arxiv' (an arXiv id) or, for work not on arXiv, 'url'")
        arxiv = self.arxiv(value["arxiv"], path + ("arxiv",)) if "arxiv" in value else None
        return Paper(
            title=self.text(value["title"], path + ("title",)),
            authors=tuple(self.text(a, path + ("authors", i)) for i, a in enumerate(authors)),
            arxiv=arxiv,
            year=self.typed(value["year"], path + ("year",), int, "a year"),
            url=self.text(value["url"], path + ("url",)) if "url" in value else None,
        )

    def arxiv(self, value: Any, path: tuple) -> str:
        """An arXiv id, which must be a string: YAML reads ``1706.03762`` unquoted as a number."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.fail(
                path,
                f"YAML read the arXiv id as a number ({value!r}; trailing zeros are lost that way): quote it,"
                " as in arxiv: '1706.03762'",
            )
        arxiv = self.typed(value, path, str, "an arXiv id string")
        if not _ARXIV_RE.match(arxiv):
            raise self.fail(path, f"expected an arXiv id like '1706.03762', got {arxiv!r}")
        return arxiv

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
        self.string_params = set()
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
            file=str(self.file),
            line=self.line(path),
            index=path[-1],
        )
        present = self._EQUATION_KEYS & set(value)
        if not present:  # a spec of pattern checks only
            extra = sorted({"constraints", "invariants", "facts", "gradients", "diagnose"} & set(value))
            if extra:
                raise self.fail(path + (extra[0],), "needs an equation: symbols, inputs, outputs, interface and oracle")
            options = self.implementation_options(value.get("params", {}), path + ("params",))
            patterns = self.patterns(
                value.get("patterns", []), path + ("patterns",), SpecContext(self.file, spec_id, params=options)
            )
            if not patterns:
                raise self.fail(path, "expected an equation (symbols, inputs, outputs, interface, oracle) or 'patterns'")
            return EquationSpec(
                patterns=patterns,
                symbols={},
                constraints=(),
                inputs={},
                outputs={},
                interface=None,
                oracle=None,
                invariants=(),
                facts=(),
                grad_wrt=(),
                grad_order=0,
                params=options,
                implementations=self.implementations(
                    value["implementations"],
                    path + ("implementations",),
                    options,
                    own_interface=lambda body, p: pattern_interface(patterns, body, self.where(p)),
                ),
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
        self.string_params = {n for n, p in params.items() if p.is_string}
        numeric = set(params) - self.string_params  # a string param is passed to the implementation only
        inputs = self.inputs(value["inputs"], path + ("inputs",), symbols, set(symbols) | numeric)
        outputs = self.outputs(value["outputs"], path + ("outputs",), symbols)
        self.disjoint(path, symbols, params, inputs, outputs)
        scalar_names = set(symbols) | numeric
        value_names = scalar_names | set(inputs)
        constraints = tuple(
            (text, self.expression(text, path + ("constraints", i), scalar_names))
            for i, text in enumerate(
                self.typed(value.get("constraints", []), path + ("constraints",), list, "a list of expressions")
            )
        )
        grad = value.get("gradients")
        grad_wrt, grad_order = self.gradients(grad, path + ("gradients",), inputs) if grad else ((), 0)
        oracle = self.oracle(value["oracle"], path + ("oracle",), value_names, outputs)
        context = SpecContext(self.file, spec_id, symbols, params, inputs, outputs, frozenset(value_names), oracle.let)
        return EquationSpec(
            patterns=self.patterns(value.get("patterns", []), path + ("patterns",), context),
            symbols=symbols,
            constraints=constraints,
            inputs=inputs,
            params=params,
            outputs=outputs,
            interface=self.interface(value["interface"], path + ("interface",), inputs, params, symbols, scalar_names, outputs),
            oracle=oracle,
            invariants=self.invariants(
                value.get("invariants", []), path + ("invariants",), replace(context, names=context.names | set(outputs))
            ),
            facts=self.facts(value.get("facts", []), path + ("facts",), context),
            grad_wrt=grad_wrt,
            grad_order=grad_order,
            implementations=self.implementations(
                value["implementations"],
                path + ("implementations",),
                params,
                self.condition_names(path, symbols, params, inputs, outputs),
                own_interface=lambda body, p: self.interface(
                    self.own_interface(body, value["interface"], p), p, inputs, params, symbols, scalar_names, outputs
                ),
            ),
            diagnoses=self.diagnoses(
                value.get("diagnose", []), path + ("diagnose",), params, scalar_names, (oracle, value_names)
            ),
            **common,
        )

    def patterns(self, value: Any, path: tuple, context: SpecContext) -> tuple[PatternCheck, ...]:
        self.typed(value, path, list, "a list of pattern checks")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, description, ...")
            kind = self.kind(PATTERN_KINDS, body.get("kind"), p + ("kind",))
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, {"devices", "dtypes"} | kind.optional)
            check_id = self.text(body["id"], p + ("id",))
            if not _ID_RE.match(check_id):
                raise self.fail(p + ("id",), f"expected a lower-case identifier, got {check_id!r}")
            devices = self.choices(body.get("devices", list(kind.devices)), p + ("devices",), ("cpu", "cuda"))
            dts = self.choices(body.get("dtypes", list(kind.dtypes)), p + ("dtypes",), DTYPES)
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description", "devices", "dtypes")}
            options = kind.validate(options, self.where(p), context)
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
            raise self.fail(path, f"expected a name, got {kind_of(name)}")
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
                param = Param(name, values=self.param_values(body["values"], p + ("values",)))
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

    def param_values(self, value: Any, path: tuple) -> tuple[Any, ...]:
        """A param's ``values``: numbers and booleans, or strings only (an option passed as is, never evaluated)."""
        values = self.typed(value, path, list, "a non-empty list")
        if values and all(isinstance(v, str) for v in values):
            for i, v in enumerate(values):
                if not STRING_VALUE_RE.match(v):
                    raise self.fail(
                        path + (i,), f"a string value may hold letters, digits, '_', '.' and '-' only (1 to 64), got {v!r}"
                    )
            if len(set(values)) != len(values):
                raise self.fail(path, f"expected distinct values, got {values}")
            return tuple(values)
        if not values or not all(isinstance(v, (bool, int, float)) for v in values):
            raise self.fail(path, "expected a non-empty list of numbers or booleans, or of strings (not both)")
        return tuple(values)

    def implementation_options(self, value: Any, path: tuple) -> dict[str, Param]:
        """A pattern-only spec's ``params``: implementation options only (each with a ``default``; nothing is drawn)."""
        options = self.params(value, path, set())
        for name, param in options.items():
            if param.default is None:
                message = "a spec of pattern checks only draws no params: give a default (an implementation option)"
                raise self.fail(path + (name,), message)
        return options

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

    _DRAW_KEYS = ("magnitude", "magnitude_by_dtype", "optional", "rows_nonempty", "default", "sign")

    def inputs(self, value: Any, path: tuple, symbols: Mapping[str, Symbol], scalar_names: set[str]) -> dict[str, TensorInput]:
        self.typed(value, path, dict, "a mapping of input name to {shape, ...}")
        if not value:
            raise self.fail(path, "expected at least one input")
        out: dict[str, TensorInput] = {}
        for name, body in value.items():
            p = path + (name,)
            self.name(name, p)
            body = self.mapping(body, p, {"shape"}, {"dtype", "derive", "range", *self._DRAW_KEYS})
            kind = body.get("dtype", "real")
            if kind not in ("real", "bool", "index"):
                raise self.fail(p + ("dtype",), f"expected 'real', 'bool' or 'index', got {kind!r}")
            index_range = self.index_keys(body, p, symbols) if kind == "index" else None
            if kind != "index" and "range" in body:
                raise self.fail(p + ("range",), "applies to index inputs only (dtype: index)")
            sign = body.get("sign", "any")
            if sign not in ("any", "nonnegative") or (kind != "real" and "sign" in body):
                expected = "'any' or 'nonnegative'" if kind == "real" else "nothing: sign applies to real inputs only"
                raise self.fail(p + ("sign",), f"expected {expected}, got {sign!r}")
            derive = None
            if "derive" in body:
                drawn_only = [k for k in self._DRAW_KEYS if k in body]
                if drawn_only:
                    raise self.fail(p + (drawn_only[0],), "applies to drawn inputs only; this input is derived")
                derive = self.expression(body["derive"], p + ("derive",), scalar_names | set(out))
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
                index_range=index_range,
                nonnegative=sign == "nonnegative",
            )
            if kind == "bool" and len(out[name].shape) < 2 and out[name].rows_nonempty:
                raise self.fail(p + ("rows_nonempty",), "needs a shape with at least two dimensions")
        return out

    def index_keys(self, body: dict, path: tuple, symbols: Mapping[str, Symbol]) -> Dim:
        """An index input's ``range`` (required; a positive integer, a symbol or an expression over symbols);
        the real and bool inputs' keys and ``derive`` are refused with it."""
        for key in ("derive", *self._DRAW_KEYS):
            if key in body:
                raise self.fail(
                    path + (key,),
                    "does not apply to an index input (dtype: index): its values are integers drawn uniformly in"
                    " 0 .. range - 1, always passed",
                )
        if "range" not in body:
            raise self.fail(path, "missing required key 'range' for an index input: the number of values, e.g. range: C")
        value = body["range"]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value in symbols:
            return value
        if isinstance(value, str) and (parsed := self.dim_expression(value, symbols)) is not None:
            return parsed
        raise self.fail(
            path + ("range",),
            f"expected a positive integer, a declared symbol ({', '.join(symbols) or 'none declared'}) or an expression"
            f" over symbols (such as 'C - 1'), got {value!r}",
        )

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
        outputs: Mapping[str, Output] | None = None,
    ) -> Interface:
        value = self.mapping(
            value, path, {"kind", "args"},
            {"kwargs", "init", "state", "train", "layouts", "output_layouts", "values", "constants", "returns"},
        )
        kind = value["kind"]
        if kind not in ("function", "module"):
            raise self.fail(path + ("kind",), f"expected 'function' or 'module', got {kind!r}")
        computed = self.interface_values(value.get("values", {}), path + ("values",), set(inputs) | set(params) | set(symbols))
        passable = set(inputs) | set(params) | set(symbols) | set(computed)  # a symbol passes its size (a sequence length)
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
            if a not in inputs and a not in computed:
                raise self.fail(path + ("state", attr), f"{a!r} is not a declared input (or a name in 'values')")
        used = set(args) | set(kwargs.values()) | set(state.values())
        used |= {str(n) for name in used if name in computed for n in computed[name].free_symbols}
        unused = sorted(set(inputs) - used)
        if unused:
            raise self.fail(path, f"input(s) {', '.join(unused)} are never passed to the implementation")
        return Interface(
            kind=kind,
            args=tuple(args),
            kwargs=dict(kwargs),
            init={k: self.init_value(v, path + ("init", k), scalars) for k, v in init.items()},
            state=dict(state),
            train=self.typed(value.get("train", False), path + ("train",), bool, "true or false"),
            layouts=self.layouts(value.get("layouts", {}), path + ("layouts",), {n: i.shape for n, i in inputs.items()}),
            output_layouts=self.layouts(
                value.get("output_layouts", {}), path + ("output_layouts",), {n: o.shape for n, o in (outputs or {}).items()}
            ),
            values=computed,
            constants=self.interface_constants(value.get("constants", {}), path + ("constants",), set(kwargs)),
            returns=self.returns(value.get("returns"), path + ("returns",), len(outputs or {}) or 1),
        )

    def interface_values(self, value: Any, path: tuple, names: set[str]) -> dict[str, sympy.Basic]:
        """``values: {name: expression over inputs, params, symbols}`` (a name of its own, not a declared one)."""
        body = self.typed(value, path, dict, "a mapping name -> expression over the inputs")
        out = {}
        for name, text in body.items():
            if name in names:
                raise self.fail(path + (name,), f"{name!r} is already a declared input, param or symbol")
            if not isinstance(name, str) or not name.isidentifier():
                raise self.fail(path + (name,), "expected an identifier as the value's name")
            out[name] = self.expression(text, path + (name,), names)
        return out

    def interface_constants(self, value: Any, path: tuple, keywords: set[str]) -> dict[str, Any]:
        """``constants: {keyword: true/false, a number or a string}``, passed as given (not also in ``kwargs``)."""
        body = self.typed(value, path, dict, "a mapping keyword -> a literal (true/false, a number, a string)")
        for kw, literal in body.items():
            if kw in keywords:
                raise self.fail(path + (kw,), f"{kw!r} is also in 'kwargs'")
            if not isinstance(literal, (bool, int, float, str)) or literal is None:
                raise self.fail(path + (kw,), f"expected true/false, a number or a string, got {type(literal).__name__}")
        return dict(body)

    def returns(self, value: Any, path: tuple, count: int) -> tuple[int, ...] | None:
        """``returns``: the position of the output in a returned tuple (an integer; a list of one per output)."""
        if value is None:
            return None
        positions = value if isinstance(value, list) else [value]
        if len(positions) != count or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in positions):
            raise self.fail(path, f"expected {'an index' if count == 1 else f'a list of {count} indices'} (>= 0), one per output")
        return tuple(positions)

    def own_interface(self, value: Any, spec_interface: Any, path: tuple) -> dict[str, Any]:
        """An implementation's ``interface``: the keys it gives replace the spec's; one that gives another ``kind``
        (a function implementing a module's spec) inherits nothing, so it says how it is called in full."""
        body = self.typed(value, path, dict, "a mapping: the interface keys that differ from the spec's")
        base = dict(spec_interface) if isinstance(spec_interface, dict) else {}
        if "kind" in body and body["kind"] != base.get("kind"):
            return dict(body)
        return {**base, **body}

    def layouts(self, value: Any, path: tuple, shapes: Mapping[str, tuple]) -> dict[str, tuple[int, ...]]:
        """``{tensor: [its axes in the implementation's order]}`` → the permutation of the spec's axes (for ``permute``)."""
        body = self.typed(value, path, dict, "a mapping tensor name -> its axes in the implementation's order")
        out = {}
        for name, axes in body.items():
            p = path + (name,)
            if name not in shapes:
                raise self.fail(p, f"{name!r} is not a declared tensor here (expected one of {', '.join(sorted(shapes))})")
            declared = [str(d) for d in shapes[name]]
            names = [str(a) for a in self.typed(axes, p, list, f"a list: its axes {declared} in the implementation's order")]
            if len(set(declared)) != len(declared):
                raise self.fail(p, f"its shape {declared} repeats an axis, so a reordering by name is ambiguous")
            if sorted(names) != sorted(declared):
                raise self.fail(p, f"expected a reordering of its shape {declared}, got {names}")
            out[name] = tuple(declared.index(n) for n in names)
        return out

    def init_value(self, value: Any, path: tuple, scalars: set[str]) -> sympy.Basic:
        """A constructor argument: an expression over sizes and params, or a string param's bare name (passed as is)."""
        if isinstance(value, str) and value.strip() in self.string_params:
            return sympy.Symbol(value.strip())
        return self.expression(value, path, scalars)

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
        reference = self.reference(value["reference"], path + ("reference",)) if "reference" in value else None
        compute = self.typed(value.get("compute_dtype", {}), path + ("compute_dtype",), dict, "a mapping dtype -> dtype")
        for k, v in compute.items():
            if k not in DTYPES or v not in DTYPES:
                raise self.fail(path + ("compute_dtype", k), f"expected dtypes from {', '.join(DTYPES)}")
        noise = self.noise_scale(value.get("noise_scale", {}), path + ("noise_scale",), known, outputs)
        return Oracle(expr, value.get("expr"), tuple(lets), reference, dict(compute), self.line(path), exprs, noise)

    def reference(self, value: Any, path: tuple) -> str:
        """A registered reference name, or a ref (``my_refs.py:fn``) checked for syntax only (nothing is imported)."""
        text = self.text(value, path)
        if ":" in text:
            problem = ref_problem(text)
            if problem is not None:
                raise self.fail(path, problem)
            return text
        if text not in REFERENCES:
            known = ", ".join(REFERENCES.names())
            raise self.fail(path, f"unknown reference function {text!r}; known: {known} (or a ref 'file.py:function')")
        return text

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
                    path,
                    f"expected an expression string (or a mapping output name -> expression), got {kind_of(value)} {value!r}",
                )
            (name,) = outputs
            return {name: self.expression(value, path, names)}
        if set(value) != set(outputs):
            raise self.fail(path, f"expected one expression per output ({', '.join(outputs)}), got {', '.join(map(str, value))}")
        return {name: self.expression(value[name], path + (name,), names) for name in outputs}

    def kind(self, registry: Any, name: Any, path: tuple) -> Any:
        """The record called ``name`` in a kind registry, or an error listing the known kinds."""
        kind = registry.get(name) if isinstance(name, str) else None
        if kind is None:
            raise self.fail(path, f"unknown {registry.what} {name!r}; known: {', '.join(registry.names())}")
        return kind

    def invariants(self, value: Any, path: tuple, context: SpecContext) -> tuple[Invariant, ...]:
        self.typed(value, path, list, "a list of invariants")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, ...")
            kind_name = body.get("kind")
            kind = self.kind(INVARIANT_KINDS, kind_name, p + ("kind",))
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, {"when"} | kind.optional)
            inv_id = self.text(body["id"], p + ("id",))
            if not _ID_RE.match(inv_id):
                raise self.fail(p + ("id",), f"expected a lower-case identifier, got {inv_id!r}")
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description", "when")}
            options = kind.validate(options, self.where(p), context)
            when = self.expression(body["when"], p + ("when",), set(context.names)) if "when" in body else None
            out.append(
                Invariant(
                    inv_id, kind_name, self.text(body["description"], p + ("description",)), options, when, self.line(p),
                    when_text=str(body["when"]).strip() if "when" in body else "",
                )
            )
        ids = [inv.id for inv in out]
        if len(ids) != len(set(ids)):
            raise self.fail(path, f"invariant ids must be unique, got {ids}")
        return tuple(out)

    def facts(self, value: Any, path: tuple, context: SpecContext) -> tuple[Fact, ...]:
        self.typed(value, path, list, "a list of symbolic facts")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            self.typed(body, p, dict, "a mapping with id, kind, ...")
            kind = self.kind(FACT_KINDS, body.get("kind"), p + ("kind",))
            body = self.mapping(body, p, {"id", "kind", "description"} | kind.required, kind.optional)
            options = {k: v for k, v in body.items() if k not in ("id", "kind", "description")}
            options = kind.validate(options, self.where(p), context)
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
            if name in inputs and inputs[name].kind == "index":
                raise self.fail(path + ("wrt", i), f"{name!r} is an index input (integers): it has no gradient")
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
            if floor * EPSILON[dt] >= 1.0:  # the floor alone would reach the output's own magnitude: vacuous
                raise self.fail(
                    p + ("floor_ulps",),
                    f"expected fewer than {1 / EPSILON[dt]:g} ulps of {dt} (eps = {EPSILON[dt]:g}): a floor of {floor:g} ulps "
                    "is at least the output's own magnitude, so no result could fail it",
                )
            out[dt] = ToleranceRule(factor, floor, self.text(body["reason"], p + ("reason",)))
        return out

    def implementations(
        self,
        value: Any,
        path: tuple,
        params: Mapping[str, Param],
        condition_names: set[str] | None = None,
        own_interface: Callable[[Any, tuple], Interface] | None = None,
    ) -> tuple[Implementation, ...]:
        """The ``implementations`` list; ``condition_names``: what an ``unsupported`` condition may name
        (``None``: a spec without an equation, where ``unsupported`` does not apply); ``own_interface``: an entry's
        ``interface`` (its declared differences) as the interface it is called with (``None``: no interface here)."""
        self.typed(value, path, list, "a list of {ref: module:attr}")
        out = []
        for i, body in enumerate(value):
            p = path + (i,)
            body = self.mapping(body, p, {"ref"}, {"xfail", "params", "unsupported", "interface"})
            ref = self.text(body["ref"], p + ("ref",))
            problem = ref_problem(ref)  # syntax only: implementations are imported when cases are built
            if problem is not None:
                raise self.fail(p + ("ref",), problem)
            entries = self.typed(body.get("xfail", []), p + ("xfail",), list, "a list")
            xfails = [self.xfail(xf, p + ("xfail", j)) for j, xf in enumerate(entries)]
            fixed = self.implementation_params(body.get("params", {}), p + ("params",), params)
            regions = self.unsupported_list(body.get("unsupported", []), p + ("unsupported",), condition_names)
            interface = None
            if "interface" in body:
                if own_interface is None:
                    raise self.fail(p + ("interface",), "applies to an equation's implementations (a spec with an interface)")
                interface = own_interface(body["interface"], p + ("interface",))
            out.append(Implementation(ref, tuple(xfails), self.line(p), fixed, unsupported=regions, interface=interface))
        ids = [impl.id for impl in out]
        if len(ids) != len(set(ids)):
            raise self.fail(path, f"implementations must differ in ref or params, got {ids}")
        return tuple(out)

    XFAIL_KEYS = frozenset({"check", "reason"})
    XFAIL_OPTIONAL = frozenset({"device", "dtype", "strict"})

    def xfail(
        self, value: Any, path: tuple, extra_required: frozenset[str] = frozenset(), extra_optional: frozenset[str] = frozenset()
    ) -> XFail:
        """One reviewed expected failure: ``{check, reason, device?, dtype?, strict?}`` (and the extra keys)."""
        body = self.mapping(value, path, set(self.XFAIL_KEYS | extra_required), set(self.XFAIL_OPTIONAL | extra_optional))
        device, dtype = body.get("device"), body.get("dtype")
        if device is not None and device not in ("cpu", "cuda"):
            raise self.fail(path + ("device",), f"expected cpu or cuda, got {device!r}")
        if dtype is not None and dtype not in (*DTYPES, "exact"):
            raise self.fail(path + ("dtype",), f"expected one of {', '.join((*DTYPES, 'exact'))}, got {dtype!r}")
        strict = self.typed(body.get("strict", True), path + ("strict",), bool, "true or false")
        reason = self.text(body["reason"], path + ("reason",))
        check = self.text(body["check"], path + ("check",))
        return XFail(check, device, dtype, reason, strict, file=str(self.file), line=self.line(path))

    def condition_names(
        self,
        path: tuple,
        symbols: Mapping[str, Symbol],
        params: Mapping[str, Param],
        inputs: Mapping[str, TensorInput],
        outputs: Mapping[str, Output],
    ) -> set[str]:
        """What an ``unsupported`` condition may name; a ``has_<input>`` that is also a declared name is refused."""
        declared = set(symbols) | set(params) | set(inputs) | set(outputs)
        for name, inp in inputs.items():
            if inp.optional and presence_name(name) in declared:
                raise self.fail(
                    path + ("inputs", name),
                    f"{presence_name(name)!r} names the presence of optional input {name!r} in 'unsupported'"
                    " conditions, and is also declared: rename one",
                )
        return condition_names(symbols, params, inputs)

    UNSUPPORTED_KEYS = frozenset({"when", "raises", "reason"})

    def unsupported_list(self, value: Any, path: tuple, names: set[str] | None) -> tuple[Unsupported, ...]:
        """An implementation's ``unsupported`` regions: ``[{when, raises, reason}, ...]``."""
        self.typed(value, path, list, "a list of {when, raises, reason}")
        if value and names is None:
            raise self.fail(path, "applies to an equation's implementations (a spec with symbols, inputs and an oracle)")
        return tuple(self.unsupported(body, path + (i,), names) for i, body in enumerate(value))

    def unsupported(self, value: Any, path: tuple, names: set[str] | None, extra: frozenset[str] = frozenset()) -> Unsupported:
        """One declared unsupported region: ``when`` (a condition over sizes, params and ``has_<input>``),
        ``raises`` (builtin exception names, one or a list) and ``reason``. ``names=None``: the names are
        checked later, against the spec the entry names (``--xfail-file``)."""
        body = self.mapping(value, path, set(self.UNSUPPORTED_KEYS | extra), set())
        if isinstance(body["when"], bool) or not isinstance(body["when"], str):
            raise self.fail(path + ("when",), f"expected a condition string such as 'has_mask & is_causal', got {body['when']!r}")
        when = self.expression(body["when"], path + ("when",), names)
        raises = body["raises"] if isinstance(body["raises"], list) else [body["raises"]]
        if not raises:
            raise self.fail(path + ("raises",), "expected at least one exception name")
        for j, name in enumerate(raises):
            if name not in UNSUPPORTED_EXCEPTIONS:
                raise self.fail(
                    path + ("raises", j) if isinstance(body["raises"], list) else path + ("raises",),
                    f"expected a builtin exception name from {', '.join(UNSUPPORTED_EXCEPTIONS)}, got {name!r}",
                )
        reason = self.text(body["reason"], path + ("reason",))
        return Unsupported(when, body["when"], tuple(raises), reason, self.line(path))

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

    def diagnoses(
        self, value: Any, path: tuple, params: Mapping[str, Param], scalars: set[str], equation: tuple[Oracle, set[str]]
    ) -> tuple[Diagnosis, ...]:
        """``diagnose``: alternative readings the oracle is re-evaluated as when a check fails.

        A reading changes params (``try``), the oracle's ``let`` bindings (``let``: overrides, by name)
        and/or its output expressions (``expr``: like ``oracle.expr``, for several outputs a mapping of
        some of them); ``equation`` is the oracle and the names its expressions may use.
        """
        self.typed(value, path, list, "a list of {when_failing, when, try, let, expr, say}")
        return tuple(self.diagnosis(body, path + (i,), params, scalars, equation) for i, body in enumerate(value))

    def diagnosis(
        self, body: Any, p: tuple, params: Mapping[str, Param], scalars: set[str], equation: tuple[Oracle, set[str]]
    ) -> Diagnosis:
        body = self.mapping(body, p, {"say"}, {"when_failing", "when", "try", "let", "expr"})
        if not {"try", "let", "expr"} & set(body):
            raise self.fail(p, "expected the alternative reading: 'try' (params), 'let' (bindings) and/or 'expr' (outputs)")
        check = body.get("when_failing", "oracle")
        if check not in self._DIAGNOSABLE:
            raise self.fail(p + ("when_failing",), f"expected one of {', '.join(self._DIAGNOSABLE)}, got {check!r}")
        alternative = self.typed(body.get("try", {}), p + ("try",), dict, "a mapping param name -> expression")
        if "try" in body and not alternative:
            raise self.fail(p + ("try",), "expected at least one param")
        for name, value in alternative.items():
            if name not in params:
                declared = ", ".join(params) or "none"
                raise self.fail(p + ("try", name), f"{name!r} is not a declared param (params: {declared})")
            if params[name].is_string and value not in params[name].values:
                choices = ", ".join(params[name].values)
                raise self.fail(p + ("try", name), f"expected one of the param's values ({choices}), got {value!r}")
        lets, exprs = self.reading(body, p, *equation)
        return Diagnosis(
            check=check,
            alternative={  # a string param's value as given; others an expression over symbols and params
                n: e if params[n].is_string else self.expression(_bool_text(e), p + ("try", n), scalars)
                for n, e in alternative.items()
            },
            say=self.text(body["say"], p + ("say",)),
            when=self.expression(body["when"], p + ("when",), scalars) if "when" in body else None,
            line=self.line(p),
            let=lets,
            exprs=exprs,
        )

    def reading(
        self, body: Mapping[str, Any], p: tuple, oracle: Oracle, names: set[str]
    ) -> tuple[dict[str, sympy.Basic], dict[str, sympy.Basic]]:
        """A reading's ``let`` overrides and ``expr`` replacements, parsed like the oracle's own."""
        if not {"let", "expr"} & set(body):
            return {}, {}
        key = "let" if "let" in body else "expr"
        if not oracle.exprs:
            raise self.fail(p + (key,), "needs the oracle's own 'expr' to change (this oracle is a reference function only)")
        lets: dict[str, sympy.Basic] = {}
        overrides = self.typed(body.get("let", {}), p + ("let",), dict, "a mapping name -> expression")
        bound = [n for n, _ in oracle.let]
        for name, text in overrides.items():
            if name not in bound:
                known = ", ".join(bound) or "none"
                raise self.fail(p + ("let", name), f"{name!r} is not a binding of oracle.let ({known}); use 'expr' for an output")
            before = set(bound[: bound.index(name)])
            lets[name] = self.expression(text, p + ("let", name), names | before)
        exprs: dict[str, sympy.Basic] = {}
        if "expr" in body:
            outputs = {n: Output(n, ()) for n in oracle.exprs}
            value = body["expr"]
            if isinstance(value, dict):  # several outputs: some of them
                for name in value:
                    if name not in outputs:
                        raise self.fail(p + ("expr", name), f"{name!r} is not a declared output ({', '.join(outputs)})")
                outputs = {n: o for n, o in outputs.items() if n in value}
                value = {n: value[n] for n in outputs}
            exprs = self.oracle_exprs(value, p + ("expr",), names | set(bound), outputs)
        return lets, exprs

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


def pattern_interface(patterns: Sequence[PatternCheck], body: Any, where: Where) -> dict[str, Any]:
    """An implementation's ``interface`` in a spec of pattern checks only: the calling convention its pattern kind
    declares (:attr:`conformance.patterns.PatternKind.interface`), validated by the kind; every pattern of the spec
    must be of kinds that share one."""
    kinds = {PATTERN_KINDS[p.kind] for p in patterns}
    validators = {k.interface for k in kinds}
    if None in validators or len(validators) != 1:
        names = ", ".join(sorted(k.name for k in kinds))
        raise where.error(f"the spec's pattern kinds ({names}) do not share a calling convention an implementation could declare")
    (validate,) = validators
    return validate(body, where)
