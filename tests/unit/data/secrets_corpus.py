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
    # -- names fused with their stem, and keys named after their vendor -----------------------
    _case(
        "env-pgpassword",
        "password",
        "export PGPASSWORD=§\npsql -h db -U app -c 'select 1'\n",
        "abc123xyz",
    ),
    _case("python-fused-dbpassword", "password", "dbpassword = '§'\n", "Tr0ub4dor&3x"),
    _case("yaml-fused-adminpass", "password", "ldap:\n  adminpass: §\n", "S3cret99"),
    _case(
        "env-mysql-pwd-inline",
        "password",
        "MYSQL_PWD=§ mysqldump -uroot app > dump.sql\n",
        "dump-" + _fake(10),
    ),
    _case(
        "env-azure-openai-key",
        "secret",
        "AZURE_OPENAI_ENDPOINT=https://acme.openai.azure.com/\nAZURE_OPENAI_KEY=§\n",
        _fake(32, _HEX),
    ),
    _case("python-azure-key", "secret", 'azure_key = "§"\n', _fake(32, _HEX)),
    _case("js-hmac-key", "secret", 'const hmacKey = "§";\n', _fake(43, _BASE64) + "="),
    _case(
        "azure-storage-connection-string",
        "secret",
        'AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;AccountName=acme;'
        'AccountKey=§;EndpointSuffix=core.windows.net"\n',
        "q" + _fake(85, _BASE64) + "==",
    ),
    _case(
        "azure-service-bus",
        "secret",
        '"ServiceBus": "Endpoint=sb://acme.servicebus.windows.net/;'
        'SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=§"\n',
        "k" + _fake(42, _BASE64) + "=",
    ),
    _case(
        "npmrc-legacy-token",
        "token",
        "@acme:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken=§\n",
        "-".join(_fake(n, _HEX) for n in (8, 4, 4, 4, 12)),
    ),
    # -- command lines ------------------------------------------------------------------------
    _case(
        "curl-user",
        "password",
        "curl -u admin:§ https://api.example.com/v1/status\n",
        "S3cret!42",
    ),
    _case(
        "curl-user-long-quoted",
        "password",
        'curl --user "ci:§" -X POST https://ci.example.com/job/build\n',
        "jenkins-T0ken-77",
    ),
    _case(
        "curl-continued-line",
        "password",
        "curl -sS -X POST \\\n  -u deploy:§ \\\n  https://deploy.example.com/hooks/release\n",
        _fake(16),
    ),
    _case("mysql-fused", "password", "mysql -h db -uroot -p§ app < schema.sql\n", "S3cretRoot"),
    _case(
        "mysqldump-argv",
        "password",
        'subprocess.run(["mysqldump", "-uroot", "-p§", "app"], check=True)\n',
        "R00tPass!",
    ),
    _case(
        "mysql-argv-lines",
        "password",
        'cmd = [\n    "mysql",\n    "-uroot",\n    "-p§",\n    "app",\n]\n',
        "R00t-" + _fake(8),
    ),
    _case("sshpass", "password", "sshpass -p '§' ssh deploy@build-01 uptime\n", "Dep1oy-Pa55"),
    _case(
        "sshpass-argv",
        "password",
        'cmd = ["sshpass", "-p", "§", "scp", "build.tar", "deploy@build-01:/srv"]\n',
        "Dep1oy-" + _fake(6),
    ),
    _case(
        "docker-login",
        "password",
        "docker login -u deploy -p § registry.example.com\n",
        "S3cretDeploy9",
    ),
    _case(
        "mongosh",
        "password",
        'mongosh "mongodb://db:27017" -u admin -p § --authenticationDatabase admin\n',
        "M0ngo-Adm1n",
    ),
    _case("redis-cli", "password", "redis-cli -h cache -a § ping\n", "R3dis-Pa55"),
    _case(
        "sqlcmd",
        "password",
        '/opt/mssql-tools/bin/sqlcmd -S localhost -U sa -P § -Q "SELECT 1"\n',
        "Sa-Passw0rd!",
    ),
    _case(
        "helm-password-flag",
        "password",
        "helm repo add private https://charts.example.com --username ci --password §\n",
        "Ch4rts-R3po",
    ),
    _case("argocd-token-flag", "token", "argocd login cd.example.com --auth-token §\n", _fake(32)),
    _case(
        "redis-requirepass",
        "password",
        "command: redis-server --appendonly yes --requirepass §\n",
        "Redis-S3cret-42",
    ),
    _case(
        "compose-requirepass-list",
        "password",
        'command: ["redis-server", "--requirepass", "§"]\n',
        "Redis-" + _fake(12),
    ),
    _case(
        "keytool-storepass",
        "password",
        'keytool -genkeypair -alias release -keystore release.jks -storepass § -dname "CN=Acme"\n',
        "St0re-" + _fake(8),
    ),
    _case(
        "openssl-passout",
        "password",
        "openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.p12 -passout pass:§\n",
        "P12-" + _fake(10),
    ),
    _case(
        "netrc-one-line",
        "password",
        "machine github.com login octocat password §\n",
        "gh-S3cret-pw",
    ),
    _case(
        "netrc-multi-line",
        "password",
        "machine api.heroku.com\n  login me@example.com\n  password §\n",
        _fake(40, _HEX),
    ),
    # -- more provider tokens -----------------------------------------------------------------
    _case(
        "vault-root-token",
        "vault-token",
        "export VAULT_ADDR=https://vault.example.com:8200\nexport VAULT_TOKEN=§\n",
        "hv" + "s." + _fake(24),
    ),
    _case("vault-login", "vault-token", "vault login §\n", "hv" + "s.CAESI" + _fake(90, _URLSAFE)),
    _case(
        "databricks-env",
        "databricks-token",
        "DATABRICKS_HOST=https://adb-1234567890123456.7.azuredatabricks.net\nDATABRICKS_TOKEN=§\n",
        "da" + "pi" + _fake(32, _HEX),
    ),
    _case(
        "databricks-positional",
        "databricks-token",
        'requests.get(url, auth=("token", "§"))\n',
        "da" + "pi" + _fake(32, _HEX) + "-2",
    ),
    _case(
        "digitalocean-python",
        "digitalocean-token",
        'manager = digitalocean.Manager(token="§")\n',
        "do" + "p_v1_" + _fake(64, _HEX),
    ),
    _case(
        "shopify-python",
        "shopify-token",
        'session = shopify.Session(shop_url, "2024-01", "§")\n',
        "shp" + "at_" + _fake(32, _HEX),
    ),
    _case(
        "mailgun-python",
        "mailgun-key",
        'requests.post(url, auth=("api", "§"), data=message)\n',
        "ke" + "y-" + _fake(32, _HEX),
    ),
    _case(
        "square-env",
        "square-token",
        "SQUARE_ENVIRONMENT=production\nSQUARE_ACCESS_TOKEN=§\n",
        "EA" + "AA" + _fake(60),
    ),
    _case(
        "square-secret",
        "square-token",
        'square_application_secret = "§"\n',
        "sq0" + "csp-" + _fake(43, _URLSAFE),
    ),
    _case(
        "atlassian-python",
        "atlassian-token",
        'jira = JIRA(server=URL, basic_auth=("me@acme.com", "§"))\n',
        "ATA" + "TT3" + _fake(180, _URLSAFE),
    ),
    _case(
        "telegram-bot",
        "telegram-bot-token",
        'bot = telebot.TeleBot("7123456789:§")\n',
        "AA" + _fake(33, _URLSAFE),
    ),
    _case(
        "firebase-fcm",
        "firebase-key",
        'headers = {"Authorization": "key=§", "Content-Type": "application/json"}\n',
        "AA" + "AA" + _fake(7, _URLSAFE) + ":APA91b" + _fake(134, _URLSAFE),
    ),
    _case(
        "docker-hub-pat",
        "docker-token",
        'echo "§" | docker login -u acme --password-stdin\n',
        "dckr" + "_pat_" + _fake(27),
    ),
    _case("groq-python", "groq-key", 'client = Groq(api_key="§")\n', "gs" + "k_" + _fake(52)),
    _case("grafana-cloud", "grafana-token", "GRAFANA_CLOUD_TOKEN=§\n", "gl" + "c_" + _fake(96)),
    _case(
        "langsmith-env",
        "langsmith-key",
        "LANGCHAIN_TRACING_V2=true\nLANGCHAIN_API_KEY=§\n",
        "lsv2" + "_pt_" + _fake(32, _HEX) + "_" + _fake(10, _HEX),
    ),
    _case("replicate-env", "replicate-token", "REPLICATE_API_TOKEN=§\n", "r8" + "_" + _fake(37)),
    _case(
        "postman-header",
        "postman-key",
        "x-api-key: §\n",
        "PM" + "AK-" + _fake(24, _HEX) + "-" + _fake(34, _HEX),
    ),
    _case(
        "newrelic-env",
        "newrelic-key",
        "NEW_RELIC_API_KEY=§\n",
        "NR" + "AK-" + _fake(27, _UPPER_DIGITS),
    ),
    _case(
        "age-identity",
        "age-key",
        "# created: 2024-05-01T10:00:00Z\n"
        "# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n§\n",
        "AGE-SECRET" + "-KEY-1" + _fake(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"),
    ),
    _case(
        "xai-python",
        "xai-key",
        'client = OpenAI(base_url="https://api.x.ai/v1", api_key="§")\n',
        "xa" + "i-" + _fake(80),
    ),
    _case("perplexity-env", "perplexity-key", "PERPLEXITY_API_KEY=§\n", "pp" + "lx-" + _fake(48)),
    _case(
        "tavily-python",
        "tavily-key",
        'tavily = TavilyClient(api_key="§")\n',
        "tv" + "ly-" + _fake(32),
    ),
    _case(
        "discord-webhook",
        "discord-webhook",
        "DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/1234567890123456789/§\n",
        _fake(68, _URLSAFE),
    ),
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
    # Names: a key that names, sorts or is published; a constant given to a `*_key` in code;
    # words, packages and programs that end in `pass`.
    'cache_key = "user:1"\nsort_key = "created_at_v2"\npassword = get_password()\n',
    'idempotency_key = "8f14e45f-ceea-467f-a9b0-0c1d5a3b2e7f"\n'
    'public_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4b1x9Qe1"\n',
    "quant(activation_key=kInt8DynamicTokenSym, weight_key=kFp8StaticChannelSym)\n",
    'LOCAL_STORAGE_KEY = "myAppStateVersion2Cache"\nREDIS_KEY_PREFIX = "zi:cache:v2"\n',
    "Release GPG key: F3EF5F62A87FC27A22E643F714CE4FF5015AA242\n",
    'key = "d41d8cd98f00b204e9800998ecf8427e"\n',
    '"minipass": "^7.1.3",\nGIT_ASKPASS: \'echo\',\nbypass = "enabled"\nlowpass = "butterworth4"\n',
    "PGPASSFILE=/etc/pgpass\nOLDPWD=/home/user\n",
    # Command lines whose flags hold no password, or only a variable.
    "mkdir -p /var/lib/app && mysql -u root -p appdb < schema.sql\n",
    'docker run --rm -u 1000:1000 -v "$PWD:/src" image\ngit push -u origin main\n',
    'sshpass -p "$SSH_PASSWORD" ssh deploy@host\n',
    'curl -u "$API_USER:$API_TOKEN" https://api.example.com\ncurl -u admin: https://x.test\n',
    'mysqldump -uroot -p"$MYSQL_ROOT_PASSWORD" app\n',
    # A line ending in `),` does not continue the command above it, as `",` would.
    'CASES = [\n    ("sshpass -f pw.txt ssh h", "a file"),\n'
    '    ("mkdir -p build/S3cret", "parents"),\n]\n',
    'echo "$TOKEN" | docker login -u ci --password-stdin ghcr.io\n',
    'subprocess.run(["sshpass", "-p", password, "ssh", host])\nargs.append("-p")\n',
    'parser.add_argument("--password", help="the database password")\n'
    'parser.add_argument("-p", "--port", type=int)\n',
    "  --token TOKEN         the API token\n  --password PASSWORD   the password\n",
    "Use --password to set it; --password must be given with --user.\n",
    ".option('--azure-credential', 'Use Microsoft Entra ID for authentication')\n",
    "keytool -list -keystore cacerts -storepass changeit\n--password-file /run/secrets/db\n",
    "openssl rsa -in key.pem -passin env:KEY_PASSWORD -out plain.pem\n",
    "machine api.example.com login me password $NETRC_PASSWORD\npassword reset link expired\n",
    # Prefixes without a token.
    'token_prefix = "hvs."\nVAULT_ADDR=https://vault.example.com:8200\n',
    "key-value store; see docs/key-value.md\nshpat_ tokens are Shopify's; dapi ones Databricks'\n",
]
