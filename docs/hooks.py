"""MkDocs hook (mkdocs.yml `hooks:`): files of the repository outside docs/ that the site shows. The README is
the site's home page and CONTRIBUTING.md one of its pages, so that the repository's front page and the site's
are one text and the strict build checks their links; the images of benchmarks/ (plots a benchmark writes
beside its results) are shown where the pages show them.

Links are written for the repository (`docs/use/cli.md` in the README, `../CONTRIBUTING.md` or
`../../benchmarks/routing/regret.png` in a page of docs/); on the site they point at those files' places
(`use/cli.md`, `contributing.md`, `benchmarks/routing/regret.png`). A link to anything else outside docs/ is
left as it is, so that the strict build reports it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md"}
"""File of the repository's root → its page on the site."""
IMAGES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:")


def outside_docs() -> dict[str, str]:
    """Every file outside docs/ that the site holds: its path in the repository → its path on the site."""
    images = (path for path in (ROOT / "benchmarks").rglob("*") if path.suffix.lower() in IMAGES)
    return PAGES | {str(path.relative_to(ROOT)): str(path.relative_to(ROOT)) for path in images}


def on_files(files, config):
    # imported here, so that tests/docs/test_readme.py reads PAGES without mkdocs
    from mkdocs.structure.files import File

    for repo, site in outside_docs().items():
        files.append(File.generated(config, site, abs_src_path=str(ROOT / repo)))
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    site_of = outside_docs()
    repo_of = {site: repo for repo, site in PAGES.items()}
    here = posixpath.dirname(repo_of.get(src, f"docs/{src}"))  # the page's folder in the repository

    def site_link(match: re.Match) -> str:
        if URL.match(match.group(2)):
            return match.group(0)
        target = posixpath.normpath(posixpath.join(here, match.group(2)))
        if target in site_of:
            target = site_of[target]
        elif target.startswith("docs/"):
            target = target.removeprefix("docs/")
        else:
            return match.group(0)
        link = posixpath.relpath(target, posixpath.dirname(src) or ".")
        return match.group(1) + link + (match.group(3) or "") + match.group(4)

    return LINK.sub(site_link, markdown)
