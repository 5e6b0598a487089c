#!/usr/bin/env python3
"""Write plots/template/offline.html: a DVC plots HTML template that works without network.

DVC's default page (dvc_render.html.PAGE_HTML) has a ``{scripts}`` placeholder that DVC
fills with the vega renderer's ``<script src="https://cdn.jsdelivr.net/npm/...">`` tags.
This script takes that same page and puts inline ``<script>`` blocks holding vega,
vega-lite and vega-embed where ``{scripts}`` was.  The ``{scripts}`` placeholder is
dropped on purpose: if it stayed, DVC would insert the CDN tags again.  ``{refresh_tag}``
and ``{plot_divs}`` are kept. A style puts image plots side by side (IMAGE_PLOT_STYLE).

Usage (the three files come from the npm packages' ``build/`` folders):

    python tools/make_offline_template.py VEGA.min.js VEGA_LITE.min.js VEGA_EMBED.min.js \
        [-o plots/template/offline.html]

Each file's ``../package.json`` (name, version, licence) and ``../LICENSE`` are read when
present, so pass the files from inside the extracted ``npm pack`` tarballs.  Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "plots" / "template" / "offline.html"

# Same as dvc_render.html.PAGE_HTML (dvc-render 1.0.2); used only when dvc_render
# cannot be imported.
FALLBACK_PAGE_HTML = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    {scripts}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""

# dvc-render puts each image plot in a block <div>: one full-width row per PNG, even for the
# five small confusion matrices. As inline blocks they sit side by side, as the charts do.
IMAGE_PLOT_STYLE = """    <style>
        body > div[id$="_png"], body > div[id$="_jpg"], body > div[id$="_jpeg"],
        body > div[id$="_gif"], body > div[id$="_svg"] {
            display: inline-block;
            vertical-align: top;
        }
    </style>
"""
SCRIPTS_PLACEHOLDER = "{scripts}"
# Placeholders DVC replaces by plain str.replace in the whole page, JS included.
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")
EXPECTED_PACKAGES = ("vega", "vega-lite", "vega-embed")

_CDN_SCRIPT_TAG = re.compile(
    r"[ \t]*<script\b[^>]*\bsrc\s*=\s*[\"']?https?://[^>]*>\s*</script\s*>[ \t]*\n?",
    re.IGNORECASE,
)
_SOURCE_MAP = re.compile(r"^\s*//[#@]\s*sourceMappingURL=.*$", re.MULTILINE)
_CLOSE_SCRIPT = re.compile(r"</(script)", re.IGNORECASE)
_COMMENT_OPEN = "<!--"


def default_page_html() -> str:
    """DVC's default page template, from dvc_render when it is installed."""
    try:
        from dvc_render.html import PAGE_HTML
    except ImportError:
        return FALLBACK_PAGE_HTML
    return PAGE_HTML


def escape_js_for_script_element(js: str) -> str:
    """Make ``js`` safe to put between ``<script>`` and ``</script>``.

    ``</script`` would end the element early and ``<!--`` can switch the HTML parser
    into its "script data escaped" states.  In minified bundles both can only occur
    inside string, template or regex literals, where ``<\\/`` and ``\\x3C`` mean the
    same characters.
    """
    js = _CLOSE_SCRIPT.sub(r"<\\/\1", js)
    return js.replace(_COMMENT_OPEN, "\\x3C!--")


class Package:
    def __init__(self, js_path: Path, expected_name: str):
        self.js_path = js_path
        self.name = expected_name
        self.version = "unknown"
        self.license = "unknown"
        self.license_text = ""
        package_json = js_path.resolve().parent.parent / "package.json"
        if package_json.is_file():
            meta = json.loads(package_json.read_text(encoding="utf8"))
            if meta.get("name") != expected_name:
                raise SystemExit(
                    f"{js_path}: package.json names {meta.get('name')!r}, "
                    f"expected {expected_name!r} (argument order: vega, vega-lite, vega-embed)"
                )
            self.version = str(meta.get("version", "unknown"))
            self.license = str(meta.get("license", "unknown"))
            license_file = package_json.parent / "LICENSE"
            if license_file.is_file():
                self.license_text = license_file.read_text(encoding="utf8").strip()
        else:
            print(
                f"warning: no package.json beside {js_path}; version and licence unknown",
                file=sys.stderr,
            )

    def inline_script(self) -> str:
        js = self.js_path.read_text(encoding="utf8")
        js = _SOURCE_MAP.sub("", js).rstrip()  # the .map files are not shipped
        for placeholder in DVC_PLACEHOLDERS:
            if placeholder in js:
                raise SystemExit(
                    f"{self.js_path}: contains {placeholder!r}, which DVC would replace"
                )
        js = escape_js_for_script_element(js)
        return f"<script>/* {self.name} {self.version} */\n{js}\n</script>"


def _comment_safe(text: str) -> str:
    # An HTML comment may not contain "-->" nor "--!>"; keep any "--" out.
    return text.replace("--", "- -")


def build_template(packages: list[Package], page_html: str) -> str:
    if SCRIPTS_PLACEHOLDER not in page_html or "{plot_divs}" not in page_html:
        raise SystemExit("base page lacks the {scripts} or {plot_divs} placeholder")
    # A base page with hard-coded CDN tags: drop them, the inline blocks replace them.
    page_html = _CDN_SCRIPT_TAG.sub("", page_html)

    if "</head>" not in page_html:
        raise SystemExit("base page lacks </head>")
    page_html = page_html.replace("</head>", IMAGE_PLOT_STYLE + "</head>", 1)

    inline = "\n".join(p.inline_script() for p in packages)
    page_html = page_html.replace(SCRIPTS_PLACEHOLDER, inline, 1)
    if SCRIPTS_PLACEHOLDER in page_html:
        raise SystemExit("base page has more than one {scripts} placeholder")

    listing = ", ".join(f"{p.name} {p.version} ({p.license})" for p in packages)
    header = _comment_safe(
        "DVC plots HTML template for offline use: vega, vega-lite and vega-embed are "
        f"inlined, nothing is loaded from the network. Inlined: {listing}; "
        "copyright University of Washington Interactive Data Lab, licence texts at the "
        "end of this file. Generated by tools/make_offline_template.py; do not edit by "
        "hand (see plots/template/README.md)."
    )
    lines = page_html.split("\n", 1)
    if lines[0].lower().startswith("<!doctype"):
        page_html = f"{lines[0]}\n<!-- {header} -->\n{lines[1] if len(lines) > 1 else ''}"
    else:
        page_html = f"<!-- {header} -->\n{page_html}"

    licences: list[str] = []
    for p in packages:
        if p.license_text:
            licences.append(f"{p.name} {p.version}:\n\n{p.license_text}")
    if licences:
        page_html = page_html.rstrip("\n") + "\n<!--\n" + _comment_safe(
            "\n\n".join(licences)
        ) + "\n-->\n"
    elif not page_html.endswith("\n"):
        page_html += "\n"

    # Sanity: exactly one closing tag per inline block, nothing remote.
    closing = len(re.findall(r"</script", page_html, re.IGNORECASE))
    if closing != len(packages):
        raise SystemExit(f"expected {len(packages)} </script> tags, found {closing}")
    if re.search(r"<script\b[^>]*\bsrc\s*=", page_html, re.IGNORECASE):
        raise SystemExit("a <script src=...> tag is left in the template")
    return page_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vega", type=Path, help="vega's build/vega.min.js")
    parser.add_argument("vega_lite", type=Path, help="vega-lite's build/vega-lite.min.js")
    parser.add_argument("vega_embed", type=Path, help="vega-embed's build/vega-embed.min.js")
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT,
        help=f"where to write the template (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})",
    )
    args = parser.parse_args(argv)

    paths = (args.vega, args.vega_lite, args.vega_embed)
    for path in paths:
        if not path.is_file():
            parser.error(f"no such file: {path}")
    packages = [Package(path, name) for path, name in zip(paths, EXPECTED_PACKAGES, strict=True)]

    text = build_template(packages, default_page_html())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf8", newline="\n")
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size / 1024:.0f} KiB): "
          + ", ".join(f"{p.name} {p.version}" for p in packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
