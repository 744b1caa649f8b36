"""MkDocs hook: links from the docs to files of the repository outside ``docs/``.

The pages are written to be read on a code host as well as in the built site, so they link to
``../README.md`` or ``../../benchmarks/bench_learning.py`` as relative paths. MkDocs only knows the
files under ``docs/`` and (in strict mode) fails on those links. This hook checks that each such
target exists in the repository (a broken one still fails the build) and rewrites the link to the
repository URL given as ``extra.repository_blob`` in mkdocs.yml, or leaves the text without a link
when none is configured.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.repo_links")

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - MkDocs hook signature
    docs_dir = Path(config["docs_dir"]).resolve()
    repo = docs_dir.parent
    page_dir = (docs_dir / page.file.src_uri).parent
    blob = (config.get("extra") or {}).get("repository_blob")

    def rewrite(match: re.Match) -> str:
        target = match.group("target")
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = Path(posixpath.normpath((page_dir / path).as_posix()))
        try:
            resolved.relative_to(docs_dir)
            return match.group(0)  # inside docs/: MkDocs checks it
        except ValueError:
            pass
        try:
            relative = resolved.relative_to(repo)
        except ValueError:
            log.warning("%s: link %r points outside the repository", page.file.src_uri, target)
            return match.group(0)
        if not resolved.exists():
            log.warning("%s: link %r: %s does not exist in the repository", page.file.src_uri, target, relative)
            return match.group(0)
        if blob:
            return f"[{match.group('text')}]({blob.rstrip('/')}/{relative.as_posix()}{'#' + anchor if anchor else ''})"
        return f"{match.group('text')} (`{relative.as_posix()}` in the repository)"

    return _LINK.sub(rewrite, markdown)
