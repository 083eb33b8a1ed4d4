"""Safe evaluation of ``metadata_condition``.

The 2016 tool handed the option to ``eval``: anyone who could write the config file could
run code as the sync user. Here the expression is parsed once, checked against a
whitelist (literals, ``image`` and ``metadata_set``, boolean, comparison and membership
operators, subscripts, public attributes, a few harmless methods) and then evaluated by
simpleeval with per-type attribute whitelists. Anything outside the whitelist is refused
when the configuration is loaded, before any image is looked at.

It is also bounded, so no expression can exhaust memory, recurse away or run long: the
text, the number of nodes and the nesting are limited when it is parsed; while it runs,
every string, list or number it builds is checked *before* it is built, and each
evaluation has a work budget. Going past a limit raises :class:`ConditionLimitError`,
which the engine turns into a configuration error before any region is touched.
"""

from __future__ import annotations

import ast
import logging
import operator
from collections.abc import Mapping
from typing import Any

import simpleeval

logger = logging.getLogger(__name__)


class ConditionError(ValueError):
    """The expression is not one GlanceSync agrees to evaluate."""


class ConditionLimitError(ConditionError):
    """Evaluating the expression went past a limit (size, number growth, work)."""


MAX_TEXT = 4000  # characters of the expression, continuation lines joined
MAX_NODES = 400  # syntax nodes: a condition is a short expression, not a program
MAX_DEPTH = 40  # nesting of the syntax tree
MAX_LENGTH = 100_000  # items of a string, list or set the expression builds
MAX_INT_BITS = 4096  # bits of an integer the expression builds by arithmetic
MAX_WORK = 1_000_000  # per evaluation: one unit per node, plus the size of each value


class ConditionImage:
    """The read-only view of an image that a condition sees."""

    __slots__ = (
        "checksum",
        "id",
        "is_public",
        "name",
        "owner",
        "region",
        "size",
        "status",
        "user_properties",
    )

    def __init__(self, image: Any) -> None:
        for attribute in self.__slots__:
            setattr(self, attribute, getattr(image, attribute))


IMAGE_ATTRIBUTES = frozenset(ConditionImage.__slots__)
_STRING_METHODS = frozenset(
    {"startswith", "endswith", "lower", "upper", "strip", "split", "isdigit", "replace"}
)
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})
_SET_METHODS = frozenset(
    {"intersection", "union", "difference", "issubset", "issuperset", "isdisjoint"}
)
_ALLOWED_ATTRIBUTES: dict[type, frozenset[str]] = {
    ConditionImage: IMAGE_ATTRIBUTES,
    str: _STRING_METHODS,
    dict: _DICT_METHODS,
    set: _SET_METHODS,
    frozenset: _SET_METHODS,
}
_ANY_ATTRIBUTE = IMAGE_ATTRIBUTES | _STRING_METHODS | _DICT_METHODS | _SET_METHODS
_METHODS = _STRING_METHODS | _DICT_METHODS | _SET_METHODS
_FUNCTIONS = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "set": set,
}
_NAMES = frozenset({"image", "metadata_set"})

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.BitAnd,
    ast.BitOr,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
)


def _check_node(node: ast.AST) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise ConditionError(f"{type(node).__name__} is not allowed")
    if isinstance(node, ast.Name) and node.id not in _NAMES and node.id not in _FUNCTIONS:
        raise ConditionError(f"unknown name {node.id!r} (use image or metadata_set)")
    if isinstance(node, ast.Attribute) and (
        node.attr.startswith("_") or node.attr not in _ANY_ATTRIBUTE
    ):
        raise ConditionError(f"attribute {node.attr!r} is not allowed")
    if isinstance(node, ast.Call):
        _check_call(node)


def _check_call(node: ast.Call) -> None:
    if node.keywords:
        raise ConditionError("keyword arguments are not allowed")
    func = node.func
    if isinstance(func, ast.Name) and func.id in _FUNCTIONS:
        return
    if isinstance(func, ast.Attribute) and func.attr in _METHODS:
        return
    raise ConditionError(f"call of {ast.unparse(func)!r} is not allowed")


def _parse(text: str) -> ast.Expression:
    if len(text) > MAX_TEXT:
        raise ConditionError(f"the expression is longer than {MAX_TEXT} characters")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ConditionError(f"invalid syntax: {error.msg}") from None
    except (ValueError, MemoryError, RecursionError):
        raise ConditionError("the expression is nested too deeply or cannot be read") from None


def _check_tree(tree: ast.Expression) -> None:
    """Whitelisted nodes only, few of them, not nested deeply (walked without recursion)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConditionError(f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ConditionError(f"the expression is nested more than {MAX_DEPTH} levels")
        _check_node(node)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


# --------------------------------------------------------------------------- bounded run


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 64
    return 0


def _too_long(length: int) -> None:
    if length > MAX_LENGTH:
        raise ConditionLimitError(f"it would build a value of {length} items (limit {MAX_LENGTH})")


def _check_int(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise ConditionLimitError(f"it would build a number of {bits} bits (limit {MAX_INT_BITS})")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _too_long(len(left) + len(right))
    return left + right


def _mult(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            _too_long(len(sequence) * max(count, 0))
    if isinstance(left, int) and isinstance(right, int):
        _check_int(left.bit_length() + right.bit_length())
    return left * right


def _mod(left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        raise ConditionLimitError("% is allowed between numbers only (no string formatting)")
    return left % right


_OPERATORS: dict[type, Any] = {
    ast.Add: _add,
    ast.Sub: operator.sub,
    ast.Mult: _mult,
    ast.Div: operator.truediv,
    ast.Mod: _mod,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _check_replace(text: str, args: list[Any]) -> None:
    """``str.replace`` can grow a string by far: bound its result before it is built."""
    if len(args) < 2 or not all(isinstance(arg, str) for arg in args[:2]):
        return
    old, new = args[0], args[1]
    count = len(text) + 1 if not old else len(text) // len(old)
    _too_long(len(text) + count * len(new))


class _BoundedEvaluator(simpleeval.EvalWithCompoundTypes):
    """simpleeval with operators that check sizes first, and a work budget."""

    def __init__(self, names: dict[str, Any]) -> None:
        super().__init__(
            operators=dict(_OPERATORS),
            functions=dict(_FUNCTIONS),
            names=names,
            allowed_attrs=_ALLOWED_ATTRIBUTES,
        )
        self.work = 0

    def _eval(self, node: ast.AST) -> Any:
        result = super()._eval(node)
        self.work += 1 + _size(result)
        if self.work > MAX_WORK:
            raise ConditionLimitError(f"it needs more than {MAX_WORK} units of work per image")
        return result

    def _eval_call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "replace":
            target = self._eval(func.value)
            args = [self._eval(arg) for arg in node.args]
            if isinstance(target, str):
                _check_replace(target, args)
            method = self._eval(func)
            return method(*args)
        return super()._eval_call(node)


def _name_of(image: Any) -> str:
    return str(getattr(image, "name", "?"))[:80]


class Condition:
    """A validated ``metadata_condition``, evaluated once per master image."""

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        if not self.text:
            raise ConditionError("the expression is empty")
        tree = _parse(self.text)
        _check_tree(tree)
        self._tree = tree.body

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def evaluate(self, image: Any, metadata_set: frozenset[str] | set[str]) -> bool:
        """The truth value for ``image``; a runtime failure counts as false, with a warning."""
        names: Mapping[str, Any] = {
            "image": ConditionImage(image),
            "metadata_set": set(metadata_set),
        }
        evaluator = _BoundedEvaluator(dict(names))
        try:
            return bool(evaluator.eval(self.text, previously_parsed=self._tree))
        except ConditionLimitError as error:
            raise ConditionLimitError(f"{error}, for image {_name_of(image)}") from None
        except MemoryError:
            raise ConditionLimitError(
                f"it ran out of memory, for image {_name_of(image)}"
            ) from None
        except RecursionError:
            raise ConditionLimitError(
                f"it recursed too deeply, for image {_name_of(image)}"
            ) from None
        except Exception as error:  # noqa: BLE001 - any failure of a user expression
            logger.warning(
                "metadata_condition failed for image %s (%s: %s); it is not synchronised",
                getattr(image, "name", "?"),
                type(error).__name__,
                error,
            )
            return False
