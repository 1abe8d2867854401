"""Jinja2 for component templates, sandboxed and bounded.

A definition's templates are written by a platform team and rendered inside the operator with
parameters product teams choose, so neither may reach the operator's process or stall it:

- `ImmutableSandboxedEnvironment` (no attribute access to internals, no mutation of what is
  passed in) with `StrictUndefined` (a misspelt parameter is an error, not an empty string), on
  jinja2 >= 3.1.6 (the sandbox escapes fixed up to CVE-2025-27516);
- an allow-list of filters, none of which reaches `str.format`, each wrapped to check the budget;
- a budget per render: a deadline and an output cap. Jinja compiles to Python that no thread can
  interrupt, so the checks are put where work can grow: every loop's iterator (rewritten in the
  template's syntax tree), every `~` concatenation (rewritten too), every call and filter, and
  the `+`, `*` and `**` operators (intercepted by the sandbox). A template that exceeds either is
  refused with a one-line error, never left running;
- YAML read without aliases (a "billion laughs" document would expand past any cap after the
  check) and with the safe loader only.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import yaml
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_SECONDS = 1.0
MAX_OUTPUT = 256 * 1024  # characters of YAML per template
MAX_VALUE = 64 * 1024  # characters (or items) of any one intermediate value
MAX_ITERATIONS = 100_000  # loop steps per render
MAX_INDENT = 64

SAFE_FILTERS = (
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
)


class TemplateError(ValueError):
    """A template that does not compile, fails to render, or exceeds its budget; one line."""


@dataclass
class _Budget:
    deadline: float
    iterations: int = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(f"took longer than {RENDER_SECONDS:g}s to render")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.budget = _Budget(deadline=float("inf"))
        self.filters = {name: self._checked(self.filters[name]) for name in SAFE_FILTERS}
        self.filters["indent"] = self._indent
        self.filters["b64encode"] = self._checked(lambda s: base64.b64encode(str(s).encode()).decode())
        self.filters["quote"] = self._checked(lambda s: yaml.safe_dump(str(s), default_style='"').strip())
        self.globals = {"range": self._range, "dict": dict, "namespace": self.globals["namespace"]}
        self.globals["_keelson_iter"] = self._iter
        self.globals["_keelson_concat"] = self._concat

    # -- the budget ---------------------------------------------------------------------------------

    def _bounded(self, value: Any) -> Any:
        self.budget.check()
        if _size(value) > MAX_VALUE:
            raise TemplateError(f"a value grew past {MAX_VALUE} characters or items")
        return value

    def _checked(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            for arg in args:
                self._bounded(arg)
            return self._bounded(func(*args, **kwargs))

        # Jinja passes the environment or context to filters marked so; keep the marks.
        for mark in ("jinja_pass_arg",):
            if hasattr(func, mark):
                setattr(checked, mark, getattr(func, mark))
        return checked

    def _indent(self, value: Any, width: int = 4, first: bool = False) -> str:
        if not isinstance(width, int) or not 0 <= width <= MAX_INDENT:
            raise TemplateError(f"indent: width must be 0 to {MAX_INDENT}")
        lines = str(value).split("\n")
        pad = " " * width
        out = "\n".join((pad + line if line and (i or first) else line) for i, line in enumerate(lines))
        return str(self._bounded(out))

    def _range(self, *args: int) -> Iterator[int]:
        return self._iter(range(*args))

    def _iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        if isinstance(iterable, jinja2.Undefined):
            iter(iterable)  # raises the StrictUndefined error that names the variable
        for item in iterable:
            self.budget.iterations += 1
            if self.budget.iterations > MAX_ITERATIONS:
                raise TemplateError(f"more than {MAX_ITERATIONS} loop steps")
            self.budget.check()
            yield item

    def _concat(self, *parts: Any) -> str:
        return str(self._bounded("".join(str(p) for p in parts)))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # str.format is sandboxed by jinja2, but it is where the sandbox's escapes were: none here.
        return attr not in ("format", "format_map") and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # no sandboxed str.format either: getattr then asks is_safe_attribute, which refuses

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator in ("*", "**"):
            for number, other in ((left, right), (right, left)):
                if isinstance(number, int) and _size(other) * max(number, 0) > MAX_VALUE:
                    raise TemplateError(f"a value grew past {MAX_VALUE} characters or items")
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise TemplateError("an exponent above 64")
        return self._bounded(super().call_binop(context, operator, left, right))

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.check()
        return self._bounded(super().call(__context, __obj, *args, **kwargs))


def _rewrite(tree: nodes.Template) -> nodes.Template:
    """Every loop iterates through `_keelson_iter`, every `~` goes through `_keelson_concat`."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name("_keelson_iter", "load"), [loop.iter], [], None, None)
    for concat in list(tree.find_all(nodes.Concat)):
        call = nodes.Call(nodes.Name("_keelson_concat", "load"), list(concat.nodes), [], None, None)
        concat.nodes = [call]
    return tree


def _syntax_error(exc: jinja2.TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"line {exc.lineno}: {exc.message}")


class Renderer:
    """Compiles and renders one definition's templates (and expressions), each under a budget."""

    def __init__(self) -> None:
        self.env = _Env()
        self._compiled: dict[str, jinja2.Template] = {}

    def compile(self, source: str) -> jinja2.Template:
        cached = self._compiled.get(source)
        if cached is not None:
            return cached
        try:
            tree = _rewrite(self.env.parse(source))
            code = self.env.compile(tree)
        except jinja2.TemplateSyntaxError as exc:
            raise _syntax_error(exc) from None
        template = self.env.template_class.from_code(self.env, code, self.env.make_globals(None), None)
        self._compiled[source] = template
        return template

    def render(self, source: str, variables: Mapping[str, Any]) -> str:
        template = self.compile(source)
        self.env.budget = _Budget(deadline=time.monotonic() + RENDER_SECONDS)
        out: list[str] = []
        size = 0
        try:
            for chunk in template.generate(**variables):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"output larger than {MAX_OUTPUT} characters")
                out.append(chunk)
        except TemplateError:
            raise
        except jinja2.UndefinedError as exc:
            raise TemplateError(str(exc.message)) from None
        except jinja2.TemplateSyntaxError as exc:
            raise _syntax_error(exc) from None
        except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None
        return "".join(out)

    def expression(self, source: str) -> Callable[[Mapping[str, Any]], Any]:
        """A readiness expression, compiled once; calling it evaluates under a budget."""
        try:
            compiled = self.env.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise _syntax_error(exc) from None

        def evaluate(variables: Mapping[str, Any]) -> Any:
            self.env.budget = _Budget(deadline=time.monotonic() + RENDER_SECONDS)
            try:
                return compiled(**variables)
            except TemplateError:
                raise
            except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
                raise TemplateError(f"{type(exc).__name__}: {exc}") from None

        return evaluate


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise TemplateError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed")
        return super().compose_node(parent, index)


def load_objects(text: str) -> list[Any]:
    """The YAML documents of a rendered template; empty documents are skipped."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_NoAliasLoader) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise TemplateError(f"{where}not YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"not YAML: {exc}") from None
