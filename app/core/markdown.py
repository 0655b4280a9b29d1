"""Descriptions are Markdown; what reaches a page is rendered without raw HTML and sanitised, and
what must be plain text (a CVE record's description) is rendered to text without markup."""

import functools
import re
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

_ALLOWED = {
    "p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr",
}  # fmt: skip


@functools.cache
def _renderer() -> MarkdownIt:
    # commonmark without raw HTML: a reporter's <script> stays text.
    return MarkdownIt("commonmark", {"html": False})


def to_html(text: str) -> str:
    """Safe HTML for a Markdown text (links keep only http(s) and mailto)."""
    return _clean(_renderer().render(text or ""))


def _clean(html: str) -> str:
    return nh3.clean(
        html,
        tags=_ALLOWED,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


# -- plain text ---------------------------------------------------------------------------------


def to_text(text: str) -> str:
    """The words of a Markdown text without its markup: paragraphs and headings as paragraphs,
    list items behind "-" or their number, a link's text followed by its URL in brackets, code
    as it is written. HTML tags written as text (a reporter's `<script>`, `&lt;img&gt;`) are
    dropped: consumers that take a plain text for HTML find no markup in it."""
    return "\n\n".join(part.text for part in blocks(text))


@dataclass(frozen=True)
class Block:
    """One top-level block of a Markdown text (a paragraph, a list, a code block...), as plain
    text (to_text's) and as safe HTML (to_html's)."""

    text: str
    html: str


def blocks(text: str) -> list[Block]:
    """The top-level blocks of a Markdown text, each rendered alone, so that a long text can be
    cut between blocks (a CVE record's description holds 4,096 characters at most)."""
    md, env = _renderer(), {}
    root = SyntaxTreeNode(md.parse(text or "", env))
    found = []
    for node in root.children:
        plain = _plain(node)
        if plain:
            html = md.renderer.render(node.to_tokens(), md.options, env)
            found.append(Block(plain, _clean(html).strip()))
    return found


def _plain(node: SyntaxTreeNode) -> str:
    lines = strip_tags(_block(node)).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in ("paragraph", "heading"):
        return _inline(node.children[0]).strip() if node.children else ""
    if kind in ("fence", "code_block"):
        return node.content.rstrip("\n")
    if kind in ("bullet_list", "ordered_list"):
        start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else 0
        items = []
        for n, item in enumerate(node.children, start=start):
            marker = f"{n}. " if kind == "ordered_list" else "- "
            body = "\n".join(b for b in (_block(child) for child in item.children) if b)
            items.append(marker + body.replace("\n", "\n" + " " * len(marker)))
        return "\n".join(items)
    if kind == "blockquote":
        return "\n\n".join(b for b in (_block(child) for child in node.children) if b)
    return ""  # a thematic break: the blank line around it says enough


def _inline(node: SyntaxTreeNode) -> str:
    out = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind in ("link", "image"):
            words = _inline(child)
            url = str(child.attrs.get("href" if kind == "link" else "src", ""))
            shown = url.removeprefix("mailto:")
            out.append(f"{words} ({url})" if url and shown != words else words or url)
        else:  # emphasis, strong: their words
            out.append(_inline(child))
    return "".join(out)


# Every element name an HTML parser acts on, with the SVG and MathML ones that run scripts. A
# tag of any other name stays when it has no attributes (`Vec<u8>`, `<stdint.h>`): it can
# carry no script.
_ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "applet", "area", "article", "aside", "audio", "b", "base",
    "basefont", "bdi", "bdo", "bgsound", "big", "blink", "blockquote", "body", "br", "button",
    "canvas", "caption", "center", "cite", "code", "col", "colgroup", "data", "datalist", "dd",
    "del", "details", "dfn", "dialog", "dir", "div", "dl", "dt", "em", "embed", "fieldset",
    "figcaption", "figure", "font", "footer", "form", "frame", "frameset", "h1", "h2", "h3", "h4",
    "h5", "h6", "head", "header", "hgroup", "hr", "html", "i", "iframe", "image", "img", "input",
    "ins", "isindex", "kbd", "keygen", "label", "legend", "li", "link", "listing", "main", "map",
    "mark", "marquee", "math", "menu", "menuitem", "meta", "meter", "multicol", "nav", "nextid",
    "nobr", "noembed", "noframes", "noscript", "object", "ol", "optgroup", "option", "output", "p",
    "param", "picture", "plaintext", "pre", "progress", "q", "rb", "rp", "rt", "rtc", "ruby", "s",
    "samp", "script", "search", "section", "select", "slot", "small", "source", "spacer", "span",
    "strike", "strong", "style", "sub", "summary", "sup", "svg", "table", "tbody", "td",
    "template", "textarea", "tfoot", "th", "thead", "time", "title", "tr", "track", "tt", "u",
    "ul", "var", "video", "wbr", "xmp", "animate", "animatemotion", "animatetransform", "set",
    "foreignobject", "use",
})  # fmt: skip
# What an HTML tokenizer reads as a tag, a comment or a declaration; a tag's name as it reads
# it (anything up to a space, "/" or ">"), its attributes, and whether it is closed.
_TAG = re.compile(
    r"<(?:!--.*?--!?>|[!?][^>]*>|(?P<open>[!?]|/(?![A-Za-z]))"
    r"|/?(?P<name>[A-Za-z][^\s/<>]*)(?P<attributes>[\s/][^<>]*)?(?P<end>>|\Z|(?=<)))(?P<space> ?)",
    re.S,
)


def strip_tags(text: str) -> str:
    """`text` without the HTML a browser would act on, its words kept: tags of HTML elements
    and tags with attributes, comments and declarations are dropped; of a tag left open (no
    ">" before the next "<" or the end), the "<" alone, so that its words stay words. Again
    until nothing changes (`<scr<script>ipt>` does not become a tag)."""
    while True:
        stripped = _TAG.sub(_drop, text)
        if stripped == text:
            return text
        text = stripped


def _drop(match: re.Match) -> str:
    name = match["name"]
    if match["open"]:  # a comment, a declaration or "</" left open: its "<" alone
        return match[0][1:]
    if name is not None:
        if match["end"] != ">":  # left open: without its "<", nothing of it is a tag
            return match[0][1:]
        attributes = (match["attributes"] or "").replace("/", " ").strip()
        if name.lower() not in _ELEMENTS and not attributes:
            return match[0]  # harmless
    before = match.string[match.start() - 1] if match.start() else "\n"
    return "" if before in " \n" else match["space"]  # one space, not two, where a tag was
