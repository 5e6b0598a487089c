"""`dvc plots show` with the project's HTML template must give a page that needs no network.

DVC's default template loads vega, vega-lite and vega-embed from a CDN; the project's
.dvc/config points `plots.html_template` at plots/template/offline.html, which inlines them
(made by tools/make_offline_template.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = REPO / ".dvc" / "config"
CSV = "step,loss\n0,1.00\n1,0.62\n2,0.41\n3,0.30\n4,0.26\n"
# One of the project's own chart templates (.dvc/plots), so the page is the one users get.
DVC_YAML = """plots:
  - plots/loss.csv:
      template: model_curve
      x: step
      y: loss
  - plots/images/confusion_a.png
"""
# A 1x1 PNG: an image plot, as the confusion matrices are.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
                    "0000000c49444154789c63f8ffff3f0005fe02fe0def46b80000000049454e44ae426082")


def _dvc_cmd() -> list[str]:
    exe = shutil.which("dvc")
    return [exe] if exe else [sys.executable, "-m", "dvc"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _project_template_setting() -> str:
    from configobj import ConfigObj  # installed with dvc

    value = ConfigObj(str(PROJECT_CONFIG)).get("plots", {}).get("html_template")
    assert value, ".dvc/config has no plots.html_template"
    return value


class _Page(HTMLParser):
    """Collects <script> elements (attributes and text) and every element's attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.elements: list[tuple[str, dict]] = []
        self._in_script: dict | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "script":
            self._in_script, self._text = attrs, []

    def handle_data(self, data):
        if self._in_script is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._text)))
            self._in_script = None


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    setting = _project_template_setting()
    # DVC joins a relative plots.html_template onto the .dvc directory.
    template = (REPO / ".dvc" / setting).resolve()
    assert template.is_file(), f"plots.html_template={setting!r} resolves to missing {template}"
    rel = template.relative_to(REPO)  # must live inside the repo to be committed

    work = tmp_path_factory.mktemp("offline_plots")
    _run(["git", "init", "-q"], work)
    _run([*_dvc_cmd(), "init", "-q"], work)
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, work / rel)
    _run([*_dvc_cmd(), "config", "plots.html_template", setting], work)
    shutil.copytree(REPO / ".dvc" / "plots", work / ".dvc" / "plots")
    (work / "plots").mkdir(exist_ok=True)
    (work / "plots" / "loss.csv").write_text(CSV, encoding="utf8")
    (work / "plots" / "images").mkdir()
    (work / "plots" / "images" / "confusion_a.png").write_bytes(PNG)
    (work / "dvc.yaml").write_text(DVC_YAML, encoding="utf8")

    _run([*_dvc_cmd(), "plots", "show", "-o", "out"], work)
    index = work / "out" / "index.html"
    assert index.is_file()
    return index.read_text(encoding="utf8")


def test_page_loads_no_remote_resources(page):
    parser = _Page()
    parser.feed(page)
    parser.close()

    for tag, attrs in parser.elements:
        if tag == "script":
            assert "src" not in attrs, f"<script src={attrs['src']!r}> in page"
        if tag == "a":
            continue  # a link is only followed when clicked
        for attr in ("src", "href"):
            url = (attrs.get(attr) or "").strip().lower()
            assert not url.startswith(("http:", "https:", "//")), (
                f"<{tag} {attr}={url!r}> loads from the network"
            )
    for attrs, text in parser.scripts:
        blob = (str(attrs) + text).lower()
        assert "https://cdn" not in blob and "jsdelivr" not in blob
    assert "jsdelivr" not in page.lower()
    # No placeholder left for DVC to fill in later, above all not {scripts} (the CDN tags).
    assert not re.search(r"\{(scripts|plot_divs|refresh_tag)\}", page)


def test_vega_libraries_are_inline_and_in_order(page):
    parser = _Page()
    parser.feed(page)
    scripts = [text for _, text in parser.scripts]

    def index_of(pattern: str) -> int:
        hits = [i for i, text in enumerate(scripts) if re.search(pattern, text)]
        assert hits, f"no inline script matches {pattern!r}"
        return hits[0]

    # The UMD bundles assign these globals; vega-embed needs the other two loaded first.
    vega = index_of(r"\.vega\s*=\s*\{\}")
    vega_lite = index_of(r"\.vegaLite\s*=\s*\{\}")
    vega_embed = index_of(r"\.vegaEmbed\s*=")
    first_call = index_of(r"vegaEmbed\(\s*['\"]#")
    assert vega < vega_lite < vega_embed < first_call
    assert len(scripts[vega]) > 100_000  # the whole library, not a stub


def test_plot_is_embedded(page):
    ids = re.findall(r"vegaEmbed\(\s*'#([^']+)'", page)
    assert ids, "no vegaEmbed call for a plot"
    assert any("loss" in plot_id for plot_id in ids)
    for plot_id in ids:
        assert re.search(rf'<div id\s*=\s*"{re.escape(plot_id)}"', page)
    assert "#0072B2" in page  # the project template's model colours, not DVC's default


def test_image_plots_sit_side_by_side(page):
    """Issue 31: dvc-render gives each image a block <div>, a full-width row per confusion
    matrix; the page's style makes them inline blocks."""
    assert re.search(r'body > div\[id\$="_png"\][^{]*\{\s*display: inline-block;', page)
    assert re.search(r'<div\s+id="plots_images_confusion_a_png"', page)  # what it selects


def test_generator_escapes_closing_script_tags():
    spec = importlib.util.spec_from_file_location(
        "make_offline_template", REPO / "tools" / "make_offline_template.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    out = module.escape_js_for_script_element('a="</script><!--";b="</SCRIPT >";c=/<\\/x/;')
    assert "</script" not in out.lower()
    assert "<!--" not in out
    assert out == 'a="<\\/script>\\x3C!--";b="<\\/SCRIPT >";c=/<\\/x/;'
