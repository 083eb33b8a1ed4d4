"""Safe evaluation of ``metadata_condition``.

The 2016 tool handed the option to ``eval``: anyone who could write the config file could
run code as the sync user. Here the expression is parsed once, checked against a
whitelist (literals, ``image`` and ``metadata_set``, boolean, comparison and membership
operators, subscripts, public attributes, a few harmless methods) and then evaluated by
simpleeval with per-type attribute whitelists. Anything outside the whitelist is refused
when the configuration is loaded, before any image is looked at.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from typing import Any

import simpleeval

logger = logging.getLogger(__name__)


class ConditionError(ValueError):
    """The expression is not one GlanceSync agrees to evaluate."""


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


class Condition:
    """A validated ``metadata_condition``, evaluated once per master image."""

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        if not self.text:
            raise ConditionError("the expression is empty")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as error:
            raise ConditionError(f"invalid syntax: {error.msg}") from None
        for node in ast.walk(tree):
            _check_node(node)
        self._tree = tree.body

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def evaluate(self, image: Any, metadata_set: frozenset[str] | set[str]) -> bool:
        """The truth value for ``image``; a runtime failure counts as false, with a warning."""
        names: Mapping[str, Any] = {
            "image": ConditionImage(image),
            "metadata_set": set(metadata_set),
        }
        evaluator = simpleeval.EvalWithCompoundTypes(
            names=dict(names),
            functions=dict(_FUNCTIONS),
            allowed_attrs=_ALLOWED_ATTRIBUTES,
        )
        try:
            return bool(evaluator.eval(self.text, previously_parsed=self._tree))
        except Exception as error:  # noqa: BLE001 - any failure of a user expression
            logger.warning(
                "metadata_condition failed for image %s (%s: %s); it is not synchronised",
                getattr(image, "name", "?"),
                type(error).__name__,
                error,
            )
            return False
