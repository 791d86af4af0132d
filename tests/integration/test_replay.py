"""`zi-coder replay` over a real SQLite history, against the scripted model server.

The fixture history (store_prompts on, except c5), written through the migrations
and the server's repository; ages are before now:

    id  kind         age   model           lang    template   took (from the suggestion)
    c1  completion   60m   old-coder       python  starcoder  accepted "a + b"
    r1  review       70m   old-chat        python  -          -
    a1  code_action  80m   old-chat        python  -          -
    c2  completion   120m  old-coder       python  qwen       5 chars of "total(items)"
    r2  review       130m  old-chat        python  -          -
    c3  completion   180m  old-coder       python  starcoder  accepted "x * 2"
    c4  completion   240m  old-coder       python  qwen       rejected
    c5  completion   300m  old-coder       python  qwen       accepted; no prompt stored
    c8  completion   360m  old-coder       rust    qwen       accepted "Ok(())"
    c6  completion   30m   scripted-coder  python  qwen       - (a replay of c1)
    c7  completion   10d   old-coder       python  qwen       accepted "old"

Recorded answers and the scripted model's new ones are in `_CALLS`: the same text
for all but c2 ("total(items)" then "total"), c3 ("x * 2" then "x * 3"), c4
("None" then nothing) and r2 (cut at max_tokens, then a valid review).

Figures over the last 7 days (c7 out), worked out by hand:

- completions (c1 c2 c3 c4 c8; references for c1 c2 c3 c8): exact match recorded
  3/4 (c2's "total(items)" is not "total"), new 3/4 (c3); similarity (difflib ratio)
  recorded (1 + 10/17 + 1 + 1) / 4 = 61/68, new (1 + 1 + 0.8 + 1) / 4 = 0.95
  ("x * 3" vs "x * 2": 2·4/10); passes recorded 5/5, new 4/5 (c4 answers nothing).
- reviews (r1 r2): valid review JSON recorded 1/2 (r2 was cut), new 2/2; answer
  similarity (1 + 28/30) / 2.
- code actions (a1): answer similarity 1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inference.fim import QWEN, STARCODER, FimTemplate
from server.cli import main
from server.completion.recorder import ModelCallEvent, ModelCallKind
from server.completion.types import Outcome
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from server.history.models import CompletionRecord, ModelCallRecord
from tests.support.scripted_model import Reply, ScriptedModel

COMPLETION, REVIEW, ACTION = (
    ModelCallKind.COMPLETION,
    ModelCallKind.REVIEW,
    ModelCallKind.CODE_ACTION,
)
REVIEW_PARAMS = {
    "model": "old-chat",
    "max_tokens": 64,
    "temperature": 0.0,
    "stream": True,
    "stream_options": {"include_usage": True},
    "response_format": {"type": "json_object"},
}
ACTION_PARAMS = {"model": "old-chat", "max_tokens": 128, "temperature": 0.2, "stream": True}
FENCED_PASS = "```python\npass\n```"


@dataclass(frozen=True)
class Call:
    id: str
    kind: ModelCallKind
    age: timedelta
    model: str = "old-coder"
    language: str = "python"
    template: FimTemplate | None = QWEN
    prefix: str = ""  # completions: code before the cursor (after the path line)
    suffix: str = "\n"
    messages: tuple[str, ...] = ()  # chat: the user message (a system message comes first)
    stored: bool = True  # store_prompts when recorded
    outcome: Outcome | None = None  # the linked suggestion's
    accepted_length: int | None = None
    response: str = ""  # the recorded answer
    finish_reason: str | None = "stop"
    new: str = ""  # what the scripted model answers now
    replay_of: str | None = None
    first_ms: float = 20.0  # recorded latencies
    total_ms: float = 100.0

    @property
    def full_prefix(self) -> str:
        mark = "//" if self.language == "rust" else "#"
        return f"{mark} Path: {self.id}.{'rs' if self.language == 'rust' else 'py'}\n{self.prefix}"

    @property
    def chat(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": "You review code."}] + [
            {"role": "user", "content": m} for m in self.messages
        ]

    @property
    def prompt(self) -> str:
        if self.kind is COMPLETION:
            assert self.template is not None
            return self.template.render(self.full_prefix, self.suffix)
        return json.dumps(self.chat)


M = timedelta(minutes=1)
_CALLS = [
    Call("c1", COMPLETION, 60 * M, template=STARCODER, prefix="def add(a, b):\n    return ",
         outcome=Outcome.ACCEPTED, response="a + b", new="a + b", first_ms=30, total_ms=100),
    Call("r1", REVIEW, 70 * M, model="old-chat", template=None, messages=("review r1",),
         response='{"findings": []}', new='{"findings": []}'),
    Call("a1", ACTION, 80 * M, model="old-chat", template=None, messages=("docstring a1",),
         response=FENCED_PASS, new=FENCED_PASS),
    Call("c2", COMPLETION, 120 * M, prefix="def total_of(items):\n    return ",
         outcome=Outcome.PARTIALLY_ACCEPTED, accepted_length=5, response="total(items)",
         new="total", first_ms=60, total_ms=200),
    Call("r2", REVIEW, 130 * M, model="old-chat", template=None, messages=("review r2",),
         response='{"findings": [', finish_reason="length", new='{"findings": []}'),
    Call("c3", COMPLETION, 180 * M, template=STARCODER, prefix="def double(x):\n    return ",
         outcome=Outcome.ACCEPTED, response="x * 2", new="x * 3", first_ms=40, total_ms=300),
    Call("c4", COMPLETION, 240 * M, prefix="def nothing():\n    return ",
         outcome=Outcome.REJECTED, response="None", new="", first_ms=10, total_ms=400),
    Call("c5", COMPLETION, 300 * M, prefix="def hidden():\n    return ", stored=False,
         outcome=Outcome.ACCEPTED, response="1", new="1"),
    Call("c8", COMPLETION, 360 * M, language="rust",
         prefix="fn main() -> Result<(), ()> {\n    ", suffix="\n}\n",
         outcome=Outcome.ACCEPTED, response="Ok(())", new="Ok(())", first_ms=50, total_ms=500),
    Call("c6", COMPLETION, 30 * M, model="scripted-coder", prefix="def add(a, b):\n    return ",
         response="a + b", new="a + b", replay_of="c1"),
    Call("c7", COMPLETION, timedelta(days=10), prefix="def ancient():\n    return ",
         outcome=Outcome.ACCEPTED, response="old", new="old"),
]  # fmt: skip
CALLS = {call.id: call for call in _CALLS}


def write_history(url: str) -> None:
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    now = repository.now()
    with Session(engine) as session, session.begin():
        for call in _CALLS:
            at = now - call.age
            completion_id = None
            if call.outcome is not None:
                completion_id = f"s-{call.id}"
                session.add(_suggestion(completion_id, call, at))
            event = ModelCallEvent(
                id=call.id,
                kind=call.kind,
                model=call.model,
                endpoint="http://gpu-box:8000/v1/completions",
                params=REVIEW_PARAMS
                if call.kind is REVIEW
                else ACTION_PARAMS
                if call.kind is ACTION
                else {"model": call.model, "max_tokens": 64, "stop": ["\n"], "stream": True},
                prompt=call.prompt,
                response=call.response,
                finish_reason=call.finish_reason,
                prompt_tokens=None,
                completion_tokens=None,
                first_token_ms=call.first_ms,
                total_ms=call.total_ms,
                language=call.language,
                template=call.template.name if call.template and call.kind is COMPLETION else None,
                completion_id=completion_id,
                replay_of=call.replay_of,
            )
            repository.record_model_call(
                session=session, event=event, at=at, store_prompts=call.stored
            )
    engine.dispose()


def _suggestion(ident: str, call: Call, at: Any) -> CompletionRecord:
    return CompletionRecord(
        id=ident,
        parent_id=None,
        created_at=at,
        uri=f"file:///{call.id}",
        language=call.language,
        model=call.model,
        template=call.template.name if call.template else "qwen",
        mode="single_line",
        source="model",
        text_length=len(call.response),
        prompt_chars=len(call.prompt),
        first_token_ms=10.0,
        total_ms=100.0,
        outcome=(call.outcome or Outcome.GENERATED).value,
        accepted_length=call.accepted_length,
        text=call.response if call.stored else None,
        prompt=call.prompt if call.stored else None,
    )


def _called(prompt: str) -> str:
    """The fixture call a completion prompt is for, by its path line."""
    found = re.search(r"Path: (\w+)\.", prompt)
    return found[1] if found else "?"


def answer(body: dict[str, Any]) -> Reply:
    """The scripted completion model: each fixture call's new answer."""
    call = CALLS.get(_called(str(body.get("prompt", ""))))
    if call is None:
        return Reply(text="?")
    return Reply(text=call.new, delay_s=0.2 if call.id == "c1" else 0.0)


def chat_answer(body: dict[str, Any]) -> Reply:
    text = body["messages"][-1]["content"]
    return Reply(text=CALLS[text.split()[-1]].new)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def history(history_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fixture history in SQLite, then in PostgreSQL."""
    write_history(history_url)
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)
    return history_url


@pytest.fixture
def model(scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    scripted_model.reply_with(answer)
    scripted_model.chat_reply_with(chat_answer)
    monkeypatch.setenv("ZI_INFERENCE__URL", scripted_model.url)
    monkeypatch.setenv("ZI_HISTORY__STORE_PROMPTS", "true")
    return scripted_model


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = replay(capsys, *args, "--json")
    report: dict[str, Any] = json.loads(out)
    return code, report, err


def replays(url: str) -> dict[str, dict[str, Any]]:
    """The replay rows of model_calls by the call they replay."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(ModelCallRecord).where(ModelCallRecord.replay))
            return {row.replay_of: dict(row._mapping) for row in rows}
    finally:
        engine.dispose()


def group(report: dict[str, Any], kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [g for g in report["groups"] if g["kind"] == kind]
    assert len(found) == 1, report["groups"]
    return found[0]


# -- the figures -----------------------------------------------------------------------------


def test_figures_of_the_last_week(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, err = replay_json(capsys, "--since", "7d")

    assert code == 0, err
    assert "Traceback" not in err
    assert (report["matched"], report["without_prompt"], report["replayed"], report["failed"]) == (
        9,  # c6 is a replay, c7 too old
        1,  # c5
        8,
        0,
    )
    assert report["left_out_by_limit"] == 0
    assert report["similarity"] == "difflib.SequenceMatcher(autojunk=False).ratio()"
    assert any("history.store_prompts" in note for note in report["notes"])

    completions = group(report, "completion")
    assert (completions["recorded_model"], completions["models"]) == (
        "old-coder",
        ["scripted-coder"],
    )
    assert (completions["calls"], completions["failed"], completions["with_reference"]) == (5, 0, 4)
    assert completions["exact_match"] == {"recorded": 0.75, "new": 0.75}
    assert completions["similarity"] == {"recorded": round(61 / 68, 4), "new": 0.95}
    assert completions["pass_rate"] == {"recorded": 1.0, "new": 0.8}
    assert completions["response_similarity"] is None

    reviews = group(report, "review")
    assert (reviews["recorded_model"], reviews["calls"]) == ("old-chat", 2)
    assert reviews["pass_rate"] == {"recorded": 0.5, "new": 1.0}
    assert reviews["response_similarity"] == round((1 + 28 / 30) / 2, 4)
    assert reviews["exact_match"] == {"recorded": None, "new": None}

    actions = group(report, "code_action")
    assert (actions["calls"], actions["response_similarity"]) == (1, 1.0)
    assert actions["pass_rate"] == {"recorded": None, "new": None}

    # Latency: recorded medians from the history, new ones measured.
    assert completions["first_token_ms"]["recorded"] == 40.0  # c1 c2 c3 c4 c8: 30 60 40 10 50
    assert completions["total_ms"]["recorded"] == 300.0  # 100 200 300 400 500
    by_id = {row["id"]: row for row in report["calls"]}
    assert set(by_id) == {"c1", "c2", "c3", "c4", "c8", "r1", "r2", "a1"}
    assert by_id["c1"]["new"]["first_token_ms"] >= 200  # the scripted 0.2 s
    assert by_id["c1"]["new"]["total_ms"] >= by_id["c1"]["new"]["first_token_ms"]


def test_per_call_rows(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report, _ = replay_json(capsys, "--since", "7d")
    by_id = {row["id"]: row for row in report["calls"]}

    c2 = by_id["c2"]
    assert (c2["accepted"], c2["recorded_template"], c2["template"], c2["mode"]) == (
        "total",
        "qwen",
        "qwen",
        "single_line",
    )
    assert c2["recorded"] == {
        "suggestion": "total(items)",
        "exact": False,
        "similarity": round(10 / 17, 4),
        "passes": True,
        "first_token_ms": 60.0,
        "total_ms": 200.0,
    }
    assert (c2["new"]["suggestion"], c2["new"]["exact"], c2["new"]["similarity"]) == (
        "total",
        True,
        1.0,
    )
    c4 = by_id["c4"]
    assert c4["accepted"] is None
    assert (c4["recorded"]["passes"], c4["new"]["passes"], c4["new"]["similarity"]) == (
        True,
        False,
        None,
    )
    r2 = by_id["r2"]
    assert (r2["recorded"]["passes"], r2["new"]["passes"]) == (False, True)
    assert r2["response_similarity"] == round(28 / 30, 4)
    assert r2["new"]["text"] == '{"findings": []}'


def test_prompts_are_rendered_with_todays_template_and_replays_recorded(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, _ = replay_json(capsys, "--since", "7d")
    assert code == 0

    # c1 and c3 were recorded with StarCoder's sentinels; the served model has Qwen's.
    prompts = {_called(r["prompt"]): r for r in model.requests}
    for ident in ("c1", "c2", "c3", "c4", "c8"):
        call = CALLS[ident]
        assert prompts[ident]["prompt"] == QWEN.render(call.full_prefix, call.suffix)
        assert prompts[ident]["stop"][0] == "\n"  # single-line mode, from the suggestion
        assert prompts[ident]["max_tokens"] == 64  # today's completion.max_tokens_single_line
    chats = {r["messages"][-1]["content"].split()[-1]: r for r in model.chat_requests}
    assert chats["r1"]["messages"] == CALLS["r1"].chat
    # The recorded parameters, today's chat model.
    assert chats["r1"]["response_format"] == {"type": "json_object"}
    assert (chats["r1"]["max_tokens"], chats["r1"]["temperature"]) == (64, 0.0)
    assert (chats["r1"]["model"], chats["a1"]["max_tokens"]) == ("scripted-coder", 128)

    rows = replays(history)
    assert set(rows) == {"c1", "c2", "c3", "c4", "c8", "r1", "r2", "a1"}
    by_id = {row["id"]: row for row in report["calls"]}
    for ident, row in rows.items():
        assert row["id"] == by_id[ident]["replay_id"]
        assert (row["model"], row["kind"], row["error"]) == (
            "scripted-coder",
            CALLS[ident].kind.value,
            None,
        )
    assert rows["c3"]["template"] == "qwen"
    assert rows["c3"]["prompt"] == QWEN.render(CALLS["c3"].full_prefix, "\n")
    assert rows["c3"]["response"] == "x * 3"
    assert json.loads(rows["r1"]["prompt"]) == CALLS["r1"].chat

    # Replays are never replayed again; a second run replays the same originals.
    code, again, _ = replay_json(capsys, "--since", "7d")
    assert (code, again["matched"], again["replayed"]) == (0, 9, 8)


def test_text_report(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = replay(capsys, "--since", "7d")

    assert code == 0, err
    assert "replayed 8 of 9 matching calls" in out
    assert "1 of 9 matching calls had no stored prompt" in out
    assert "ZI_HISTORY__STORE_PROMPTS=true" in " ".join(out.split())
    rows = [line for line in out.splitlines() if "old-coder" in line]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].split("│")[1:-1]]
    assert cells[:9] == [
        "completion",
        "old-coder → scripted-coder",
        "5",
        "0",
        "4",
        "75.0 % → 75.0 %",
        "0.897 → 0.950",
        "100.0 % → 80.0 %",
        "-",
    ]
    assert "difflib SequenceMatcher ratio" in " ".join(out.split())


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "replayed", "matched"),
    [
        (["--kind", "review"], {"r1", "r2"}, 2),
        (["--model", "old-chat"], {"r1", "r2", "a1"}, 3),
        (["--language", "rust"], {"c8"}, 1),
        (["--until", "150m"], {"c3", "c4", "c8", "c7"}, 5),
        (["--since", "150m", "--kind", "completion"], {"c1", "c2"}, 2),
        (["--limit", "2"], {"c1", "r1"}, 10),
    ],
)
def test_filters(
    history: str,
    model: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    replayed: set[str],
    matched: int,
) -> None:
    code, report, _ = replay_json(capsys, *args)

    assert code == 0
    assert {row["id"] for row in report["calls"]} == replayed
    assert report["matched"] == matched
    assert set(replays(history)) == replayed | {"c1"}  # c6, the fixture's replay of c1
    if "--limit" in args:
        assert report["left_out_by_limit"] == 7  # 9 replayable in all, 2 replayed


def test_calls_without_prompts_are_explained(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = replay(capsys, "--since", "301m", "--until", "299m")  # c5 alone

    assert (code, err) == (0, "")
    assert "replayed 0 of 1 matching calls" in out
    assert "1 of 1 matching calls had no stored prompt and cannot be replayed" in " ".join(
        out.split()
    )
    assert "history.store_prompts" in out
    assert model.requests == []

    code, report, _ = replay_json(capsys, "--since", "301m", "--until", "299m")
    assert (report["matched"], report["without_prompt"], report["replayed"]) == (1, 1, 0)


def test_no_history_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite3'}")

    code, out, err = replay(capsys)

    assert (code, err) == (0, "")
    assert "no recorded model calls yet" in out
    assert not (tmp_path / "none.sqlite3").exists()


# -- failures -------------------------------------------------------------------------------------


def test_a_history_from_a_newer_zi_coder_is_one_line_and_exit_1(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine_for(history)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()

    code, _out, err = replay(capsys, "--since", "7d")

    assert code == 1
    assert "Traceback" not in err
    assert "revision 9999, written by a newer zi-coder" in err
    assert model.requests == []  # refused before replaying anything


def test_model_down_is_one_line_per_call_and_exit_1(
    history: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    down = ScriptedModel()
    down.start()
    url = down.url
    down.stop()  # nothing listens there now
    monkeypatch.setenv("ZI_INFERENCE__URL", url)

    code, out, err = replay(capsys, "--since", "7d", "--json")

    assert code == 1
    assert "Traceback" not in err
    failures = [line for line in err.splitlines() if " failed: " in line]
    assert len(failures) == 8, err
    assert all(line.startswith("zi-coder: replay of ") for line in failures)
    report = json.loads(out)
    assert (report["replayed"], report["failed"]) == (8, 8)
    assert all(row["error"] for row in report["calls"])
    assert group(report, "completion")["failed"] == 5


def test_some_failures_still_report_the_rest(
    history: str, model: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    model.fail("/v1/chat/completions", Reply(status=500, text="engine crashed"))

    code, report, err = replay_json(capsys, "--kind", "review", "--concurrency", "1")

    assert code == 0
    (failure,) = [line for line in err.splitlines() if " failed: " in line]
    assert "HTTP 500" in failure and "engine crashed" in failure
    assert (report["replayed"], report["failed"]) == (2, 1)
    rows = replays(history)
    failed = [row for ident, row in rows.items() if ident != "c1" and row["error"]]
    assert len(failed) == 1  # the failed replay is recorded too, with its error
