"""The metric names a PromQL expression reads, found by tokenizing it (not by pattern-matching).

A small tokenizer for the subset of PromQL Keelson's dashboards and alerts use, Grafana's
`$variables` included: an identifier is a metric name unless it is a function or aggregation
(followed by `(`, or by its grouping), a keyword, a label name (inside `{...}` or a `by`/`without`/`on`/`ignoring`/
`group_left`/`group_right` list), or inside a range or subquery (`[...]`).
"""

from __future__ import annotations

from dataclasses import dataclass

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
LITERALS = {"inf", "nan"}
# Aggregations may put their grouping first: `sum by (service) (...)`.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "limitk", "limit_ratio",
}  # fmt: skip
OPERATORS = ("==", "!=", "=~", "!~", ">=", "<=", "=", ">", "<", "+", "-", "*", "/", "%", "^", ",", "@")
BRACKETS = "(){}[]"


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, variable, op, bracket
    text: str


def _ident_char(ch: str, first: bool) -> bool:
    return ch.isalpha() or ch in "_:" or (not first and ch.isdigit())


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch.isspace():
            i += 1
        elif ch in "\"'`":
            end = i + 1
            while expr[end] != ch:
                end += 2 if expr[end] == "\\" else 1
            tokens.append(Token("string", expr[i + 1 : end]))
            i = end + 1
        elif ch == "$":
            end = i + 1
            if expr[end] == "{":
                end = expr.index("}", end) + 1
            else:
                while end < len(expr) and _ident_char(expr[end], False):
                    end += 1
            tokens.append(Token("variable", expr[i:end]))
            i = end
        elif ch.isdigit() or (ch == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            end = i + 1
            while end < len(expr) and (expr[end].isalnum() or expr[end] == "."):
                end += 1  # numbers and durations (5m, 1h30m, 1e3)
            tokens.append(Token("number", expr[i:end]))
            i = end
        elif _ident_char(ch, True):
            end = i + 1
            while end < len(expr) and _ident_char(expr[end], False):
                end += 1
            tokens.append(Token("ident", expr[i:end]))
            i = end
        elif ch in BRACKETS:
            tokens.append(Token("bracket", ch))
            i += 1
        else:
            op = next((o for o in OPERATORS if expr.startswith(o, i)), None)
            if op is None:
                raise ValueError(f"unexpected {ch!r} at {i} in {expr!r}")
            tokens.append(Token("op", op))
            i += len(op)
    return tokens


def metric_names(expr: str) -> set[str]:
    tokens = tokenize(expr)
    names: set[str] = set()
    # What each open bracket holds: "expr" (where metric names are), or "labels"/"range" (no names).
    stack: list[str] = []
    label_list_next = False
    for index, tok in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if tok.kind == "bracket":
            if tok.text == "(":
                stack.append("labels" if label_list_next else "expr")
                label_list_next = False
            elif tok.text == "{":
                stack.append("labels")
            elif tok.text == "[":
                stack.append("range")
            else:
                stack.pop()
            continue
        inside = stack[-1] if stack else "expr"
        if tok.kind != "ident" or inside != "expr":
            continue
        if tok.text in LABEL_LISTS:
            label_list_next = following is not None and following.text == "("
        elif tok.text in KEYWORDS or tok.text.lower() in LITERALS:
            continue
        elif following is not None and following.text == "(":
            continue  # a function or an aggregation
        elif tok.text in AGGREGATIONS and following is not None and following.text in ("by", "without"):
            continue
        else:
            names.add(tok.text)
    if stack:
        raise ValueError(f"unbalanced brackets in {expr!r}")
    return names
