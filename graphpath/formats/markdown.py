r"""Markdown from model-supplied strings: one escape for every Markdown graphpath writes.

Model files carry arbitrary node, tensor, output and file names, and they reach the audit job
summary (:mod:`graphpath.formats.audit_md`), the stability table's PR comment
(:mod:`graphpath.formats.table_md`) and ``docs/stability-table.md``. :func:`md_escape` makes
any of them plain text in a GitHub-flavoured Markdown table cell or inline text:

- HTML: ``&``, ``<``, ``>`` and ``"`` become entities, so no tag, comment or attribute
  reaches the page;
- Markdown punctuation is backslash-escaped: ``\`` itself (so a model's backslash cannot
  cancel an escape), ``|`` (column break), ``` ` `` (code span), ``*`` ``_`` ``~`` (emphasis, strikethrough),
  ``[`` ``]`` ``(`` ``)`` ``!`` (links, images), ``{`` ``}``, ``#`` ``+`` ``-`` (headings and
  list markers where a string starts a line);
- CR and LF become spaces: a string never ends a table row or starts a block.

Each character is replaced on its own (no second pass), so the output of one escape is never
escaped again and :func:`md_unescape` gives the text back (newlines as spaces).

>>> md_escape("a|b <script>`x`</script>\nnext")
'a\\|b &lt;script&gt;\\`x\\`&lt;/script&gt; next'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: character → what :func:`md_escape` writes instead.
MD_ESCAPES: Final[Mapping[str, str]] = MappingProxyType({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
    **{ch: "\\" + ch for ch in "\\`*_{}[]()#+-!|~"},
    "\r": " ", "\n": " ",
})

_TABLE: Final = str.maketrans(dict(MD_ESCAPES))
_ENTITIES: Final = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}
_ESCAPED: Final = re.compile(r"\\([\\`*_{}\[\]()#+\-!|~])|&(amp|lt|gt|quot);")


def md_escape(text: object) -> str:
    r"""``str(text)`` safe in a GitHub Markdown table cell or inline text: no HTML, no Markdown
    syntax, no line break (see the module docstring for the characters).

    >>> md_escape("**v8** [x](y) #1 ~a~ _b_ {c} +d -e !f")
    '\\*\\*v8\\*\\* \\[x\\]\\(y\\) \\#1 \\~a\\~ \\_b\\_ \\{c\\} \\+d \\-e \\!f'
    >>> md_escape('a&b "c" \\ d\r\ne'), md_escape(1e-05)
    ('a&amp;b &quot;c&quot; \\\\ d  e', '1e\\-05')
    """
    return str(text).translate(_TABLE)


def md_unescape(text: str) -> str:
    r"""The text :func:`md_escape` was given (its newlines as spaces).

    >>> md_unescape(md_escape('a|b <i>`x`</i> 1e-05 \\|'))
    'a|b <i>`x`</i> 1e-05 \\|'
    """
    return _ESCAPED.sub(lambda m: m.group(1) or _ENTITIES[m.group(2)], text)
