"""Templates and conditions in a bounded Jinja2 sandbox.

Jinja2's immutable sandbox keeps templates away from Python internals, but not from work: `'a' * 1000000000`
or a string doubled forty times in a loop takes the server's memory, nested loops its CPU. `TemplateSandbox`
bounds every way a template can build a value or spend time:

- **size**: operators (`*`, `+`, `%`, `**`, `//`), `~`, filters, method calls, `str.format`, slices and the
  text of blocks and macros are estimated *before* they run, from their operands, and refused when the value
  would exceed `max_chars` (characters of a string, items of a sequence, digits of a number); the values a
  render builds together may not exceed `20 × max_chars`, and neither may its output exceed `max_chars`;
- **steps**: template lines executed (loop iterations) at most `max_steps`;
- **time**: at most `timeout_s` seconds, checked at every step and call.

Nothing is folded at compile time (the optimizer is off), so saving a template never evaluates it. A template
over a limit raises `TemplateLimitExceeded`, which names the limit and its setting.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

TEMPLATE_FILE = "<template>"
"""The file name Jinja2 gives the code of templates built from strings: the frames the step counter
watches."""
WORK_FACTOR = 20
"""All the values one render builds may add up to this many times `max_chars`."""


@dataclass(frozen=True)
class Limits:
    max_chars: int = 100_000
    max_steps: int = 1_000_000
    timeout_s: float = 2.0

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            max_chars=settings.workflow_template_max_chars,
            max_steps=settings.workflow_template_max_steps,
            timeout_s=settings.workflow_template_timeout_s,
        )


class TemplateLimitExceeded(SecurityError):
    """A template asked for more than its limits allow."""


class _Budget:
    """What one render has spent: the values it built, its steps, and its deadline."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.work = 0
        self.steps = 0
        self.deadline = time.monotonic() + limits.timeout_s

    def check(self, size: int, what: str) -> None:
        if size > self.limits.max_chars:
            raise TemplateLimitExceeded(
                f"{what} would be {size:,} characters or items; the limit is {self.limits.max_chars:,} "
                "(ALP_WORKFLOW_TEMPLATE_MAX_CHARS)."
            )

    def spend(self, size: int) -> None:
        self.work += size
        if self.work > WORK_FACTOR * self.limits.max_chars:
            raise TemplateLimitExceeded(
                f"the template built more than {WORK_FACTOR * self.limits.max_chars:,} characters in all "
                f"({WORK_FACTOR} × ALP_WORKFLOW_TEMPLATE_MAX_CHARS)."
            )

    def tick(self, step: bool) -> None:
        if step:
            self.steps += 1
            if self.steps > self.limits.max_steps:
                raise TemplateLimitExceeded(
                    f"the template ran more than {self.limits.max_steps:,} steps "
                    "(ALP_WORKFLOW_TEMPLATE_MAX_STEPS)."
                )
        if time.monotonic() > self.deadline:
            raise TemplateLimitExceeded(
                f"the template ran longer than {self.limits.timeout_s:g} s (ALP_WORKFLOW_TEMPLATE_TIMEOUT_S)."
            )


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


class _NotRendering(TemplateLimitExceeded):
    """A measured operation outside a render: Jinja2 folding constants while it compiles. Raising makes it
    leave the operation for the render (`Impossible`), where the limits apply."""


def _current() -> _Budget:
    budget = _budget.get()
    if budget is None:
        raise _NotRendering("template operations run only inside TemplateSandbox.render/evaluate")
    return budget


def _check(estimate: int, what: str) -> None:
    """Refuse, before it runs, an operation whose result would be over the size limit."""
    _current().check(estimate, what)


def _charge(built: int, what: str) -> None:
    """Count a value the render built (and refuse it if it is over the size limit)."""
    budget = _current()
    budget.check(built, what)
    budget.spend(built)


# -- sizes ---------------------------------------------------------------------------------------------------


def size(value: Any) -> int:
    """Characters of a string, items of a container, decimal digits of an integer; 1 for anything else."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return max(1, int(abs(value).bit_length() * 0.30103) + 1)
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        return len(value)
    return 1  # a range too: it holds no items


def text_size(value: Any, limit: int) -> int:
    """An upper estimate of len(str(value)): containers count their items' text; stops counting past
    `limit`."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, Namespace):
        value = value._Namespace__attrs
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        total = 2
        for item in value:
            total += text_size(item, limit) + 4
            if total > limit:
                break
        return total
    if isinstance(value, float):
        return 24
    if isinstance(value, int):
        return size(value) + 1
    return 64


_PRINTF_NUMBER = re.compile(r"%[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _printf_size(template: str, args: Any, limit: int) -> int:
    """An upper estimate of `template % args`: the template, its widths and precisions, and the arguments."""
    values = args if isinstance(args, tuple) else (args,)
    total = len(template) + sum(text_size(v, limit) for v in values) + 400 * template.count("%")
    for width, precision in _PRINTF_NUMBER.findall(template):
        for number in (width, precision):
            total += int(number) if number.isdigit() else 0
    if "*" in template:
        total += sum(abs(v) for v in values if isinstance(v, int))
    return total


def _format_size(template: str, args: tuple, kwargs: dict, limit: int) -> int:
    """An upper estimate of `template.format(...)`: every field may be the largest argument or width."""
    fields = template.count("{")
    largest = max([text_size(v, limit) for v in (*args, *kwargs.values())] + [0])
    widths = [int(n) for n in re.findall(r"\d+", template)]
    numbers = [abs(v) for v in (*args, *kwargs.values()) if isinstance(v, int) and not isinstance(v, bool)]
    return len(template) + fields * (largest + max(widths + numbers + [0]) + 400)


def _ints(args: Iterable[Any]) -> int:
    return max([abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool)] + [0])


# -- estimates of what a call builds ------------------------------------------------------------------------


def _estimate_replace(s: Any, old: Any = "", new: Any = "", count: Any = -1, *_: Any) -> int:
    if not isinstance(s, str) or not isinstance(old, str) or not isinstance(new, str):
        return size(s)
    times = len(s) + 1 if old == "" else s.count(old)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(s) + times * max(0, len(new) - len(old))


def _estimate_join(separator: Any, items: list, limit: int) -> int:
    return sum(text_size(i, limit) for i in items) + text_size(separator, limit) * max(0, len(items) - 1)


def _estimate_indent(s: Any, width: Any = 4, first: Any = False, blank: Any = False, *_: Any) -> int:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 4
    return size(s) + (str(s).count("\n") + 1) * pad


def _estimate_wordwrap(
    s: Any, width: Any = 79, break_long: Any = True, wrapstring: Any = None, *_: Any
) -> int:
    return size(s) * (1 + (len(wrapstring) if isinstance(wrapstring, str) else 1))


def _estimate_urlize(s: Any, *args: Any, **kwargs: Any) -> int:
    extra = sum(len(v) for v in (*args, *kwargs.values()) if isinstance(v, str))
    return size(s) * (4 + extra) + 100


_STRING_FILTERS = {"string", "tojson", "pprint", "xmlattr", "urlencode", "escape", "e", "forceescape"}
"""Filters that write a value as text, escaped: up to 6 characters per character (`\\u00e9`, `&#34;`)."""


def _filter_estimate(name: str, value: Any, args: tuple, kwargs: dict, limit: int) -> int:
    if name == "center":
        return size(value) + _ints((*args, *kwargs.values()))
    if name == "indent":
        return _estimate_indent(value, *args, **kwargs)
    if name == "wordwrap":
        return _estimate_wordwrap(value, *args, **{k: v for k, v in kwargs.items() if k == "wrapstring"})
    if name == "replace":
        return _estimate_replace(value, *args, **kwargs)
    if name == "format":
        return _printf_size(str(value), tuple(args) or tuple(kwargs.values()), limit)
    if name == "urlize":
        return _estimate_urlize(value, *args, **kwargs)
    if name in _STRING_FILTERS:
        return 6 * text_size(value, limit)
    if name in ("batch", "slice"):  # padding: up to `linecount` fill values, `slices` lists
        return size(value) + _ints((*args, *kwargs.values()))
    return text_size(value, limit) + sum(text_size(a, limit) for a in (*args, *kwargs.values()))


_PADDING_METHODS = {"center", "ljust", "rjust", "zfill"}


def _method_estimate(method: Any, args: tuple, kwargs: dict, limit: int) -> int | None:
    """The size a method of a str builds; None for callables that are not str methods."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return None
    if name in _PADDING_METHODS:
        return len(owner) + _ints(args)
    if name == "expandtabs":
        return len(owner) + owner.count("\t") * (_ints((*args, *kwargs.values())) or 8)
    if name == "replace":
        return _estimate_replace(owner, *args, **kwargs)
    if name == "translate":
        table = args[0] if args else {}
        widest = max([text_size(v, limit) for v in table.values()] + [1]) if isinstance(table, dict) else 1
        return len(owner) * widest
    return 2 * len(owner) + sum(text_size(a, limit) for a in (*args, *kwargs.values()))


# -- the environment ----------------------------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Compiles `~` and slices to calls on the environment, which measure them (Jinja2 compiles them
    inline)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            return super().visit_Getitem(node, frame)
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")


def _tracer(budget: _Budget) -> Callable:
    """A trace function: every call and every line of template code counts against the budget."""

    def line(frame, event, arg):
        if event == "line":
            budget.tick(step=True)
        return line

    def call(frame, event, arg):
        budget.tick(step=False)
        return line if frame.f_code.co_filename == TEMPLATE_FILE else None

    return call


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the limits of `Limits` on size, steps and time."""

    intercepted_binops = frozenset({"*", "+", "%", "**", "//"})
    code_generator_class = _CodeGenerator

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(
            undefined=StrictUndefined, autoescape=False, optimized=False, finalize=self._finalize
        )
        self.limits = limits or Limits()
        for name in ("lipsum", "cycler", "joiner"):  # text generators a workflow has no use for
            self.globals.pop(name, None)
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}
        self.concat = self._concat
        self._compiled = lru_cache(maxsize=256)(self.from_string)

    # -- rendering -------------------------------------------------------------------------------------------

    def render(self, template: str, context: dict[str, Any]) -> str:
        """The template's text; raises TemplateLimitExceeded past a limit (and Jinja2's errors)."""
        compiled = self._compiled(template)
        return self._bounded(lambda: self._collect(compiled.generate(**context)))

    def evaluate(self, expression: str, context: dict[str, Any]) -> bool:
        """A condition's truth value: a sandboxed Jinja2 expression (never Python's eval)."""
        compiled = self.compile_expression(expression, undefined_to_none=False)
        return self._bounded(lambda: bool(compiled(**context)))

    def _bounded(self, work: Callable[[], Any]) -> Any:
        budget = _Budget(self.limits)
        token = _budget.set(budget)
        previous = sys.gettrace()
        sys.settrace(_tracer(budget))
        try:
            return work()
        finally:
            sys.settrace(previous)
            _budget.reset(token)

    def _collect(self, pieces: Iterable[str]) -> str:
        out: list[str] = []
        length = 0
        for piece in pieces:
            length += len(piece)
            if length > self.limits.max_chars:
                raise TemplateLimitExceeded(
                    f"the output would be longer than {self.limits.max_chars:,} characters "
                    "(ALP_WORKFLOW_TEMPLATE_MAX_CHARS)."
                )
            out.append(piece)
        return "".join(out)

    # -- the hooks compiled templates call -------------------------------------------------------------------

    def _finalize(self, value: Any) -> Any:
        _check(
            text_size(value, self.limits.max_chars), "an output value"
        )  # counted where the output is joined
        return "" if value is None else value

    def _concat(self, pieces: Iterable[str]) -> str:
        pieces = list(pieces)
        _check(sum(len(p) for p in pieces), "the text of a block or macro")
        return self._built("".join(pieces), "the text of a block or macro")

    def join_values(self, values: tuple) -> str:
        _check(sum(text_size(v, self.limits.max_chars) for v in values), "a `~` concatenation")
        return self._built("".join(str(v) for v in values), "a `~` concatenation")

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, slice):
            _check(size(obj), "a slice")
            return self._built(obj[argument], "a slice")
        return super().getitem(obj, argument)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        what = f"the result of `{operator}`"
        _check(self._binop_estimate(operator, left, right), what)
        return self._built(super().call_binop(context, operator, left, right), what)

    @staticmethod
    def _built(value: Any, what: str) -> Any:
        _charge(size(value), what)
        return value

    def _binop_estimate(self, operator: str, left: Any, right: Any) -> int:
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                return size(left) + size(right)
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            return size(sequence) * max(0, times) if isinstance(times, int) else size(left) + size(right)
        if operator == "+":
            return size(left) + size(right)
        if operator == "%" and isinstance(left, str):
            return _printf_size(left, right, self.limits.max_chars)
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right > 0
        ):
            return int(abs(left).bit_length() * 0.30103 * right) + 1
        return size(left) + size(right)

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limit = __self.limits.max_chars
        what = f"the result of `{getattr(__obj, '__name__', 'a call')}`"
        if getattr(__obj, "__name__", "") == "join" and isinstance(getattr(__obj, "__self__", None), str):
            args = (list(args[0]),) if args else ()
            _check(_estimate_join(__obj.__self__, args[0] if args else [], limit), what)
        else:
            estimate = _method_estimate(
                __obj, args, kwargs, limit
            )  # None: not a str method; its result is counted
            if estimate is not None:
                _check(estimate, what)
        return __self._built(super().call(__context, __obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        @wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            mapping = (
                args[0] if value.__name__ == "format_map" and args and isinstance(args[0], dict) else kwargs
            )
            _check(_format_size(template, args, mapping, self.limits.max_chars), "the result of `format`")
            return self._built(wrapped(*args, **kwargs), "the result of `format`")

        return bounded

    def _bounded_filter(self, name: str, function: Callable) -> Callable:
        limit = self.limits.max_chars
        passes = getattr(function, "jinja_pass_arg", None)

        @wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            value, rest = (args[1], args[2:]) if passes is not None else (args[0], args[1:])
            what = f"the result of `|{name}`"
            if name in ("join", "sum"):  # measured on the items, which are then passed on as a list
                value = list(value)
                args = (args[0], value, *rest) if passes is not None else (value, *rest)
                separator = (rest[0] if rest else kwargs.get("d", "")) if name == "join" else ""
                _check(_estimate_join(separator, value, limit), what)
            else:
                _check(_filter_estimate(name, value, rest, kwargs, limit), what)
            return self._built(function(*args, **kwargs), what)

        return bounded


@lru_cache(maxsize=8)
def default_sandbox() -> TemplateSandbox:
    """A sandbox with the default limits (for parsing and checking templates when a graph is saved)."""
    return TemplateSandbox()
