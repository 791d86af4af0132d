"""Secrets in realistic code, and ordinary code that must come out of redaction unchanged.

Every secret is fake and assembled at import time (`_fake`, `_pem`), so no secret scanner
(GitHub push protection, gitleaks) finds a token-shaped literal in this file.

A `SecretCase` template marks the secret's place with `§`; redacting the filled-in
template must give the template with `§` replaced by `<redacted:KIND>`.
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass

_rng = random.Random(20240607)
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"
_BASE64 = _ALNUM + "+/"
_URLSAFE = _ALNUM + "-_"


def _fake(length: int, alphabet: str = _ALNUM) -> str:
    """Random characters, with a digit and both cases when the alphabet has them, as real
    tokens do."""
    while True:
        value = "".join(_rng.choice(alphabet) for _ in range(length))
        classes = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
        if all(any(c in cls for c in value) for cls in classes if any(c in cls for c in alphabet)):
            return value


def _pem(label: str, lines: int, *, headers: str = "", indent: str = "", eol: str = "\n") -> str:
    body = eol.join(indent + _fake(64, _BASE64) for _ in range(lines))
    last = indent + _fake(24, _BASE64) + "=="
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    return f"{begin}{eol}{headers}{body}{eol}{last}{eol}{indent}{end}"


def _jwt() -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    claims = b'{"sub":"1234567890","name":"Ada","iat":1516239022,"scope":"admin"}'
    payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    return f"{header}.{payload}.{_fake(43, _URLSAFE)}"


@dataclass(frozen=True)
class SecretCase:
    id: str
    kind: str
    template: str
    secret: str

    @property
    def text(self) -> str:
        return self.template.replace("§", self.secret)

    @property
    def expected(self) -> str:
        return self.template.replace("§", f"<redacted:{self.kind}>")


def _case(id: str, kind: str, template: str, secret: str) -> SecretCase:
    assert template.count("§") == 1, id
    return SecretCase(id, kind, template, secret)


AKIA = "AK" + "IA"
GHP = "gh" + "p_"
SK = "s" + "k-"

SECRETS: list[SecretCase] = [
    # -- AWS ----------------------------------------------------------------------------------
    _case(
        "aws-boto3",
        "aws-access-key",
        'session = boto3.Session(\n    aws_access_key_id="§",\n'
        '    aws_secret_access_key=os.environ["AWS_SECRET"],\n)\n',
        AKIA + _fake(16, _UPPER_DIGITS),
    ),
    _case(
        "aws-env-sts",
        "aws-access-key",
        "AWS_ACCESS_KEY_ID=§\nAWS_REGION=eu-west-1\n",
        "AS" + "IA" + _fake(16, _UPPER_DIGITS),
    ),
    _case(
        "aws-credentials-file",
        "aws-secret-key",
        "[default]\nregion = us-east-1\naws_secret_access_key = §\n",
        _fake(40, _BASE64),
    ),
    _case(
        "aws-secret-python",
        "aws-secret-key",
        'AWS_SECRET_ACCESS_KEY = "§"\nBUCKET = "reports"\n',
        _fake(40, _BASE64),
    ),
    # -- GitHub -------------------------------------------------------------------------------
    _case("github-python", "github-token", 'GITHUB_TOKEN = "§"\n', GHP + _fake(36)),
    _case(
        "github-actions-env",
        "github-token",
        "      - run: gh release create v1.2.0\n        env:\n          GH_TOKEN: §\n",
        "gh" + "o_" + _fake(36),
    ),
    _case(
        "github-js-header",
        "github-token",
        "const res = await fetch(url, {\n  headers: { Authorization: `token §` },\n});\n",
        "gh" + "s_" + _fake(36),
    ),
    _case(
        "github-remote-url",
        "github-token",
        "git remote set-url origin https://x-access-token:§@github.com/acme/api.git\n",
        "gh" + "s_" + _fake(36),
    ),
    _case(
        "github-fine-grained",
        "github-token",
        "export GITHUB_PAT=§\n./scripts/release.sh\n",
        "github" + "_pat_" + _fake(22) + "_" + _fake(59),
    ),
    # -- GitLab -------------------------------------------------------------------------------
    _case(
        "gitlab-clone-url",
        "gitlab-token",
        "git clone https://oauth2:§@gitlab.com/group/project.git\n",
        "gl" + "pat-" + _fake(20, _URLSAFE),
    ),
    _case(
        "gitlab-python",
        "gitlab-token",
        'gl = gitlab.Gitlab("https://gitlab.com", private_token="§")\ngl.auth()\n',
        "gl" + "pat-" + _fake(20, _URLSAFE),
    ),
    # -- Slack --------------------------------------------------------------------------------
    _case(
        "slack-bot-python",
        "slack-token",
        'client = WebClient(token="§")\nclient.chat_postMessage(channel="#ops", text="hi")\n',
        "xo"
        + "xb-"
        + "2401"
        + _fake(8, string.digits)
        + "-"
        + _fake(13, string.digits)
        + "-"
        + _fake(24),
    ),
    _case(
        "slack-user-js",
        "slack-token",
        'const app = new App({\n  token: "§",\n'
        "  signingSecret: process.env.SLACK_SIGNING_SECRET,\n});\n",
        "xo" + "xp-" + _fake(12, string.digits) + "-" + _fake(12, string.digits) + "-" + _fake(32),
    ),
    _case(
        "slack-webhook-env",
        "slack-webhook",
        "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/§\n",
        "T" + _fake(8, _UPPER_DIGITS) + "/B" + _fake(10, _UPPER_DIGITS) + "/" + _fake(24),
    ),
    # -- OpenAI, Anthropic, Google ------------------------------------------------------------
    _case(
        "openai-project",
        "openai-key",
        'from openai import OpenAI\n\nclient = OpenAI(api_key="§")\n',
        SK + "proj-" + _fake(48, _URLSAFE) + "T3Blbk" + "FJ" + _fake(48, _URLSAFE),
    ),
    _case(
        "openai-legacy-env",
        "openai-key",
        "OPENAI_API_KEY=§\nOPENAI_ORG=org-acme\n",
        SK + _fake(20) + "T3Blbk" + "FJ" + _fake(20),
    ),
    _case(
        "openai-curl-bearer",
        "openai-key",
        'curl https://api.openai.com/v1/models \\\n  -H "Authorization: Bearer §"\n',
        SK + _fake(48),
    ),
    _case(
        "anthropic-python",
        "anthropic-key",
        'client = anthropic.Anthropic(api_key="§")\n',
        SK + "ant-api03-" + _fake(93, _URLSAFE) + "AA",
    ),
    _case(
        "anthropic-ts",
        "anthropic-key",
        "const anthropic = new Anthropic({ apiKey: '§' });\n",
        SK + "ant-api03-" + _fake(93, _URLSAFE) + "AA",
    ),
    _case(
        "google-maps-html",
        "google-api-key",
        '<script src="https://maps.googleapis.com/maps/api/js?key=§&callback=initMap"></script>\n',
        "AI" + "za" + _fake(35, _URLSAFE),
    ),
    _case(
        "google-genai",
        "google-api-key",
        'genai.configure(api_key="§")\nmodel = genai.GenerativeModel("gemini-pro")\n',
        "AI" + "za" + _fake(35, _URLSAFE),
    ),
    # -- payments, messaging, registries ------------------------------------------------------
    _case("stripe-python", "stripe-key", 'stripe.api_key = "§"\n', "sk" + "_live_" + _fake(24)),
    _case(
        "stripe-restricted-ruby",
        "stripe-key",
        "Stripe.api_key = '§'\nStripe::Charge.list(limit: 3)\n",
        "rk" + "_live_" + _fake(24),
    ),
    _case(
        "stripe-webhook-secret",
        "stripe-key",
        "STRIPE_WEBHOOK_SECRET=§\n",
        "wh" + "sec_" + _fake(32),
    ),
    _case(
        "twilio-api-key",
        "twilio-key",
        "TWILIO_ACCOUNT_SID=AC" + _fake(32, _HEX) + "\nTWILIO_API_KEY=§\n",
        "S" + "K" + _fake(32, _HEX),
    ),
    _case(
        "twilio-auth-token",
        "token",
        'TWILIO_AUTH_TOKEN = "§"\nclient = Client(ACCOUNT_SID, TWILIO_AUTH_TOKEN)\n',
        _fake(32, _HEX),
    ),
    _case(
        "sendgrid-python",
        "sendgrid-key",
        'sg = SendGridAPIClient("§")\nresponse = sg.send(message)\n',
        "S" + "G." + _fake(22, _URLSAFE) + "." + _fake(43, _URLSAFE),
    ),
    _case(
        "npmrc",
        "npm-token",
        "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=§\n",
        "np" + "m_" + _fake(36),
    ),
    _case(
        "pypirc",
        "pypi-token",
        "[pypi]\n  username = __token__\n  password = §\n",
        "py" + "pi-AgEIcHlwaS5vcmc" + _fake(120, _URLSAFE),
    ),
    _case(
        "pypi-twine-ci",
        "pypi-token",
        "      - run: twine upload -u __token__ -p § dist/*\n",
        "py" + "pi-AgENdGVzdC5weXBpLm9yZw" + _fake(120, _URLSAFE),
    ),
    _case(
        "huggingface-login",
        "huggingface-token",
        'from huggingface_hub import login\n\nlogin(token="§")\n',
        "h" + "f_" + _fake(34, string.ascii_letters),
    ),
    _case(
        "huggingface-env",
        "huggingface-token",
        "HF_TOKEN=§\nHF_HOME=/data/hf\n",
        "h" + "f_" + _fake(34, string.ascii_letters),
    ),
    # -- JWT and Authorization headers --------------------------------------------------------
    _case(
        "jwt-js", "jwt", 'const jwt = "§";\nexpect(decode(jwt).sub).toBe("1234567890");\n', _jwt()
    ),
    _case(
        "jwt-http-file",
        "jwt",
        "GET https://api.example.com/me\nAuthorization: Bearer §\nAccept: application/json\n",
        _jwt(),
    ),
    _case(
        "bearer-opaque",
        "bearer-token",
        "curl -s -H 'Authorization: Bearer §' https://api.example.com/v2/items\n",
        _fake(40, _URLSAFE),
    ),
    _case(
        "basic-auth-header",
        "basic-auth",
        'headers = {"Authorization": "Basic §"}\n',
        base64.b64encode(b"deploy:" + _fake(16).encode()).decode(),
    ),
    _case(
        "drf-token-header",
        "auth-header",
        'requests.get(url, headers={"Authorization": "Token §"})\n',
        _fake(40, _HEX),
    ),
    # -- private keys -------------------------------------------------------------------------
    _case(
        "pem-rsa-python",
        "private-key",
        'PRIVATE_KEY = """§\n"""\n\nsigner = load_pem_private_key(PRIVATE_KEY.encode(), None)\n',
        _pem("RSA " + "PRIVATE KEY", 6),
    ),
    _case(
        "pem-openssh-yaml",
        "private-key",
        "deploy:\n  host: example.org\n  ssh_key: |\n    §\n  user: deploy\n",
        _pem("OPENSSH " + "PRIVATE KEY", 5, indent="    ").removeprefix("    "),
    ),
    _case(
        "pem-json-escaped",
        "private-key",
        '{\n  "type": "service_account",\n  "private_key": "§\\n",\n'
        '  "client_email": "ci@acme.iam.gserviceaccount.com"\n}\n',
        _pem("PRIVATE" + " KEY", 8, eol="\\n"),
    ),
    _case(
        "pem-ec-go",
        "private-key",
        "const key = `§`\n\nfunc signer() crypto.Signer { return parse(key) }\n",
        _pem("EC " + "PRIVATE KEY", 3),
    ),
    _case(
        "pem-encrypted-headers",
        "private-key",
        "§\n",
        _pem(
            "RSA " + "PRIVATE KEY",
            6,
            headers="Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
            + _fake(32, "0123456789ABCDEF")
            + "\n\n",
        ),
    ),
    _case(
        "pem-pgp",
        "private-key",
        "# backup of the release signing key\n§\n",
        _pem("PGP " + "PRIVATE KEY BLOCK", 7, headers="Version: GnuPG v2\n\n"),
    ),
    _case(
        "pem-cut-at-prompt-end",
        "private-key",
        'KEY = """§',
        "-----BEGIN " + "PRIVATE KEY-----\n" + "\n".join(_fake(64, _BASE64) for _ in range(3)),
    ),
    _case(
        "pem-cut-at-prompt-start",
        "private-key",
        '§"""\n\n\ndef load():\n    return KEY\n',
        "\n".join(_fake(64, _BASE64) for _ in range(3)) + "\n-----END " + "PRIVATE KEY-----",
    ),
    # -- passwords in URLs --------------------------------------------------------------------
    _case(
        "url-postgres",
        "url-password",
        'DATABASE_URL = "postgresql://app_user:§@db.internal:5432/app"\n',
        _fake(12) + "&x",
    ),
    _case(
        "url-redis-no-user",
        "url-password",
        "REDIS_URL=redis://:§@cache:6379/0\n",
        _fake(20),
    ),
    _case(
        "url-raw-at-sign",
        "url-password",
        'engine = create_engine("mysql+pymysql://root:§@localhost/test")\n',
        "p@ss" + _fake(8) + "!",
    ),
    _case(
        "url-mongodb-srv",
        "url-password",
        'client = MongoClient("mongodb+srv://admin:§@cluster0.ab1cd.mongodb.net/?retryWrites=true")\n',
        _fake(16),
    ),
    _case(
        "url-amqp-yaml",
        "url-password",
        "celery:\n  broker_url: amqp://worker:§@rabbit:5672//\n",
        _fake(14),
    ),
    # -- assignments named like secrets -------------------------------------------------------
    _case(
        "django-secret-key",
        "secret",
        "DEBUG = False\nSECRET_KEY = '§'\nALLOWED_HOSTS = ['*']\n",
        "django-insecure-" + _fake(50, _ALNUM + "!@#%^&*(-_=+)"),
    ),
    _case(
        "env-db-password", "password", "DB_HOST=db\nDB_PASSWORD=§\nDB_PORT=5432\n", "Sup3r-S3cret!"
    ),
    _case(
        "yaml-bare-password",
        "password",
        "database:\n  user: app\n  password: §\n  host: db\n",
        "hunter2-prod",
    ),
    _case(
        "json-client-secret",
        "secret",
        '{\n  "client_id": "web-app",\n  "client_secret": "§",\n  "redirect_uri": "/cb"\n}\n',
        _fake(32, _URLSAFE),
    ),
    _case(
        "toml-password",
        "password",
        '[database]\nurl = "postgresql://db/app"\npassword = "§"\n',
        _fake(18, _ALNUM + "!$%"),
    ),
    _case(
        "js-api-key", "api-key", 'const apiKey = "§";\nfetch(`/v1?k=${apiKey}`);\n', _fake(32, _HEX)
    ),
    _case(
        "go-password",
        "password",
        'password := "§"\ndb, err := sql.Open("mysql", dsn)\n',
        "Tr0ub4dor&3",
    ),
    _case(
        "java-constant",
        "api-key",
        'public class Config {\n    private static final String API_KEY = "§";\n}\n',
        _fake(40),
    ),
    _case(
        "php-array",
        "password",
        "return [\n    'username' => 'admin',\n    'password' => '§',\n];\n",
        "S3cr3t!pw",
    ),
    _case(
        "python-kwarg",
        "password",
        'conn = psycopg.connect(host="db", user="app", password="§")\n',
        "pg-" + _fake(16),
    ),
    _case(
        "docker-run-env",
        "password",
        "docker run -d -e POSTGRES_PASSWORD=§ -p 5432:5432 postgres:16\n",
        _fake(14),
    ),
    _case(
        "dotnet-connection-string",
        "password",
        '"ConnectionStrings": { "Db": "Server=db;Database=app;User Id=sa;Password=§;" }\n',
        "Sa-Passw0rd!",
    ),
    _case("header-dict", "api-key", 'headers = {"X-API-Key": "§"}\n', _fake(32)),
    _case(
        "ts-annotated-field",
        "token",
        'class Client {\n  private readonly token: string = "§";\n}\n',
        _fake(40, _URLSAFE),
    ),
    _case(
        "python-annotated-default",
        "api-key",
        'class Settings(BaseSettings):\n    api_key: str = "§"\n',
        _fake(32),
    ),
    _case(
        "query-string",
        "api-key",
        'resp = requests.get(f"https://api.example.com/v1/data?api_key=§&limit={n}")\n',
        _fake(24, _HEX) + "a1",
    ),
    _case(
        "k8s-secret",
        "password",
        'kind: Secret\nstringData:\n  password: "§"\n  username: app\n',
        _fake(20),
    ),
    _case(
        "shell-export",
        "token",
        'export API_TOKEN="§"\ncurl -H "X-Token: $API_TOKEN" ...\n',
        _fake(30),
    ),
    _case("ini-pass", "password", "[smtp]\nuser = mailer\npass = §\nport = 587\n", "S3nd!mail"),
    _case("go-struct-literal", "secret", 'cfg := oauth2.Config{ClientSecret: "§"}\n', _fake(24)),
]

# Ordinary code, config and prose that must come out unchanged. Decisions worth stating:
# content digests (sha256:…, integrity hashes) are published, not secret; UUIDs and git
# SHAs are identifiers unless assigned to a secret's name; base64 data passed to a call is
# data; a placeholder, a template or an environment lookup is not a value.
NOT_SECRETS: list[str] = [
    "token = tokenizer.encode(x)\nids = [t.id for t in token]\n",
    "password_field = forms.CharField(widget=forms.PasswordInput)\n",
    'def get_secret(name):\n    return client.get_secret_value(SecretId=name)["SecretString"]\n',
    "--hash=sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \\\n",
    '{ url = "https://files.pythonhosted.org/x.whl", hash = "sha256:'
    + "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    + '", size = 1234 }\n',
    '"integrity": "sha512-'
    + "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
    + '",\n',
    'request_id = "8f14e45f-ceea-467f-a9b0-0c1d5a3b2e7f"\n',
    "  - repo: https://github.com/astral-sh/ruff-pre-commit\n"
    "    rev: 3f2a9c1b7e4d5a6b8c9d0e1f2a3b4c5d6e7f8a9b\n",
    'decoded = base64.b64decode("SGVsbG8sIFdvcmxkIQ==")\n',
    'assert encode(b"\\x00\\x01") == "AAE="\n'
    'blob = load("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ")\n',
    'password = os.environ["DB_PASSWORD"]\n',
    'API_KEY = os.getenv("API_KEY")\n',
    "token = None\npassword = ''\nsecret: str | None = None\n",
    'api_key = "<your-api-key>"\n',
    "env:\n  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n  NPM_TOKEN: ${NPM_TOKEN}\n",
    'password: "{{ vault_db_password }}"\n',
    'SECRET_KEY = "changeme"\nAPI_KEY = "xxxxxxxxxxxxxxxx"\nPASSWORD = "********"\n',
    "OPENAI_API_KEY=your-api-key-here\nANTHROPIC_API_KEY=\n",
    'eos_token = "</s>"\npad_token = "[PAD]"\ntokenizer.pad_token = tokenizer.eos_token\n',
    "max_tokens = 512\nnum_tokens: int = 0\n",
    "class User(BaseModel):\n    password: str\n    api_key: str | None = None\n",
    "def login(username: str, password: str) -> Token:\n    ...\n",
    'if token == "expected":\n    return True\n',
    'auth_type = "bearer"\nauth = "basic"\n',
    '<input type="password" name="password" autocomplete="current-password">\n',
    'raise ValueError("password must be at least 8 characters")\n',
    '{"password": "Password", "token": "Token", "api_key": "API key"}\n',
    'items.sort(key=lambda x: x[0])\ncache_key = f"user:{user_id}"\nkey = "user_id"\n',
    "Bearer authentication is described in RFC 6750.\nBasic usage: see the README.\n",
    "try:\n    value = mapping[name]\nexcept KeyError:\n    pass\n",
    'BASE = "http://localhost:8000/api"\n',
    "git clone git@github.com:owner/repo.git\ngit clone ssh://git@github.com/owner/repo\n",
    'DATABASE_URL = "postgresql://${DB_USER}:${DB_PASSWORD}@db/app"\n',
    'url = f"postgresql://{user}:{password}@{host}/{db}"\n',
    'dsn = "postgresql://user:password@localhost/app"\n',
    'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n    in_key = True\n',
    'PEM_HEADER = b"-----BEGIN PRIVATE KEY-----"\nPEM_FOOTER = b"-----END PRIVATE KEY-----"\n',
    'TOKEN_RE = re.compile(r"\\s+|\\w+")\n_TOKEN = r"(?![A-Za-z0-9])"\n',
    '"""Parse the -----BEGIN OPENSSH PRIVATE KEY----- armor and return the key material."""\n',
    "pip install scikit-learn\nclasses = ['task-sk-1', 'mask-image', 'risk-assessment-form']\n",
    "def test_assignment_findings_with_long_names_are_fine_and_stay_as_they_are():\n",
    'String password = request.getParameter("password");\n',
    "password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt())\n",
    "Keys start with AKIA; tokens with ghp_ or sk-.\n",
    "Your password: must be 8 characters or more.\n",
    "secrets = load_secrets()\n"
    "credentials = service_account.Credentials.from_service_account_file(path)\n",
    "password: str = Field(..., min_length=8)\n",
    'token_url = "https://oauth2.googleapis.com/token"\n',
    'private_key_path = "~/.ssh/id_ed25519"\nssh_key = "~/.ssh/id_rsa.pub"\n',
    "PWD=/home/user/project\n",
    "auth = HTTPBasicAuth(user, password)\n",
    "passes = 3\nbypass = True\n",
    "    :param token: the token to use\n    :param password: the user's password\n",
    "password = pw + salt\ntoken = tok2\n",
    "const { token, password } = req.body;\nconst user = { password: hashed, token: tok };\n",
    'headers["Authorization"] = f"Bearer {token}"\n',
    'STATES = ("pending", "running")\nTOKEN_KIND = "identifier"\n',
]
