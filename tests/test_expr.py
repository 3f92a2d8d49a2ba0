"""conformance.expr: the safe parser from spec text to SymPy.

Hostile text is refused with one clear ExprError and nothing in it runs; valid text becomes the
SymPy structure the evaluator and the symbolic prover rely on.
"""

from __future__ import annotations

import builtins
import importlib
import types
import warnings

import pytest
import sympy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.evaluate import NumpyBackend, TorchBackend, evaluate
from conformance.expr import MAX_CHARS, MAX_DEPTH, MAX_EXPONENT, MAX_INT, MAX_NODES, ExprError, F, names_in, parse
from tests.spec_helpers import shipped_expression_texts

D, H, x, y, eps = sympy.symbols("D H x y eps")
SUM, MEAN, MATMUL = F["sum"], F["mean"], F["matmul"]


def parse_error(text: str) -> str:
    """The message of the ExprError that ``parse(text)`` must raise."""
    with pytest.raises(ExprError) as info:
        parse(text)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message, "the message should be one clear line"
    return message


# -- hostile text is refused with a message that names the problem ----------------------------------
HOSTILE = [
    pytest.param("__import__('os').system('touch X')", "attribute access (column 1) cannot be called", id="import-os-system"),
    pytest.param("__import__('os')", "name '__import__' is not allowed", id="import"),
    pytest.param("().__class__.__bases__[0].__subclasses__()", "attribute access", id="subclasses-escape"),
    pytest.param("x.real", "attribute access", id="attribute"),
    pytest.param("x.__class__", "attribute access", id="dunder-attribute"),
    pytest.param("__builtins__", "must not start with '_'", id="dunder-name"),
    pytest.param("_private", "must not start with '_'", id="private-name"),
    pytest.param("x + _secret * 2", "'_secret' is not allowed", id="private-name-inside"),
    pytest.param("lambda: 0", "a lambda", id="lambda"),
    pytest.param("(lambda: 0)()", "a lambda", id="called-lambda"),
    pytest.param("[v for v in x]", "a comprehension", id="list-comprehension"),
    pytest.param("(v for v in x)", "a generator", id="generator"),
    pytest.param("{v for v in x}", "SetComp", id="set-comprehension"),
    pytest.param("{v: v for v in x}", "DictComp", id="dict-comprehension"),
    pytest.param("x[0]", "subscripting", id="subscript"),
    pytest.param("'abc'", "constant 'abc' is not allowed", id="string"),
    pytest.param("b'abc'", "is not allowed (numbers and True/False only)", id="bytes"),
    pytest.param("1j", "constant 1j is not allowed", id="complex-literal"),
    pytest.param("None", "constant None is not allowed", id="none"),
    pytest.param("9**9**9", "exponent 387420489 is too large", id="tower-of-powers"),
    pytest.param("10**400", "exponent 400 is too large", id="huge-power"),
    pytest.param("2.0**1000", "exponent 1000 is too large", id="huge-float-power"),
    pytest.param("(10**9)**40", "constant 1000000000**40 is out of range", id="power-beyond-float-range"),
    pytest.param("100**x", "constant base 100 with a variable exponent", id="large-base-variable-exponent"),
    pytest.param("123456789012345678901234567890", "is too large (at most 1000000000)", id="huge-int-literal"),
    pytest.param("1e400", "is out of range", id="float-literal-overflow"),
    pytest.param("(y := 3)", "an assignment expression", id="walrus"),
    pytest.param("f'{x}'", "JoinedStr", id="f-string"),
    pytest.param("x if y else D", "a conditional expression", id="conditional"),
    pytest.param("[x, y]", "'List'", id="list"),
    pytest.param("(x, y)", "'Tuple'", id="tuple"),
    pytest.param("x is y", "comparison Is is not allowed", id="is"),
    pytest.param("x in y", "comparison In is not allowed", id="in"),
    pytest.param("x << 2", "operator LShift is not allowed", id="shift"),
    pytest.param("x ^ y", "operator BitXor is not allowed", id="xor"),
    pytest.param("eval(x)", "function 'eval' is not allowed", id="eval"),
    pytest.param("eval('1 + 1')", "function 'eval' is not allowed", id="eval-string"),
    pytest.param("exec(x)", "function 'exec' is not allowed", id="exec"),
    pytest.param("open(x)", "function 'open' is not allowed", id="open"),
    pytest.param("getattr(x, y)", "function 'getattr' is not allowed", id="getattr"),
    pytest.param("compile(x)", "function 'compile' is not allowed", id="compile"),
    pytest.param("matmul(x, y)", "function 'matmul' is not allowed", id="internal-function"),
    pytest.param("x(1)", "function 'x' is not allowed", id="call-a-name"),
    pytest.param("sum", "is a function and must be called", id="uncalled-function"),
    pytest.param("sum(x, -1, axis=0)", "keyword 'axis' is not allowed in sum()", id="keyword-axis"),
    pytest.param("sum(x, -1, **kw)", "keyword None is not allowed", id="keyword-splat"),
    pytest.param("softmax(x, -1, keepdim=True)", "keyword 'keepdim' is not allowed in softmax()", id="keepdim-on-softmax"),
    pytest.param("sqrt(x, keepdim=True)", "sqrt() takes exactly one argument", id="keyword-on-scalar-function"),
    pytest.param("sum(x, -1, keepdim=y)", "keepdim of sum() must be True or False", id="keepdim-not-constant"),
    pytest.param("sum(x, y)", "argument 2 of sum() must be an integer constant", id="axis-not-constant"),
    pytest.param("sum(x)", "sum() takes 2 argument(s), got 1", id="arity"),
    pytest.param("*x", "not a valid expression", id="syntax-error"),
    pytest.param("x = 1", "not a valid expression", id="statement"),
    pytest.param("a" * 65, "at most 64", id="name-too-long"),
    pytest.param("x" * (MAX_CHARS + 1), f"at most {MAX_CHARS}", id="too-long-text"),
    pytest.param("+".join(["x"] * (MAX_NODES // 2)), f"(at most {MAX_NODES})", id="too-many-nodes"),
    pytest.param("(" * 200 + "x" + ")" * 200, f"nested more than {MAX_DEPTH} levels", id="deep-parentheses"),
    pytest.param("sqrt(" * 60 + "x" + ")" * 60, f"nested more than {MAX_DEPTH} levels", id="deep-calls"),
    pytest.param("-" * (MAX_DEPTH + 5) + "x", f"nested more than {MAX_DEPTH} levels", id="deep-unary-chain"),
    # constant folding that SymPy itself rejects or cannot evaluate numerically
    pytest.param("x % 0", "% cannot be applied", id="modulo-by-zero"),
    pytest.param("1/0", "undefined or complex value", id="division-by-zero"),
    pytest.param("x // 0", "undefined or complex value", id="floor-division-by-zero"),
    pytest.param("inf - inf", "undefined or complex value", id="inf-minus-inf"),
    pytest.param("sqrt(-1)", "undefined or complex value", id="imaginary"),
    pytest.param("log(0)", "undefined or complex value", id="log-zero"),
    pytest.param("-True", "- cannot be applied", id="negated-boolean"),
    pytest.param("True**2", "must be numbers or tensors", id="boolean-power"),
    pytest.param("sqrt(x < y)", "needs a number or tensor", id="function-of-comparison"),
    # strings: only einsum's first argument, bounded and checked against the einsum grammar
    pytest.param("sum('ij', 0)", "constant 'ij' is not allowed", id="string-in-another-function"),
    pytest.param("einsum(x, 'ij')", "argument 1 of einsum() must be a string constant", id="string-not-first"),
    pytest.param("einsum('ij', 'ij')", "constant 'ij' is not allowed", id="string-as-operand"),
    pytest.param("einsum('ij->', x) + 'ij'", "constant 'ij' is not allowed", id="string-outside-a-call"),
    pytest.param("einsum(x)", "argument 1 of einsum() must be a string constant", id="einsum-without-subscripts"),
    pytest.param("einsum(f'{x}', x)", "must be a string constant", id="einsum-f-string"),
    pytest.param("einsum(b'ij', x)", "must be a string constant", id="einsum-bytes"),
    pytest.param("einsum('i' * 2, x)", "must be a string constant", id="einsum-string-expression"),
    pytest.param("einsum('" + "i" * 65 + "', x)", "65 characters long (at most 64)", id="einsum-too-long"),
    pytest.param("einsum('__import__', x)", "letters, ',', '-' and '>' only", id="einsum-underscores"),
    pytest.param("einsum('ij; import os', x)", "letters, ',', '-' and '>' only", id="einsum-code"),
    pytest.param("einsum('ij, jk', x, y)", "letters, ',', '-' and '>' only", id="einsum-space"),
    pytest.param("einsum('...ij->...ji', x)", "letters, ',', '-' and '>' only", id="einsum-ellipsis"),
    pytest.param("einsum('ij->j->i', x)", "no ellipsis", id="einsum-two-arrows"),
    pytest.param("einsum('ij-ji', x)", "no ellipsis", id="einsum-dash"),
    pytest.param("einsum('ij>ji', x)", "no ellipsis", id="einsum-gt"),
    pytest.param("einsum('ij,,->', x)", "name 3 operand(s), got 1", id="einsum-empty-terms"),
    pytest.param("einsum('ij,jk->ik', x)", "name 2 operand(s), got 1", id="einsum-too-few-operands"),
    pytest.param("einsum('ij->ii', x)", "each letter once", id="einsum-repeated-output"),
    pytest.param("einsum('ij->k', x)", "only letters of the operands", id="einsum-unknown-output"),
    pytest.param("einsum('i,i,i,i,i', x, x, x, x, x)", "einsum() takes 2 to 5 arguments, got 6", id="einsum-too-many-operands"),
    pytest.param("einsum('ij', x, keepdim=True)", "keyword 'keepdim' is not allowed in einsum()", id="einsum-keyword"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_parse_rejects_hostile_expression_with_clear_message(text: str, expected: str) -> None:
    assert expected in parse_error(text)


@pytest.mark.parametrize("value", [None, 3, 1.5, b"x", ["x"]])
def test_parse_rejects_non_string_input(value: object) -> None:
    assert "expected an expression string" in parse_error(value)  # type: ignore[arg-type]


def _sentinel_attacks(sentinel: str) -> list[str]:
    return [
        f"__import__('os').system('touch {sentinel}')",
        f"__import__('pathlib').Path('{sentinel}').touch()",
        f"open('{sentinel}', 'w')",
        f"exec(\"open('{sentinel}', 'w')\")",
        f"eval(\"__import__('os').system('touch {sentinel}')\")",
        f"[open('{sentinel}', 'w') for _ in (1,)]",
        f"(lambda: open('{sentinel}', 'w'))()",
        f"().__class__.__base__.__subclasses__()[0]('{sentinel}')",
        f"f\"{{open('{sentinel}', 'w')}}\"",
        f"(_ := open('{sentinel}', 'w'))",
    ]


def test_hostile_expressions_execute_nothing(tmp_path) -> None:
    sentinel = tmp_path / "pwned"
    for text in _sentinel_attacks(str(sentinel)):
        with pytest.raises(ExprError):
            parse(text)
        assert not sentinel.exists(), f"parsing {text!r} ran code"


@pytest.fixture
def no_eval(monkeypatch):
    """Every way from text to code execution raises if reached: eval, exec, parse_expr, and sympify of a string.

    SymPy calls ``sympify`` on its own objects internally (``_sympify``), which is harmless; only a
    string argument goes through ``parse_expr`` and ``eval``.
    """

    def from_text(args) -> bool:
        """A string, or code compiled from one (not a module file that the import system executes)."""
        source = args[0] if args else None
        return isinstance(source, (str, bytes)) or (isinstance(source, types.CodeType) and source.co_filename.startswith("<"))

    def forbidden(name, original=None):
        def trap(*args, **kwargs):
            if original is not None and not from_text(args):
                return original(*args, **kwargs)
            raise AssertionError(f"{name} was called with {args[:1]!r}")

        return trap

    sympify_module = importlib.import_module("sympy.core.sympify")
    parser_module = importlib.import_module("sympy.parsing.sympy_parser")
    monkeypatch.setattr(builtins, "eval", forbidden("eval", builtins.eval))
    monkeypatch.setattr(builtins, "exec", forbidden("exec", builtins.exec))
    monkeypatch.setattr(sympy, "sympify", forbidden("sympy.sympify", sympy.sympify))
    monkeypatch.setattr(sympify_module, "sympify", forbidden("sympy.core.sympify.sympify", sympify_module.sympify))
    monkeypatch.setattr(parser_module, "parse_expr", forbidden("parse_expr"))
    monkeypatch.setattr(parser_module, "eval_expr", forbidden("eval_expr"))


def test_parse_never_calls_eval_exec_or_sympify(no_eval, tmp_path) -> None:
    for armed in (lambda: sympy.sympify("1 + 1"), lambda: eval("1 + 1"), lambda: exec("1 + 1")):  # the traps are armed
        with pytest.raises(AssertionError, match="was called"):
            armed()
    valid = shipped_expression_texts() + ["D % H == 0", "x / sqrt(mean(x**2, -1, keepdim=True) + eps)", "2**-1 + 0.5"]
    for text in valid:
        assert isinstance(parse(text), sympy.Basic)
    for text in [p.values[0] for p in HOSTILE] + _sentinel_attacks(str(tmp_path / "pwned")):
        with pytest.raises(ExprError):  # an AssertionError from the trap would escape pytest.raises
            parse(text)


# -- limits: the boundary itself is allowed, one past it is not -------------------------------------
def test_text_at_max_chars_is_accepted() -> None:
    assert parse("x" + " " * (MAX_CHARS - 1)) == x


def test_integer_literal_at_max_int_is_accepted_and_one_more_is_not() -> None:
    assert parse(str(MAX_INT)) == MAX_INT
    assert "too large" in parse_error(str(MAX_INT + 1))


def test_exponent_at_max_exponent_is_accepted_and_one_more_is_not() -> None:
    assert parse(f"x**{MAX_EXPONENT}") == x**MAX_EXPONENT
    assert parse(f"x**-{MAX_EXPONENT}") == x**-MAX_EXPONENT
    assert "too large" in parse_error(f"x**{MAX_EXPONENT + 1}")


def test_nesting_at_max_depth_is_accepted_and_one_more_is_not() -> None:
    assert parse("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH) == x
    assert "nested" in parse_error("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1))
    assert parse("-" * MAX_DEPTH + "x") == x  # an even number of minus signs
    assert "nested" in parse_error("-" * (MAX_DEPTH + 2) + "x")


TOKENS = [
    "x",
    "y",
    "D",
    "0",
    "1",
    "2",
    "-1",
    "0.5",
    "1e308",
    "inf",
    "True",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "@",
    "&",
    "|",
    "~",
    "not ",
    "==",
    "<",
    ",",
    "sum(",
    "softmax(",
    "sqrt(",
    "log(",
    "exp(",
    "where(",
    "tril(",
    "transpose(",
    "unsqueeze(",
    "keepdim=True",
    " and ",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=10).map("".join))
def test_parse_raises_only_expr_error_on_arbitrary_token_soup(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SymPy deprecation (e.g. Pow of a boolean) counts as a failure
        warnings.simplefilter("ignore", SyntaxWarning)  # Python's own warning for '1e308inf'
        try:
            result = parse(text)
        except ExprError:
            return
    assert isinstance(result, sympy.Basic)
    assert not result.has(sympy.zoo, sympy.nan, sympy.I)


# -- valid text: the expected SymPy structure ------------------------------------------------------
def test_divisibility_constraint_parses_to_eq_of_mod() -> None:
    assert parse("D % H == 0") == sympy.Eq(sympy.Mod(D, H), 0, evaluate=False)


@pytest.mark.parametrize(("sizes", "holds"), [({"D": 12, "H": 4}, True), ({"D": 12, "H": 5}, False), ({"D": 7, "H": 7}, True)])
def test_divisibility_constraint_evaluates_on_concrete_sizes(sizes: dict, holds: bool) -> None:
    constraint = parse("D % H == 0")
    assert bool(evaluate(constraint, sizes, NumpyBackend())) is holds
    assert bool(evaluate(constraint, sizes, TorchBackend(torch.float64))) is holds


def test_rmsnorm_expression_structure() -> None:
    parsed = parse("x / sqrt(mean(x**2, -1, keepdim=True) + eps)")
    assert parsed == x * (eps + MEAN(x**2, -1, sympy.true)) ** sympy.Rational(-1, 2)
    assert str(parsed) == "x/sqrt(eps + mean(x**2, -1, True))"


def test_operator_precedence_follows_python() -> None:
    assert parse("x + y * D") == x + y * D
    assert parse("-x**2") == -(x**2)
    assert parse("x - y - D") == (x - y) - D
    assert parse("2**3**2") == 2**9
    assert parse("x / y / D") == x / (y * D)


def test_matmul_is_opaque_and_keeps_argument_order() -> None:
    assert parse("x @ y") == MATMUL(x, y)
    assert parse("x @ y") != parse("y @ x")
    assert parse("x @ transpose(y)").args[1].func.__name__ == "transpose"


def test_elementwise_products_of_tensor_functions_commute() -> None:
    # '*' is elementwise (a commutative ring); a keepdim argument must not make SymPy treat a reduction as non-commutative
    assert parse("sum(x, -1) * mean(y, -1, keepdim=True)") == parse("mean(y, -1, keepdim=True) * sum(x, -1)")
    assert parse("sum(x, -1) * mean(y, -1, keepdim=True)").is_commutative


def test_reductions_record_keepdim_as_last_argument() -> None:
    assert parse("sum(x, -1)") == SUM(x, -1, sympy.false)
    assert parse("sum(x, -1, keepdim=True)") == SUM(x, -1, sympy.true)
    assert parse("sum(x, 0, keepdim=False)") == SUM(x, 0, sympy.false)


def test_boolean_operators_become_logical_functions() -> None:
    assert str(parse("x & (y < D)")) == "logical_and(x, y < D)"
    assert str(parse("x | ~y")) == "logical_or(x, logical_not(y))"
    assert str(parse("not x")) == "logical_not(x)"
    assert str(parse("x < y <= D")) == "logical_and(x < y, y <= D)"
    assert str(parse("x and y or D")) == "logical_or(logical_and(x, y), D)"


def test_constants() -> None:
    assert parse("-inf") == -sympy.oo
    assert parse("pi") == sympy.pi
    assert parse("True") is sympy.true and parse("False") is sympy.false
    assert parse("0.5") == sympy.Float(0.5)
    assert parse("-1/2") == sympy.Rational(-1, 2)


def test_names_in_lists_free_names_only() -> None:
    attention = parse("softmax(where(allowed, Q @ transpose(K) / sqrt(Dk), -inf), -1) @ V")
    assert names_in(attention) == {"allowed", "Q", "K", "Dk", "V"}
    assert names_in(parse("sum(x, -1, keepdim=True) + pi")) == {"x"}


@pytest.mark.parametrize("text", shipped_expression_texts())
def test_every_shipped_expression_parses(text: str) -> None:
    assert isinstance(parse(text), sympy.Basic)


def test_a_string_constant_is_inert_and_not_a_name() -> None:
    from sympy.core.symbol import Str

    expr = parse("einsum('ij,jk->ik', A, B)")
    assert expr.args[0] == Str("ij,jk->ik") and names_in(expr) == {"A", "B"}
    assert parse(f"einsum('{'a' * 64}', x)").args[0] == Str("a" * 64)  # at the bound
