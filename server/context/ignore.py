"""Which files may be read as context or get AI features at all (``ContextRules``).

A file is excluded when the built-in deny list (`BUILT_IN`: dotenv files, keys and
keystores, credential files, cloud and SSH directories, Terraform state, ``.git/``) or
the user's ``context.ignore`` patterns match it, or when its repository's ``.gitignore``
files (and ``.git/info/exclude``) ignore it, unless ``context.gitignore`` is off. Excluded
files never feed a prompt: not as completion snippets of another file (an open ``.env``
buffer stays out of ``app.py``'s prompt), not through MCP tools, and get no completion,
review or action themselves (Copilot's content exclusion does the same).

A ``.gitignore`` only ever adds exclusions: a repository's ``!.env`` does not re-include
a built-in, only a user's own ``!pattern`` in ``context.ignore`` does. The patterns are
gitignore's (``pathspec``), relative to the repository root (the nearest directory with a
``.git``) or, outside a repository, matched against the path from ``/``. Nested
``.gitignore`` files apply below their directory, the deeper ones winning, and a file
under an ignored directory stays ignored whatever a deeper file says, as in git. No git
process is run: the files are read and parsed once and re-read when their mtime or size
changes, checked at most once every ``check_interval_s`` (decisions are cached as long),
so a completion pays a dictionary lookup per open document.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from pathspec import GitIgnoreSpec

# Files whose point is to hold secrets. Code that merely handles secrets (`secrets.py`,
# `test_secret_scanner.py`) stays usable: redaction removes literal secrets from it.
BUILT_IN: tuple[str, ...] = (
    # dotenv files: .env, .env.local, .env.production, prod.env
    ".env", ".env.*", "*.env",
    # private keys, certificates with keys, keystores, password databases
    "*.pem", "*.key", "*.p8", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk", "*.keytab",
    "*.gpg", "*.kdbx", "*.ovpn",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    # credential files of tools (HTTP, databases, package registries, git, Docker, AWS…)
    ".netrc", "_netrc", ".pgpass", ".my.cnf", ".npmrc", ".pypirc", ".git-credentials",
    ".dockercfg", ".htpasswd", ".boto", ".s3cfg", ".vault-token",
    "credentials", "client_secret*.json", "service-account*.json", "service_account*.json",
    "*.secret", "*.secrets",
    # data files named for secrets or credentials; code so named is not (`secrets.py`)
    "*secret*.json", "*secret*.yaml", "*secret*.yml", "*secret*.toml", "*secret*.ini",
    "*credentials*.json", "*credentials*.yaml", "*credentials*.yml", "*credentials*.toml",
    "*credentials*.ini", "*credentials*.xml",
    "*.tfstate", "*.tfstate.*", "*.tfvars",
    # directories of secrets, and git's own (its config may hold a remote's token)
    ".aws/", ".ssh/", ".gnupg/", ".azure/", ".kube/", ".docker/", "gcloud/", ".git/",
)  # fmt: skip

_MAX_CACHED = 10_000  # decisions and roots remembered; a long session opens many files


class ContextRules:
    """Whether a file is excluded from context and AI features (see the module's doc)."""

    def __init__(
        self, *, extra: Sequence[str] = (), gitignore: bool = True, check_interval_s: float = 1.0
    ) -> None:
        # One spec, built-ins first: a user's `!pattern` may re-include a built-in.
        self._deny = GitIgnoreSpec.from_lines([*BUILT_IN, *extra])
        self._gitignore = gitignore
        self._interval = check_interval_s
        self._verdicts: dict[str, tuple[float, bool]] = {}
        self._roots: dict[str, Path | None] = {}
        # .gitignore path -> (checked at, (mtime_ns, size) or None if absent, spec)
        self._specs: dict[Path, tuple[float, tuple[int, int] | None, GitIgnoreSpec | None]] = {}

    def excludes_uri(self, uri: str) -> bool:
        """`excludes` for a document's URI; other schemes than file: by their path alone."""
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return self.excludes(Path(unquote(parts.path)))
        name = PurePosixPath(unquote(parts.path or parts.netloc or uri).lstrip("/"))
        return bool(name.parts) and self._denied(name)

    def denies_uri(self, uri: str) -> bool:
        """Whether the built-in list or the user's patterns name this document: it gets
        no completion, review or action. `.gitignore` alone does not deny: it keeps a
        file out of *other* files' context, but a scratch file git ignores is still the
        user's to write, with help."""
        parts = urlsplit(uri)
        if parts.scheme != "file":
            return self.excludes_uri(uri)  # by its path alone: no .gitignore applies
        path = Path(unquote(parts.path))
        root = self._root_of(path.parent)
        where = path.relative_to(root) if root is not None else path
        return self._denied(PurePosixPath(where.as_posix().lstrip("/")))

    def excludes(self, path: Path) -> bool:
        """Whether `path` (absolute: a file in the editor or on disk) is excluded."""
        key = str(path)
        now = time.monotonic()
        cached = self._verdicts.get(key)
        if cached is not None and now - cached[0] < self._interval:
            return cached[1]
        verdict = self._decide(path)
        if len(self._verdicts) >= _MAX_CACHED:
            self._verdicts.clear()
        self._verdicts[key] = (now, verdict)
        return verdict

    def _decide(self, path: Path) -> bool:
        root = self._root_of(path.parent)
        if root is None:
            return self._denied(PurePosixPath(path.as_posix().lstrip("/")))
        relative = PurePosixPath(path.relative_to(root).as_posix())
        return self._denied(relative) or (self._gitignore and self._gitignored(root, relative))

    def _denied(self, relative: PurePosixPath) -> bool:
        # A directory pattern (`.ssh/`) matches the files under it, at any depth.
        return bool(self._deny.match_file(relative.as_posix()))

    def _root_of(self, directory: Path) -> Path | None:
        """The nearest directory at or above `directory` holding `.git` (a directory, or a
        worktree's file), None outside a repository."""
        key = str(directory)
        if key in self._roots:
            return self._roots[key]
        found: Path | None = None
        for candidate in (directory, *directory.parents):
            if os.path.lexists(candidate / ".git"):
                found = candidate
                break
        if len(self._roots) >= _MAX_CACHED:
            self._roots.clear()
        self._roots[key] = found
        return found

    def _gitignored(self, root: Path, relative: PurePosixPath) -> bool:
        """git's answer: each directory on the way is checked first (a file in an ignored
        directory cannot be re-included), then the file; at each step the last matching
        pattern of the deepest file that has one decides."""
        parts = relative.parts
        specs = [self._spec(root / ".git" / "info" / "exclude")]
        specs += [
            self._spec(root.joinpath(*parts[:level], ".gitignore")) for level in range(len(parts))
        ]
        for depth in range(1, len(parts) + 1):
            is_dir = depth < len(parts)
            ignored = False
            # info/exclude is relative to the root and weaker than any .gitignore.
            for level, spec in enumerate(specs[: depth + 1]):
                if spec is None:
                    continue
                base = max(level - 1, 0)
                target = "/".join(parts[base:depth]) + ("/" if is_dir else "")
                include = spec.check_file(target).include
                if include is not None:
                    ignored = include
            if ignored:
                return True
        return False

    def _spec(self, path: Path) -> GitIgnoreSpec | None:
        now = time.monotonic()
        cached = self._specs.get(path)
        if cached is not None and now - cached[0] < self._interval:
            return cached[2]
        try:
            found = os.stat(path)
            stamp: tuple[int, int] | None = (found.st_mtime_ns, found.st_size)
        except OSError:
            stamp = None
        if cached is not None and cached[1] == stamp:
            self._specs[path] = (now, stamp, cached[2])
            return cached[2]
        spec = None
        if stamp is not None:
            try:
                with open(path, encoding="utf-8", errors="replace") as file:
                    spec = GitIgnoreSpec.from_lines(file.read().splitlines())
            except OSError:
                spec = None  # unreadable (a directory named .gitignore): as if absent
        if len(self._specs) >= _MAX_CACHED:
            self._specs.clear()
        self._specs[path] = (now, stamp, spec)
        return spec


@functools.lru_cache(maxsize=8)
def rules_for(extra: tuple[str, ...] = (), gitignore: bool = True) -> ContextRules:
    """The rules for these settings, shared by every service that holds them, so the
    parsed files and decisions are cached once (``rules_for(*settings.context.key)``)."""
    return ContextRules(extra=extra, gitignore=gitignore)
