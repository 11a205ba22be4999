"""The dependency rule: handlers/ and knowledge/ never import a platform library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = ("aiogram", "aiohttp", "telegram", "zalo", "zalo_bot", "httpx", "requests")
CORE_PACKAGES = ("handlers", "knowledge")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_no_direct_platform_import(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported_modules(path):
            if name.split(".")[0] in PLATFORM or name.startswith("bot.channels"):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_no_transitive_platform_import() -> None:
    """Importing every core module loads no platform library, even indirectly."""
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in CORE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {PLATFORM!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == ""


# The web console (web/) is an adapter like bot/channels: it may use storage, handlers,
# scheduler and knowledge; none of those imports it, and it does not reach into the
# messengers' adapters.
BELOW_THE_CONSOLE = ("handlers", "knowledge", "scheduler")


@pytest.mark.parametrize("package", BELOW_THE_CONSOLE)
def test_nothing_below_imports_the_console(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imported_modules(path)
        if name == "web" or name.startswith("web.")
    ]
    assert offenders == []


def test_console_does_not_use_the_messenger_adapters() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "web").rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in {"aiogram", "telegram", "zalo", "zalo_bot"}
        or name.startswith("bot.channels")
    ]
    assert offenders == []
