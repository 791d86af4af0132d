"""Pass 1: secrets known by their shape, found anywhere.

Provider tokens with a fixed prefix (AWS, GitHub, GitLab, Slack, OpenAI, Anthropic, Google,
Stripe, Twilio, SendGrid, npm, PyPI, Hugging Face, HashiCorp Vault, DigitalOcean, Mailgun,
Square, Atlassian, Docker Hub, Groq, Grafana Cloud, LangSmith, Replicate, Postman, New Relic,
age, xAI, Perplexity, Tavily, Telegram bots, Firebase Cloud Messaging; Databricks and
Shopify tokens are found by pass 2's scan for `p`, see `assignments`), JWTs, PEM
private-key blocks (the whole block), the password of ``scheme://user:password@host``,
Slack and Discord webhooks, and ``Authorization`` credentials (``Bearer …``, ``Basic …``,
``Token …``).

Speed: a scan for one literal character is the regex engine's fastest loop, so this pass is
one expression per anchor, a character that is rare in code (``A`` of ``AKIA``, ``_`` of
``ghp_``, ``J`` of ``eyJ``, ``-`` of ``sk-``, ``v`` of ``hvs.``), with the characters before
it checked by lookbehinds. Every repetition is bounded, none is nested, and a token starts
only at a word boundary, so a long run like ``sk-sk-…`` is tried once, not at every anchor.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from server.redact.values import (
    Finding,
    credential,
    digit_and_letter,
    is_placeholder,
    looks_generated,
    mixed_case,
)


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str
    # Starts with a literal character (the anchor); what comes before it is in a lookbehind.
    pattern: str
    # How many characters before the anchor belong to the secret (`ghp` of `ghp_…`).
    back: int = 0
    check: Callable[[str], bool] | None = None


def _basic_credentials(value: str) -> bool:
    """`Basic` is followed by base64 of `user:password`; anything else is prose."""
    try:
        return b":" in base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False


def _start(prefix: str) -> str:
    """The last character of a token's fixed prefix (the anchor the search looks for), then
    lookbehinds: the rest of the prefix precedes it, and the token starts a word, so a long
    run like `sk-sk-sk-…` is tried once, not at every anchor."""
    behind = f"(?<={prefix})" if len(prefix) > 1 else ""
    return f"{prefix[-1]}{behind}(?<![\\w-]{prefix})"


_END = r"(?![A-Za-z0-9])"  # the token ends here
_SHAPES: tuple[_Shape, ...] = (
    _Shape("aws-access-key", _start("A") + rf"(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{{16}}{_END}"),
    _Shape("google-api-key", _start("A") + r"Iza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    _Shape("atlassian-token", _start("A") + r"TATT3[A-Za-z0-9_=-]{150,300}+"),
    _Shape("firebase-key", _start("A") + r"AAA[\w-]{7}:APA91b[\w-]{100,200}+"),
    _Shape("square-token", _start("EAAA") + r"[\w-]{60}(?![\w-])", 3, digit_and_letter),
    # Only the part after the bot's number is secret: `123456789:AA…`.
    _Shape("telegram-bot-token", r"A(?<=[0-9]{5}:A)[\w-]{34}(?![\w-])", check=looks_generated),
    _Shape(
        "auth-header",
        _start("A") + r"uthorization[\"'`]?[ \t]{0,8}[:=,][ \t]{0,8}[\"'`]?[Tt]oken[ \t]{1,8}"
        r"(?P<s>[A-Za-z0-9._~+/-]{8,4096})",
        check=credential,
    ),
    _Shape("twilio-key", _start("S") + rf"K[0-9a-fA-F]{{32}}{_END}"),
    _Shape("sendgrid-key", _start("S") + r"G\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])"),
    _Shape(
        "bearer-token",
        _start("B") + r"earer[ \t]{1,8}(?P<s>[A-Za-z0-9._~+/-]{8,4096}={0,2})",
        check=credential,
    ),
    _Shape(
        "basic-auth",
        _start("B") + r"asic[ \t]{1,8}(?P<s>[A-Za-z0-9+/]{8,4096}+={0,2})(?![A-Za-z0-9+/=])",
        check=_basic_credentials,
    ),
    _Shape(
        "jwt",
        _start("eyJ") + r"[\w-]{10,8192}+\.ey[\w-]{10,65536}+\.[\w-]{0,8192}",
        back=2,
    ),
    _Shape("vault-token", _start("hv") + r"[sbr]\.[\w-]{24,300}+(?![\w-])", 1, credential),
    _Shape("github-token", _start("gh[pousr]_") + rf"[A-Za-z0-9]{{36,251}}+{_END}", back=3),
    _Shape("github-token", _start("github_") + r"pat_[A-Za-z0-9_]{22,244}+", back=6),
    _Shape("npm-token", _start("npm_") + rf"[A-Za-z0-9]{{36}}{_END}", back=3),
    _Shape("huggingface-token", _start("hf_") + rf"[A-Za-z0-9]{{30,64}}+{_END}", 2, mixed_case),
    _Shape("stripe-key", _start("[sr]k_") + r"(?:live|test|prod)_[0-9A-Za-z]{10,247}", back=2),
    _Shape("stripe-key", _start("whsec_") + r"[A-Za-z0-9+/=]{24,250}", back=5),
    _Shape("digitalocean-token", _start("do[opr]_v1_") + rf"[a-f0-9]{{64}}{_END}", back=6),
    # Anchored on their first `_`: a `t_` or `a_` filter would let far more of code's `_` in.
    _Shape("docker-token", _start("dckr_") + r"[po]at_[\w-]{27,64}+(?![\w-])", back=4),
    _Shape("langsmith-key", _start("lsv2_") + rf"(?:pt|sk)_[a-f0-9]{{32}}_[a-f0-9]{{10}}{_END}", 4),
    _Shape("groq-key", _start("gsk_") + rf"[A-Za-z0-9]{{52}}{_END}", back=3),
    _Shape("grafana-token", _start("glc_") + r"[A-Za-z0-9+/]{32,400}+={0,2}", back=3),
    _Shape("replicate-token", _start("r8_") + rf"[A-Za-z0-9]{{37}}{_END}", 2, digit_and_letter),
    _Shape("gitlab-token", _start("glpat-") + r"[\w-]{20,255}+(?:\.[\w-]{1,64}+){0,2}", back=5),
    _Shape("anthropic-key", _start("sk-") + r"ant-[\w-]{20,250}", 2, digit_and_letter),
    _Shape(
        "openai-key",
        _start("sk-") + r"(?:proj-|svcacct-|admin-)?[\w-]{20,250}+",
        back=2,
        check=digit_and_letter,
    ),
    _Shape("slack-token", _start("xox[abeoprs]-") + r"[A-Za-z0-9-]{10,250}", 4, digit_and_letter),
    _Shape("slack-token", _start("xapp-") + r"\d-[A-Za-z0-9-]{10,250}", back=4),
    _Shape("pypi-token", _start("pypi-") + r"AgE[\w-]{50,1000}", back=4),
    _Shape("mailgun-key", _start("key-") + rf"[0-9a-f]{{32}}{_END}", 3, digit_and_letter),
    _Shape("square-token", _start("sq0(?:atp|csp)-") + r"[\w-]{22,60}+(?![\w-])", back=6),
    _Shape("postman-key", _start("PMAK-") + rf"[a-f0-9]{{24}}-[a-f0-9]{{34}}{_END}", back=4),
    _Shape("newrelic-key", _start("NRAK-") + rf"[A-Z0-9]{{27}}{_END}", back=4),
    _Shape("age-key", _start("AGE-SECRET-KEY-") + rf"1[02-9AC-HJ-NP-Z]{{58}}{_END}", 14),
    _Shape("xai-key", _start("xai-") + rf"[A-Za-z0-9]{{70,90}}+{_END}", 3, digit_and_letter),
    _Shape("perplexity-key", _start("pplx-") + rf"[A-Za-z0-9]{{48}}{_END}", 4, digit_and_letter),
    _Shape("tavily-key", _start("tvly-") + rf"(?:dev-|prod-)?[A-Za-z0-9]{{32}}{_END}", back=4),
    # BEGIN or END line; the block around it is found in code (`_pem_block`, `_pem_tail`).
    _Shape("private-key", r"B(?<=-----B)EGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----", 5),
    _Shape("private-key", r"E(?<=-----E)ND [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----", 5),
    # `scheme://user:password@host`: greedy, so a raw `@` in the password ends at the last one.
    _Shape(
        "url-password",
        r"/(?<=:/)/[^\s:/?#@'\"`<>]{0,128}:(?P<s>[^\s/?#'\"`<>]{1,256})@",
        check=lambda value: not is_placeholder(value),
    ),
    _Shape(
        "slack-webhook",
        r"/(?<=hooks\.slack\.com/)(?:services|workflows|triggers)/(?P<s>[\w/+-]{20,250})",
    ),
    _Shape(
        "discord-webhook",
        r"/(?:(?<=discord\.com/)|(?<=discordapp\.com/))api/webhooks/[0-9]{5,30}/"
        r"(?P<s>[\w-]{60,100})",
    ),
)


# `_` and `-` are common in code: one cheap look at what comes before them (the end of the
# prefixes above: `ghp_`, `dop_v1_`, `sk-`, `xoxb-`…) spares most of them the lookbehinds.
_BEFORE_ANCHOR = {
    "_": "(?<=[pousrbmfkc128]_)",
    "-": "(?<=[kbaeoprstiyxKY]-)",
}
# A `-` after a blank, a quote or a bracket starts a command-line flag (`-p`, `--user`):
# pass 3's, collected by this pass's scan for `-` rather than by a scan of its own.
_COMMAND_FLAG = r"(?<=[ \t\n\"'`\[(]-)(?:-(?P<long>user)(?![\w-])|(?P<short>[pPua]))"
_FLAG_GROUP = "flag"


def _compile_shapes() -> tuple[re.Pattern[str], ...]:
    """One expression per anchor character: a single literal first character gets the
    engine's tight scanning loop, much faster than its scan for a set of characters.

    Each alternative ends with an empty group `r<i>`, so `lastgroup` says which shape
    matched; the secret part, when narrower than the match, is group `s<i>`.
    """
    by_anchor: dict[str, list[str]] = {}
    for i, shape in enumerate(_SHAPES):
        pattern = shape.pattern.replace("(?P<s>", f"(?P<s{i}>") + f"(?P<r{i}>)"
        by_anchor.setdefault(pattern[0], []).append(pattern[1:])
    compiled = []
    for anchor, rests in by_anchor.items():
        alternatives = f"(?:{'|'.join(rests)})"
        if anchor in _BEFORE_ANCHOR:
            alternatives = f"{_BEFORE_ANCHOR[anchor]}{alternatives}"
        if anchor == "-":
            alternatives = f"(?:{alternatives}|{_COMMAND_FLAG}(?P<{_FLAG_GROUP}>))"
        compiled.append(re.compile(re.escape(anchor) + alternatives, re.ASCII))
    return tuple(compiled)


_SHAPE_PATTERNS = _compile_shapes()
_SECRET_GROUP = tuple(f"s{i}" if "(?P<s>" in s.pattern else None for i, s in enumerate(_SHAPES))

# The longest PEM block looked for; real RSA-4096 and PGP keys are under 8 KB.
_PEM_MAX = 32_768
# One token of a key body: a header (Proc-Type, DEK-Info, Comment), base64, blanks, and the
# quotes, `\n` escapes and joins of a key written as string literals in code.
_PEM_TOKEN = re.compile(
    r"""(?P<header>[A-Za-z][A-Za-z-]{0,40}:[ \t][^\r\n"'`\\]{0,200})
    | (?P<base64>[A-Za-z0-9+/=]{1,4096})
    | [ \t\r\n]{1,4096} | ["'`,;()] | \\[nr]""",
    re.VERBOSE,
)
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# A key line is 64 or 70 characters; a shorter run of letters may be a word.
_PEM_LINE = re.compile(r"[A-Za-z0-9+/=]{16,4096}")
_PEM_LINE_MIN = 16
_PEM_MIN_BASE64 = 40
_PEM_TAIL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n\"'`\\,;()"
)


def _pem_block(text: str, marker_end: int) -> int | None:
    """Where the key block whose BEGIN line ends at `marker_end` ends, or None if no key.

    The body is read token by token up to the END line; if something else comes first (a
    prompt cut inside the key, or code that merely mentions the BEGIN line, such as
    `if line == "-----BEGIN RSA PRIVATE KEY-----":`), the block ends after the last
    base64, and there must be enough of it to be a key.
    """
    pos = body_end = marker_end
    base64_chars = 0
    limit = min(len(text), marker_end + _PEM_MAX)
    while pos < limit and (token := _PEM_TOKEN.match(text, pos)) is not None:
        pos = token.end()
        if token.lastgroup is not None:
            body_end = pos
            if token.lastgroup == "base64" and pos - token.start() >= _PEM_LINE_MIN:
                base64_chars += pos - token.start()
    end_line = _PEM_END.match(text, pos)
    if end_line is not None and base64_chars >= _PEM_LINE_MIN:
        return end_line.end()
    return body_end if base64_chars >= _PEM_MIN_BASE64 else None


def _pem_tail(text: str, end_line: int) -> int | None:
    """Where the body before an END line with no BEGIN (a prompt that starts inside the
    key) starts, or None if what precedes the END line is not a key."""
    start = end_line
    limit = max(0, end_line - _PEM_MAX)
    while start > limit and text[start - 1] in _PEM_TAIL_CHARS:
        start -= 1
    first = _PEM_LINE.search(text, start, end_line)
    if first is None:
        return None
    if sum(map(len, _PEM_LINE.findall(text, first.start(), end_line))) < _PEM_MIN_BASE64:
        return None
    return first.start()


def shape_findings(text: str, flags: list[re.Match[str]]) -> list[Finding]:
    """The shapes in `text`; the command-line flags met on the way are added to `flags`, with
    group `long` (`user`) or `short` (`p`, `P`, `u`, `a`)."""
    findings = []
    for pattern in _SHAPE_PATTERNS:
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            pos = m.start() + 1
            if m.lastgroup == _FLAG_GROUP:
                flags.append(m)
                continue
            index = int(m.lastgroup[1:]) if m.lastgroup else 0
            shape = _SHAPES[index]
            group = _SECRET_GROUP[index]
            start, end = m.span(group) if group else (m.start() - shape.back, m.end())
            if shape.kind == "private-key":
                finding = _pem_finding(text, start, end)
            elif shape.check is None or shape.check(text[start:end]):
                finding = Finding(shape.kind, start, end)
            else:
                continue
            if finding is not None:
                findings.append(finding)
                pos = max(pos, finding.end)
    return findings


def _pem_finding(text: str, start: int, end: int) -> Finding | None:
    if text.startswith("-----BEGIN", start):
        block_end = _pem_block(text, end)
        return None if block_end is None else Finding("private-key", start, block_end)
    block_start = _pem_tail(text, start)
    return None if block_start is None else Finding("private-key", block_start, end)
