"""`zi-coder replay` against a real vLLM engine serving the tiny Qwen2 model.

The history holds a completion recorded on a StarCoder-family model (its prompt
in StarCoder's sentinels) and a review recorded with the review's structured
output. Replayed against the tiny Qwen2 engine, the completion must reach the
engine re-rendered with Qwen's sentinels, read by the engine as single special
tokens; the review must reach it with the recorded messages and parameters (the
schema constraint included). The weights are random, so the assertions are about
the path, the report's structure and what is recorded, never the text, except
where the engine decides alone: six tokens cannot hold a whole review (see
``test_review_with_vllm.py``), so that answer is cut and cannot validate.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from inference.fim import QWEN, STARCODER
from server.completion.recorder import ModelCallEvent, ModelCallKind
from server.diagnostics import review
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from server.history.models import CompletionRecord
from tests.e2e.conftest import server_env
from tests.realmodel.conftest import TinyServer

PREFIX = "# Path: notes.py\nimport os\n\n# Read the configuration file and "
SUFFIX = "\nprint(os.sep)\n"
CUT_TOKENS = 6
_BODY = re.compile(r"Request \S+ JSON body: (\{.*\})$", re.MULTILINE)
MESSAGES = review.review_messages(
    language_id="python",
    path="stats.py",
    document="def mean(xs):\n    return sum(xs) / len(xs)\n",
    regions=[(1, 2)],
    max_chars=4_000,
)


def _write_history(url: str) -> None:
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    at = repository.now()
    with Session(engine) as session, session.begin():
        session.add(
            CompletionRecord(
                id="s-c1",
                created_at=at,
                uri="file:///notes.py",
                language="python",
                model="tiny-starcoder",
                template="starcoder",
                mode="single_line",
                source="model",
                text_length=len("parse it"),
                prompt_chars=len(PREFIX),
                total_ms=80.0,
                outcome="accepted",
                text="parse it",
            )
        )
        for event in (
            _event(
                "c1",
                ModelCallKind.COMPLETION,
                "tiny-starcoder",
                STARCODER.render(PREFIX, SUFFIX),
                "parse it",
                params={"max_tokens": 64, "stop": ["\n"], "temperature": 0.0},
                template="starcoder",
                completion_id="s-c1",
            ),
            _event(
                "r1",
                ModelCallKind.REVIEW,
                "tiny-chat",
                json.dumps(MESSAGES, ensure_ascii=False),
                '{"findings":[]}',
                params={
                    "max_tokens": CUT_TOKENS,
                    "temperature": 0.0,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "response_format": review.response_format(),
                },
            ),
        ):
            repository.record_model_call(session=session, event=event, at=at, store_prompts=True)
    engine.dispose()


def _event(
    ident: str,
    kind: ModelCallKind,
    model: str,
    prompt: str,
    response: str,
    *,
    params: dict[str, Any],
    template: str | None = None,
    completion_id: str | None = None,
) -> ModelCallEvent:
    return ModelCallEvent(
        id=ident,
        kind=kind,
        model=model,
        endpoint="http://gpu-box:8000/v1",
        params={"model": model, **params},
        prompt=prompt,
        response=response,
        finish_reason="stop",
        prompt_tokens=None,
        completion_tokens=None,
        first_token_ms=20.0,
        total_ms=80.0,
        language="python",
        template=template,
        completion_id=completion_id,
    )


def test_replay_re_renders_for_the_served_family_and_records_the_replays(
    qwen_server: TinyServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    _write_history(url)
    mark = qwen_server.log.mark()
    env = server_env(
        ZI_DATABASE_URL=url,
        ZI_STATE_DIR=str(tmp_path / "state"),
        ZI_INFERENCE__URL=qwen_server.url,
        ZI_INFERENCE__TEMPERATURE="0",
        ZI_INFERENCE__EXTRA_BODY=json.dumps({"min_tokens": 3, "repetition_penalty": 1.8}),
        ZI_HISTORY__STORE_PROMPTS="true",
    )

    done = subprocess.run(
        [sys.executable, "-m", "server", "replay", "--json", "--concurrency", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert (report["matched"], report["replayed"], report["failed"]) == (2, 2, 0)
    calls = {row["id"]: row for row in report["calls"]}
    completion, reviewed = calls["c1"], calls["r1"]

    # The completion: re-rendered with Qwen's sentinels, read as single special tokens.
    seen = qwen_server.log.wait_for_completion(mark)
    assert seen.body["prompt"] == QWEN.render(PREFIX, SUFFIX)
    assert seen.body["model"] == qwen_server.name
    assert seen.prompt_token_ids[0] == qwen_server.token_id(QWEN.prefix)
    assert seen.prompt_token_ids[-1] == qwen_server.token_id(QWEN.middle)
    assert seen.prompt_token_ids.count(qwen_server.token_id(QWEN.suffix)) == 1
    assert (completion["recorded_template"], completion["template"]) == ("starcoder", "qwen")
    assert (completion["model"], completion["accepted"]) == (qwen_server.name, "parse it")
    assert completion["error"] is None
    assert isinstance(completion["new"]["text"], str)
    assert isinstance(completion["new"]["passes"], bool)
    assert isinstance(completion["new"]["similarity"], float)
    assert completion["new"]["total_ms"] > 0

    # The review: the recorded messages and parameters, the schema constraint included.
    assert reviewed["error"] is None
    assert reviewed["recorded"]["passes"] is True
    assert reviewed["new"]["passes"] is False  # cut by the engine at 6 tokens
    assert 0.0 <= reviewed["response_similarity"] <= 1.0
    assert reviewed["new"]["total_ms"] > 0
    assert reviewed["model"] == qwen_server.name  # the first served: no chat model is set
    qwen_server.log.wait_for(r"Received request chatcmpl-", mark)
    (chat,) = [
        body
        for body in map(json.loads, _BODY.findall(qwen_server.log.since(mark)))
        if "messages" in body
    ]
    assert chat["messages"] == MESSAGES
    assert (chat["max_tokens"], chat["temperature"]) == (CUT_TOKENS, 0.0)
    assert chat["response_format"]["json_schema"]["name"] == "zi_review"

    groups = {group["kind"]: group for group in report["groups"]}
    assert groups["completion"]["recorded_model"] == "tiny-starcoder"
    assert groups["completion"]["models"] == [qwen_server.name]
    assert groups["review"]["pass_rate"] == {"recorded": 1.0, "new": 0.0}

    db = sqlite3.connect(tmp_path / "history.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        rows = {
            row["replay_of"]: dict(row)
            for row in db.execute("SELECT * FROM model_calls WHERE replay")
        }
    finally:
        db.close()
    assert set(rows) == {"c1", "r1"}
    assert rows["c1"]["id"] == completion["replay_id"]
    assert (rows["c1"]["model"], rows["c1"]["template"]) == (qwen_server.name, "qwen")
    assert rows["c1"]["prompt"] == QWEN.render(PREFIX, SUFFIX)
    assert rows["c1"]["response"] == completion["new"]["text"]
    assert json.loads(rows["r1"]["prompt"]) == MESSAGES
    assert rows["r1"]["finish_reason"] == "length"
    params = json.loads(rows["r1"]["params"])
    assert params["response_format"] == review.response_format()
    assert params["max_tokens"] == CUT_TOKENS
