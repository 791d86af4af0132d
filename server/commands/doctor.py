"""``zi-coder doctor``: is everything Zi needs there and right? One verdict per line.

Checks, in the order a user would fix them: each model the language server
would use (server reachable, model listed, FIM template detected, a one-token
generation round trip with its latency), Redis, the history database's
migrations, and RQ workers. Exit status 1 when any check fails; warnings and
skipped checks (e.g. no Redis configured: the in-process path) do not fail.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.fim import FimTemplate
    from server.settings import Settings

_TIMEOUT_S = 5.0


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"  {self.verdict.value:<5} {self.name:<26} {self.detail}"


@dataclass(frozen=True, slots=True)
class _Target:
    """A model the language server would call: its role, settings and registry name."""

    label: str
    role: str
    url: str | None
    model: str | None
    fim_template: str
    problem: str | None = None


def run(args: argparse.Namespace) -> int:
    import sys

    from server.settings import Settings

    settings = Settings()
    if getattr(args, "models", None):
        settings = settings.model_copy(update={"models_file": Path(args.models)})
    checks = asyncio.run(run_checks(settings))
    for check in checks:
        sys.stdout.write(check.line() + "\n")
    failed = [c for c in checks if c.verdict is Verdict.FAIL]
    sys.stdout.write(f"\n{len(failed)} check(s) failed\n" if failed else "\nall checks passed\n")
    return 1 if failed else 0


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    for target in _targets(settings):
        checks.extend(await _model_checks(settings, target))
    checks.append(await asyncio.to_thread(_redis_check, settings))
    checks.append(await asyncio.to_thread(_database_check, settings))
    checks.append(await asyncio.to_thread(_workers_check, settings))
    return checks


def _targets(settings: Settings) -> list[_Target]:
    from server.notify import Notifier
    from server.routing import ModelRouter

    router = ModelRouter(settings, notifier=Notifier())
    registry = router.registry
    if registry is None:
        inference = settings.inference
        return [
            _Target(
                label="model",
                role="completion",
                url=inference.url,
                model=inference.model,
                fim_template=inference.fim_template.value,
            )
        ]
    targets = []
    for spec in registry.models.values():
        url = router.url_of(spec)
        for role in spec.roles:
            targets.append(
                _Target(
                    label=f"{spec.name} ({role.value})",
                    role=role.value,
                    url=url,
                    model=spec.served_name,
                    fim_template=spec.fim_template,
                    problem=None
                    if url
                    else f"not loaded: run `zi-coder models load {spec.name}` or `zi-coder up`",
                )
            )
    return targets


async def _model_checks(settings: Settings, target: _Target) -> list[Check]:
    from inference.client import CompletionRequest, InferenceClient
    from inference.errors import ModelError

    label = target.label
    if target.url is None:
        return [Check(f"{label}: server", Verdict.FAIL, target.problem or "no address")]
    client = InferenceClient(
        target.url,
        api_key=settings.inference.api_key,
        connect_timeout_s=settings.inference.connect_timeout_s,
        read_timeout_s=max(settings.inference.read_timeout_s, _TIMEOUT_S),
    )
    checks: list[Check] = []
    try:
        started = time.perf_counter()
        try:
            served = await client.list_models()
        except ModelError as exc:
            return [Check(f"{label}: server", Verdict.FAIL, f"{exc}")]
        checks.append(
            Check(f"{label}: server", Verdict.OK, f"{target.url} answers ({_ms(started)})")
        )
        names = [m.id for m in served]
        name = target.model or (names[0] if names else None)
        if name is None or name not in names:
            listed = ", ".join(names) or "none"
            wanted = repr(target.model) if target.model else "a model"
            checks.append(
                Check(f"{label}: model", Verdict.FAIL, f"{wanted} is not served (served: {listed})")
            )
            return checks
        checks.append(Check(f"{label}: model", Verdict.OK, f"{name!r} is served"))

        prompt = "def add(a, b):\n    return"
        if target.role == "completion":
            template_check, template = await _template_check(settings, target, name)
            checks.append(template_check)
            if template is None:
                return checks
            prompt = template.render("def add(a, b):\n    return ", "\n")
        started = time.perf_counter()
        try:
            pieces = [
                piece
                async for piece in client.stream_completion(
                    CompletionRequest(
                        model=name, prompt=prompt, max_tokens=1, stop=(), temperature=0.0
                    )
                )
            ]
        except ModelError as exc:
            checks.append(Check(f"{label}: generation", Verdict.FAIL, str(exc)))
            return checks
        got = "1 token" if pieces else "an empty answer"
        checks.append(Check(f"{label}: generation", Verdict.OK, f"{got} in {_ms(started)}"))
        return checks
    finally:
        await client.aclose()


async def _template_check(
    settings: Settings, target: _Target, name: str
) -> tuple[Check, FimTemplate | None]:
    """Resolve the FIM template exactly as the language server does."""
    from server.completion.backend import ModelBackend, ModelNotReady
    from server.notify import Notifier
    from server.settings import FimTemplateName

    inference = settings.inference.model_copy(
        update={
            "url": target.url,
            "model": name,
            "fim_template": FimTemplateName(target.fim_template),
        }
    )
    backend = ModelBackend(inference, notifier=Notifier())
    label = f"{target.label}: FIM template"
    try:
        info = await backend.info()
    except ModelNotReady as exc:
        return Check(label, Verdict.FAIL, str(exc)), None
    finally:
        await backend.aclose()
    how = "detected" if target.fim_template == "auto" else "configured and verified"
    return Check(label, Verdict.OK, f"{info.template.name} ({how})"), info.template


def _redis_check(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", Verdict.SKIP, "ZI_REDIS_URL unset: in-process cache and jobs")
    import redis

    from server.jobs.keyspace import eviction_problem

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S
        )
        client.ping()
        version = client.info("server").get("redis_version", "?")
        # Eviction matters only where jobs live (a separate queue Redis is checked by workers).
        shared = settings.resolved_queue_url == settings.redis_url
        eviction = eviction_problem(client) if shared else None
        client.close()
    except redis.RedisError as exc:
        return Check("redis", Verdict.FAIL, f"{_masked(settings.redis_url)}: {exc}")
    if eviction is not None:
        return Check("redis", Verdict.WARN, eviction)
    return Check(
        "redis", Verdict.OK, f"{_masked(settings.redis_url)} (version {version}, {_ms(started)})"
    )


def _database_check(settings: Settings) -> Check:
    from sqlalchemy.exc import SQLAlchemyError

    url = settings.resolved_database_url()
    shown = _masked(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return Check("database", Verdict.WARN, f"{shown} not created yet (made on first start)")
    try:
        current, head = _revisions(url)
    except SQLAlchemyError as exc:
        return Check("database", Verdict.FAIL, f"{shown}: {exc.__class__.__name__}: {exc}")
    if current == head:
        return Check("database", Verdict.OK, f"{shown} at migration {head}")
    return Check(
        "database",
        Verdict.WARN,
        f"{shown} at migration {current or 'none'}, head is {head}: "
        "the language server upgrades it when it starts",
    )


def _revisions(url: str) -> tuple[str | None, str | None]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from server.history.database import create_engine_for, migrations_dir

    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    return current, head


def _workers_check(settings: Settings) -> Check:
    queue_url = settings.resolved_queue_url
    if not queue_url:
        return Check("workers", Verdict.SKIP, "no Redis: jobs run inside the language server")
    import redis
    from rq import Worker

    try:
        connection = redis.Redis.from_url(queue_url, socket_connect_timeout=_TIMEOUT_S)
        workers = Worker.all(connection=connection)
        connection.close()
    except redis.RedisError as exc:
        return Check("workers", Verdict.FAIL, f"cannot list RQ workers: {exc}")
    if not workers:
        return Check(
            "workers", Verdict.WARN, "no RQ worker is running: start `zi-coder up` or a worker"
        )
    names = ", ".join(sorted(w.name for w in workers)[:5])
    return Check("workers", Verdict.OK, f"{len(workers)} alive ({names})")


def _masked(url: str) -> str:
    """A URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"
