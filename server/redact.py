"""Secret redaction, so that nothing stored (history) or sent (model prompts) holds one.

``redact(text)`` replaces each secret with ``<redacted:KIND>`` and keeps every other
character as it was, so the code around a secret stays readable and diff-able.
``find_secrets(text)`` returns the spans, for tests and log counts.

Two passes:

1. Shapes, found anywhere: provider tokens (AWS, GitHub, GitLab, Slack, OpenAI, Anthropic,
   Google, Stripe, Twilio, SendGrid, npm, PyPI, Hugging Face), JWTs, PEM private-key
   blocks (the whole block), the password of ``scheme://user:password@host`` and
   ``Authorization`` credentials (``Bearer …``, ``Basic …``, ``Token …``).
2. Assignments whose name says secret (``password``, ``DB_PASS``, ``apiKey``,
   ``client_secret``, ``auth_token``, ``"X-Api-Key"``…) in Python, JS/TS, Go, Java, PHP,
   YAML, TOML, INI, .env and JSON forms. Only the value is replaced, and only when it is a
   literal that could be a secret rather than code or a placeholder (``_is_literal_secret``
   says what is left alone and why).

Speed (under 1 ms for 60 KB of code): a scan for one literal character is the regex
engine's fastest loop, so pass 1 is one expression per anchor, a character that is rare in
code (``A`` of ``AKIA``, ``_`` of ``ghp_``, ``J`` of ``eyJ``, ``-`` of ``sk-``), with the
characters before it checked by lookbehinds; pass 2 scans a lower-cased copy for four name
stems and tries the assignment expression only there. Every repetition is bounded, none is
nested, and a token shape starts only at a word boundary, so the time stays linear on
adversarial input (200 KB of ``a``, ``"``, ``=`` or ``sk-sk-…``).

Not covered, by design: secrets split across string concatenations, passphrases with
spaces, XML elements (``<password>…</password>``), bare values that are plain words
(``password: hunter`` could be a variable in JS or a type in Python), and a key body with
neither its BEGIN nor its END line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


# -- pass 1: shapes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: str
    # Starts with a literal character (the anchor); what comes before it is in a lookbehind.
    pattern: str
    # How many characters before the anchor belong to the secret (`ghp` of `ghp_…`).
    back: int = 0
    check: Callable[[str], bool] | None = None


def _digit_and_letter(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _mixed_case(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value)


def _looks_generated(value: str) -> bool:
    """Generated rather than chosen: `token = "upgrades"`, `secret = "my-secret"` and
    `Bearer authentication` are words; a real token mixes digits and letters, or cases, or
    is base64."""
    return _digit_and_letter(value) or _mixed_case(value[1:]) or any(c in "+/=" for c in value)


def _credential(value: str) -> bool:
    return _looks_generated(value) and not _is_placeholder(value)


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
    _Shape(
        "auth-header",
        _start("A") + r"uthorization[\"'`]?[ \t]{0,8}[:=,][ \t]{0,8}[\"'`]?[Tt]oken[ \t]{1,8}"
        r"(?P<s>[A-Za-z0-9._~+/-]{8,4096})",
        check=_credential,
    ),
    _Shape("twilio-key", _start("S") + rf"K[0-9a-fA-F]{{32}}{_END}"),
    _Shape("sendgrid-key", _start("S") + r"G\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])"),
    _Shape(
        "bearer-token",
        _start("B") + r"earer[ \t]{1,8}(?P<s>[A-Za-z0-9._~+/-]{8,4096}={0,2})",
        check=_credential,
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
    _Shape("github-token", _start("gh[pousr]_") + rf"[A-Za-z0-9]{{36,251}}+{_END}", back=3),
    _Shape("github-token", _start("github_") + r"pat_[A-Za-z0-9_]{22,244}+", back=6),
    _Shape("npm-token", _start("npm_") + rf"[A-Za-z0-9]{{36}}{_END}", back=3),
    _Shape("huggingface-token", _start("hf_") + rf"[A-Za-z0-9]{{30,64}}+{_END}", 2, _mixed_case),
    _Shape("stripe-key", _start("[sr]k_") + r"(?:live|test|prod)_[0-9A-Za-z]{10,247}", back=2),
    _Shape("stripe-key", _start("whsec_") + r"[A-Za-z0-9+/=]{24,250}", back=5),
    _Shape("gitlab-token", _start("glpat-") + r"[\w-]{20,255}+(?:\.[\w-]{1,64}+){0,2}", back=5),
    _Shape("anthropic-key", _start("sk-") + r"ant-[\w-]{20,250}", 2, _digit_and_letter),
    _Shape(
        "openai-key",
        _start("sk-") + r"(?:proj-|svcacct-|admin-)?[\w-]{20,250}+",
        back=2,
        check=_digit_and_letter,
    ),
    _Shape("slack-token", _start("xox[abeoprs]-") + r"[A-Za-z0-9-]{10,250}", 4, _digit_and_letter),
    _Shape("slack-token", _start("xapp-") + r"\d-[A-Za-z0-9-]{10,250}", back=4),
    _Shape("pypi-token", _start("pypi-") + r"AgE[\w-]{50,1000}", back=4),
    # BEGIN or END line; the block around it is found in code (`_pem_block`, `_pem_tail`).
    _Shape("private-key", r"B(?<=-----B)EGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----", 5),
    _Shape("private-key", r"E(?<=-----E)ND [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----", 5),
    # `scheme://user:password@host`: greedy, so a raw `@` in the password ends at the last one.
    _Shape(
        "url-password",
        r"/(?<=:/)/[^\s:/?#@'\"`<>]{0,128}:(?P<s>[^\s/?#'\"`<>]{1,256})@",
        check=lambda value: not _is_placeholder(value),
    ),
    _Shape(
        "slack-webhook",
        r"/(?<=hooks\.slack\.com/)(?:services|workflows|triggers)/(?P<s>[\w/+-]{20,250})",
    ),
)


# `_` and `-` are common in code: one cheap look at the character before them (the last of
# the prefixes above: `ghp_`, `npm_`, `sk-`, `xoxb-`…) spares most of them the lookbehinds.
_BEFORE_ANCHOR = {"_": "pousrbmfkc", "-": "kbaeoprsti"}


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
        before = f"(?<=[{_BEFORE_ANCHOR[anchor]}]{anchor})" if anchor in _BEFORE_ANCHOR else ""
        pattern = f"{re.escape(anchor)}{before}(?:{'|'.join(rests)})"
        compiled.append(re.compile(pattern, re.ASCII))
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


def _shape_findings(text: str) -> list[Finding]:
    findings = []
    for pattern in _SHAPE_PATTERNS:
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            pos = m.start() + 1
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


# -- pass 2: assignments --------------------------------------------------------------------

# Looked for in the lower-cased text, one scan each (`pass`/`pwd`, `secret`/`cred`,
# `token`/`key`, `auth`); from each hit, inside a name, the expression below is tried.
_STEMS = tuple(map(re.compile, (rb"p(?:ass|wd)", rb"cre[dt]", rb"k(?:(?<=tok)en|ey)", rb"auth")))
_ASSIGNMENT = re.compile(
    rb"""
    [\w.-]{0,64}                                    # the rest of the name
    (?:["'`]\]?|\])?                                # "name" or ["name"] or [name]
    [ \t]{0,16}
    (?P<op>
        :=|=>|\?=|=(?![=~>])
      | :[ \t]{0,8}[a-z_][\w.\[\]|, ]{0,60}?=(?![=>])   # an annotation: `key: str = `
      | :(?![:=])
    )
    (?P<space>[ \t]{0,16})
    (?:
        (?P<prefix>[rbuf]{0,2})                     # r"..." is a regex or a path
        (?: "(?P<dq>[^"\r\n]{0,512})(?:"|\Z)
          | '(?P<sq>[^'\r\n]{0,512})(?:'|\Z)
          | `(?P<bq>[^`\r\n]{0,512})(?:`|\Z)
        )
      | (?P<bare>[^\s"'`,;&)\]}]{1,256})
    )
    """,
    re.VERBOSE,
)
_VALUE_GROUPS = ("dq", "sq", "bq", "bare")
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
_LINE_END = re.compile(rb"[ \t]*(?:#|\r|\n|\Z)")
_NAME_END = re.compile(rb"[^a-z0-9_.-]|\Z")
_NAME_MAX = 64
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "passcode"})
# The word before `key` that makes it a secret: `api_key`, `secretKey`, `PRIVATE_KEY`.
_KEY_QUALIFIERS = {"api": "api-key", "private": "private-key"} | dict.fromkeys(
    ("secret", "access", "signing", "encryption", "master", "client", "app", "consumer",
     "license", "subscription", "account", "service"),
    "secret",
)  # fmt: skip
_LAST_WORD_KINDS = {
    "secret": "secret", "apikey": "api-key", "secretkey": "secret", "accesskey": "secret",
    "secretaccesskey": "secret", "clientsecret": "secret", "privatekey": "private-key",
    "token": "token", "authtoken": "token", "accesstoken": "token", "credential": "credentials",
    "credentials": "credentials", "creds": "credentials", "auth": "auth",
}  # fmt: skip
# `eos_token = "</s>"`, `next_token = "abc"`: tokenizer vocabulary and cursors.
_NOT_CREDENTIAL_TOKENS = frozenset(
    {
        "bos", "eos", "eot", "pad", "unk", "mask", "cls", "sep", "stop", "start", "end",
        "special", "fim", "im", "prefix", "suffix", "middle", "next", "page", "continuation",
        "max", "min", "num", "first", "last", "current", "cur", "prev", "word", "new",
    }
)  # fmt: skip
# Values that name a scheme or stand in for a secret: compared lower-cased, without `_-. `.
_NOT_SECRETS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "secret", "token", "apikey", "key", "string",
        "str", "none", "null", "nil", "undefined", "true", "false", "test", "todo", "tbd",
        "fixme", "changeme", "changeit", "basic", "bearer", "digest", "oauth", "oauth2", "jwt",
        "session", "cookie", "header", "query", "ntlm", "kerberos", "required", "optional",
        "hidden", "secure", "credential", "credentials", "creds", "auth", "privatekey",
        "secretkey", "accesstoken", "authtoken", "passphrase",
    }
)  # fmt: skip
_PLACEHOLDER = re.compile(
    r"""
    [{}]                          # a template: {password}, ${VAR}, {{ vault_pw }}
    | ^[$%<]                      # $VAR, %(pw)s, <your-token>
    | ^\[.*\]$                    # [MASK]
    | %[sd] | \\[ntr]             # formats and text with escapes
    | x{4} | \*{3} | \.{3} | •
    | ^\#[0-9a-f]{3,8}$          # a colour
    | change[_-]?me | example | placeholder | dummy | redacted | replace[_-]?me | insert[_-]
    | ^your[_-]? | [_-]here$
    | (?-i:^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$)   # an environment variable's name, not its value
    """,
    re.VERBOSE | re.IGNORECASE,
)
_SEPARATORS = str.maketrans("", "", "_-. ")
_WHITESPACE = re.compile(r"\s")
_NUMBER = re.compile(r"[+-]?(?:0[xob][\da-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _is_placeholder(value: str) -> bool:
    return (
        value.lower().translate(_SEPARATORS) in _NOT_SECRETS
        or len(set(value)) == 1
        or _PLACEHOLDER.search(value) is not None
    )


@functools.lru_cache(maxsize=1024)
def _kind_of_name(name: str) -> str | None:
    """The kind of secret a name holds, judged by its last word: `db_password` yes,
    `password_field`, `token_type` and `tokenizer` no."""
    words = [w.lower() for w in _WORDS.findall(name)]
    while words and words[-1].isdigit():
        words.pop()
    if not words:
        return None
    last = words[-1]
    previous = words[-2] if len(words) > 1 else ""
    if last in _PASSWORD_WORDS:
        return "password"
    if last == "token" and previous in _NOT_CREDENTIAL_TOKENS:
        return None
    kind = _KEY_QUALIFIERS.get(previous) if last == "key" else _LAST_WORD_KINDS.get(last)
    if kind == "secret" and "aws" in words:
        return "aws-secret-key"
    return kind


def _is_literal_secret(value: str, *, quoted: bool, op: str, spaced: bool, name: str) -> bool:
    """Whether an assigned value is a literal that could be a secret.

    Left alone: values under 4 characters; placeholders and templates (`changeme`, `xxxx`,
    `***`, `<token>`, `${VAR}`, `{{ pw }}`, `%(pw)s`, `[MASK]`); the name itself
    (`"password": "Password"`) and scheme words (`auth = "basic"`); environment variable
    names (`"OPENAI_API_KEY"`); paths; URLs (their password is pass 1's business); quoted
    text with spaces or escapes (prose: `"Enter your token"`). A bare value must also not
    be code: no calls, subscripts or attribute paths (`os.environ["X"]`,
    `settings.api_key`), numbers, keywords (`None`, `true`), YAML tags or anchors; and a
    bare plain identifier counts only if it has a digit and is written like config
    (`PASSWORD=hunter2`, `password: hunter2`), not like code (`password = pw2`).
    """
    if len(value) < 4 or (quoted and _WHITESPACE.search(value)):
        return False
    if _is_placeholder(value) or "://" in value:
        return False
    if name.lower().translate(_SEPARATORS).endswith(value.lower().translate(_SEPARATORS)):
        return False  # `"password": "Password"`, `ACCESS_TOKEN_HEADER = "X-Access-Token"`
    if value.startswith(("/", "./", "../", "~/")) or value.endswith(":"):
        return False
    if quoted:
        return True
    if value[0] in "*&!@~.|>#-" or any(c in value for c in "([{"):
        return False
    if _NUMBER.fullmatch(value) or _DOTTED.fullmatch(value):
        return False
    if _IDENTIFIER.fullmatch(value):
        return any(c.isdigit() for c in value) and not spaced and op in ("=", ":")
    return True


def _colon_value(lowered: bytes, m: re.Match[bytes], group: str) -> bool:
    """Whether the value after `name:` is one: a YAML or JS value is quoted, or bare and then
    alone on its line (`token: the token to use` is prose, `user:password@host` a URL, and
    `` `get_token()` `` after a colon is Markdown)."""
    if group == "bq":
        return False
    if group != "bare":
        return True
    return bool(m.group("space")) and _LINE_END.match(lowered, m.end()) is not None


def _name_end(lowered: bytes, pos: int) -> int:
    m = _NAME_END.search(lowered, pos)
    assert m is not None  # `\Z` always matches
    return m.start()


def _assignment_findings(text: str) -> list[Finding]:
    # Bytes: lower-casing them is fast, keeps offsets, and touches only ASCII letters.
    raw = text.encode("utf-8", "surrogatepass")
    lowered = raw.lower()
    hits = sorted({m.start() for stem in _STEMS for m in stem.finditer(lowered)})
    findings = []
    done = 0  # hits before this are inside a name already judged, or a value already taken
    for hit in hits:
        if hit < done:
            continue
        name_end = _name_end(lowered, hit)
        done = name_end  # any other hit in this name reaches the same verdict
        if (m := _ASSIGNMENT.match(lowered, hit)) is None:
            continue
        name_start = hit
        while name_start > max(0, hit - _NAME_MAX) and lowered[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        name = raw[name_start:name_end].decode("ascii")
        if (kind := _kind_of_name(name)) is None:
            continue
        group = next(g for g in _VALUE_GROUPS if m.start(g) >= 0)
        op = m.group("op").decode("ascii")
        if b"r" in (m.group("prefix") or b""):
            continue  # r"...": a regex or a path
        if op == ":" and not _colon_value(lowered, m, group):
            continue
        before_op = lowered[m.start("op") - 1 : m.start("op")]
        spaced = op[0] != ":" and (bool(m.group("space")) or before_op in (b" ", b"\t"))
        start, end = m.span(group)
        value = raw[start:end].decode("utf-8", "surrogatepass")
        if _is_literal_secret(value, quoted=group != "bare", op=op, spaced=spaced, name=name) and (
            kind == "password" or _looks_generated(value)
        ):
            findings.append(Finding(kind, start, end))
            done = end
    if findings and not text.isascii():
        findings = _char_offsets(raw, findings)
    return findings


def _char_offsets(raw: bytes, findings: list[Finding]) -> list[Finding]:
    """The findings with UTF-8 byte offsets turned into character offsets."""
    converted = []
    byte = char = 0
    for finding in findings:  # in order, so each stretch is decoded once
        start = char + len(raw[byte : finding.start].decode("utf-8", "surrogatepass"))
        end = start + len(raw[finding.start : finding.end].decode("utf-8", "surrogatepass"))
        converted.append(Finding(finding.kind, start, end))
        byte, char = finding.end, end
    return converted


# Kinds that say where a secret is rather than what it is: `Bearer sk-…` is an OpenAI key.
_GENERIC_KINDS = frozenset(
    {"bearer-token", "basic-auth", "auth-header", "url-password", "password", "secret", "token",
     "api-key", "credentials", "auth", "aws-secret-key"}
)  # fmt: skip


# -- API ----------------------------------------------------------------------------------


def find_secrets(text: str) -> list[Finding]:
    """The secrets in `text`, in order, never overlapping (overlaps are merged)."""
    found = _shape_findings(text) + _assignment_findings(text)
    # Where two findings cover the same text, the more specific kind names it.
    found.sort(key=lambda f: (f.start, -f.end, f.kind in _GENERIC_KINDS))
    merged: list[Finding] = []
    for finding in found:
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            if finding.end > last.end:
                merged[-1] = Finding(last.kind, last.start, finding.end)
            continue
        merged.append(finding)
    return merged


def redact(text: str) -> str:
    """`text` with each secret replaced by `<redacted:KIND>`; everything else unchanged."""
    parts = []
    pos = 0
    for finding in find_secrets(text):
        parts.append(text[pos : finding.start])
        parts.append(f"<redacted:{finding.kind}>")
        pos = finding.end
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)
