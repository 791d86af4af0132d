"""Which files the context rules keep out of prompts: built-ins, .gitignore files (nested,
negated, changed while the server runs) and the user's extra patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.context.ignore import ContextRules
from server.settings import Settings


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """A repository (a `.git` directory is all it takes) holding `files`."""
    root = tmp_path / "repo"
    (root / ".git" / "info").mkdir(parents=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


EXCLUDED = [
    ".env", ".env.local", ".env.production", "config/prod.env", "deploy/.env",
    "id_rsa", "id_rsa.pub", "id_ed25519", "keys/id_ecdsa", "server.pem", "tls/server.key",
    "cert.p12", "cert.pfx", "release.jks", "android.keystore", "AuthKey_ABC.p8", "putty.ppk",
    ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", ".my.cnf", ".htpasswd",
    "credentials", "credentials.json", "gcp-credentials.json", "credentials.toml",
    "client_secret_123.json",
    "service-account.json", "secrets.yaml", "k8s/db-secret.yaml", ".streamlit/secrets.toml",
    "terraform.tfstate", "terraform.tfstate.backup", "prod.tfvars",
    ".aws/credentials", ".aws/config", ".ssh/config", ".gnupg/pubring.kbx", ".kube/config",
    ".docker/config.json", ".git/config", "sub/.git/HEAD",
]  # fmt: skip
ALLOWED = [
    "app.py", "src/settings.py", "environment.yml", "env.py", "envoy.yaml", "keyboard.py",
    "secrets.py", "test_secrets.py", "redact/secret_shapes.py", "docs/ssh.md", "monkey.ts",
    "credentials.py", "auth/credentials_test.go", "Dockerfile", "README.md", ".gitignore",
    "src/keys.py",
]  # fmt: skip


@pytest.mark.parametrize("name", EXCLUDED)
def test_built_in_denials(tmp_path: Path, name: str) -> None:
    root = _repo(tmp_path, {})
    assert ContextRules().excludes(root / name)


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_files_are_allowed(tmp_path: Path, name: str) -> None:
    root = _repo(tmp_path, {})
    assert not ContextRules().excludes(root / name)


def test_outside_a_repository_built_ins_still_apply(tmp_path: Path) -> None:
    rules = ContextRules()
    assert rules.excludes(tmp_path / "home" / ".ssh" / "known_hosts")
    assert rules.excludes(tmp_path / "project" / ".env")
    assert not rules.excludes(tmp_path / "project" / "main.py")


def test_gitignore_nested_and_negated(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {
            ".gitignore": "*.log\nbuild/\n/local_settings.py\n!keep.log\n",
            "pkg/.gitignore": "generated_*.py\n!important.log\n",
            "pkg/deep/.gitignore": "!generated_ok.py\n",
        },
    )
    rules = ContextRules()
    ignored = [
        "debug.log", "pkg/debug.log", "build/out.py", "pkg/build/x.py", "local_settings.py",
        "pkg/generated_api.py",
    ]  # fmt: skip
    kept = [
        "keep.log", "pkg/important.log", "pkg/local_settings.py", "pkg/deep/generated_ok.py",
        "generated_api.py", "main.py", "pkg/main.py", "builder.py",
    ]  # fmt: skip
    assert [name for name in ignored if not rules.excludes(root / name)] == []
    assert [name for name in kept if rules.excludes(root / name)] == []


def test_a_file_in_an_ignored_directory_cannot_be_re_included(tmp_path: Path) -> None:
    # git does not even read build/.gitignore: the directory is ignored as a whole.
    root = _repo(tmp_path, {".gitignore": "build/\n!build/keep.py\n", "build/.gitignore": "!*"})
    assert ContextRules().excludes(root / "build" / "keep.py")


def test_git_info_exclude_counts_and_gitignore_overrides_it(tmp_path: Path) -> None:
    root = _repo(
        tmp_path, {".git/info/exclude": "scratch.py\nnotes.py\n", ".gitignore": "!notes.py\n"}
    )
    rules = ContextRules()
    assert rules.excludes(root / "scratch.py")
    assert not rules.excludes(root / "notes.py")


def test_a_gitignore_cannot_re_include_a_built_in(tmp_path: Path) -> None:
    root = _repo(tmp_path, {".gitignore": "!.env\n!*.pem\n"})
    rules = ContextRules()
    assert rules.excludes(root / ".env") and rules.excludes(root / "ca.pem")


def test_gitignore_can_be_turned_off(tmp_path: Path) -> None:
    root = _repo(tmp_path, {".gitignore": "local.py\n"})
    assert ContextRules().excludes(root / "local.py")
    rules = ContextRules(gitignore=False)
    assert not rules.excludes(root / "local.py")
    assert rules.excludes(root / ".env")  # the built-ins stay


def test_extra_patterns_add_and_re_include(tmp_path: Path) -> None:
    root = _repo(tmp_path, {})
    rules = ContextRules(extra=["vendor/", "*.sql", "!fixtures.key"])
    assert rules.excludes(root / "vendor" / "lib.py")
    assert rules.excludes(root / "db" / "dump.sql")
    assert not rules.excludes(root / "fixtures.key")  # the user's own choice
    assert rules.excludes(root / "other.key")


def test_a_changed_gitignore_is_read_again(tmp_path: Path) -> None:
    root = _repo(tmp_path, {".gitignore": "a.py\n"})
    rules = ContextRules(check_interval_s=0)
    assert rules.excludes(root / "a.py") and not rules.excludes(root / "b.py")
    gitignore = root / ".gitignore"
    gitignore.write_text("b.py\n")
    stat = gitignore.stat()
    os.utime(gitignore, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not rules.excludes(root / "a.py") and rules.excludes(root / "b.py")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text("c.py\n")  # a new nested file
    assert rules.excludes(root / "sub" / "c.py")


def test_uris_of_every_scheme(tmp_path: Path) -> None:
    root = _repo(tmp_path, {".gitignore": "my local.py\n"})
    rules = ContextRules()
    assert rules.excludes_uri((root / ".env").as_uri())
    assert rules.excludes_uri((root / "my local.py").as_uri())  # percent-decoded
    assert not rules.excludes_uri((root / "app.py").as_uri())
    assert rules.excludes_uri("mcp:///deploy/.env")
    assert rules.excludes_uri("vscode-remote://ssh-remote+box/home/me/.ssh/id_rsa")
    assert not rules.excludes_uri("untitled:Untitled-1")


def test_settings_make_shared_rules(tmp_path: Path) -> None:
    settings = Settings.model_validate({"context": {"ignore": ["*.sql"], "gitignore": False}})
    assert settings.context.rules() is settings.context.rules()
    assert settings.context.rules().excludes(tmp_path / "dump.sql")
    assert not Settings().context.rules().excludes(tmp_path / "dump.sql")


def test_only_built_ins_and_user_patterns_deny_ai_in_the_file_itself(tmp_path: Path) -> None:
    root = _repo(tmp_path, {".gitignore": "scratch.py\n", ".env": "", "scratch.py": "", "a.py": ""})
    rules = ContextRules(extra=["notes/*.py"])
    assert rules.denies_uri((root / ".env").as_uri())
    assert rules.denies_uri((root / "notes" / "x.py").as_uri())
    # Git ignores it: never another file's context, but its own completions stay.
    assert rules.excludes_uri((root / "scratch.py").as_uri())
    assert not rules.denies_uri((root / "scratch.py").as_uri())
    assert not rules.denies_uri((root / "a.py").as_uri())
