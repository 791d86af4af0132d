"""Fixtures for tests in a real VS Code (code-server + chromium; see harness.py).

`launch_vscode(workspace_files=..., vsix=..., settings=..., extra_args=...)` installs the
.vsix files, starts code-server, opens the workbench and returns a `VSCode`; everything
is stopped after the test. Screenshots, the logs (the driver's, code-server's, and the
extensions' output channels) and the step timings go to tests/vscode/artifacts/<test name>/
(or $ZI_VSCODE_ARTIFACTS/<test name>/), kept after the run. `zi_vsix` is client-vscode's .vsix,
packaged once per session when it is missing or stale.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.vscode.harness import CodeServer, VSCode, build_extension, tools_installed

LaunchVSCode = Callable[..., VSCode]


@pytest.fixture(scope="session")
def vscode_tools() -> None:
    # A developer without the tools gets a skip; CI (CI=true) must have run `make setup`.
    if not tools_installed():
        reason = "code-server is not installed: run tools/code-server/install.sh (make setup)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _artifacts_root() -> Path:
    return Path(os.environ.get("ZI_VSCODE_ARTIFACTS", Path(__file__).with_name("artifacts")))


@pytest.fixture(scope="session")
def zi_vsix(vscode_tools: None) -> Path:
    """client-vscode's .vsix, packaged first if missing or older than its sources."""
    root = _artifacts_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        return build_extension(log=root / "build-vsix.log")
    except FileNotFoundError as missing:  # no npm, and the .vsix needs building
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture
def vscode_artifacts(request: pytest.FixtureRequest) -> Path:
    path = _artifacts_root() / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def launch_vscode(
    vscode_tools: None, vscode_artifacts: Path, tmp_path: Path
) -> Iterator[LaunchVSCode]:
    started: list[tuple[CodeServer, VSCode]] = []

    def launch(
        *,
        workspace_files: dict[str, str],
        vsix: Sequence[Path] = (),
        settings: dict[str, Any] | None = None,
        extra_args: Sequence[str] = (),
    ) -> VSCode:
        workspace = tmp_path / "workspace"
        for rel, text in workspace_files.items():
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            (workspace / rel).write_text(text)
        server = CodeServer(tmp_path / "code-server", workspace, settings=settings)
        for package in vsix:
            server.install_extension(package)
        server.start(extra_args=extra_args)
        vscode = VSCode(server, vscode_artifacts)
        started.append((server, vscode))
        vscode.open()
        return vscode

    yield launch
    for server, vscode in started:
        vscode.close()
        server.stop()
        # code-server's log next to the screenshots: the extension host's errors are there.
        shutil.copy(server.log_path, vscode_artifacts / "code-server.log")
        # Extensions' output channels (the Zi Coder log has the server's log), not VS Code's.
        for log in server.extension_logs():
            if not log.parent.name.startswith("vscode."):
                shutil.copy(log, vscode_artifacts / f"{log.parent.name} - {log.name}")
        report = server.timings.report()
        (vscode_artifacts / "timings.txt").write_text(report + "\n")
        print(f"\nVS Code steps ({vscode_artifacts}):\n{report}")
