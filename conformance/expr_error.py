"""The expression language's one error type, below both the parser and the function table that raise it."""


class ExprError(ValueError):
    """Spec text that is not a valid expression; the message says what was expected."""


ExprError.__module__ = "conformance.expr"  # its public name: users import and catch it from conformance.expr
