// Checks that package.json's `zi.*` settings mirror the server's Settings
// (server/settings.py): same keys, defaults, types, choices and bounds.
//
//   npm run check-settings          # needs the project's Python (../.venv, or uv)
//
// The server's schema comes from pydantic (`Settings.model_json_schema()`). A server
// `None` default is "" here (the settings editor cannot edit null; the extension
// sends "" as null). Extension-only keys are listed below.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const CLIENT_ONLY = new Set(["zi.server.path", "zi.trace.server", "zi.acceptanceEvents"]);

const here = dirname(fileURLToPath(import.meta.url));
const extensionRoot = join(here, "..");
const repoRoot = join(extensionRoot, "..");

const DUMP = `
import json
from server.settings import Settings

schema = Settings.model_json_schema()
defs = schema.get("$defs", {})
# Defaults from the model itself (default_factory ones are not in the schema); no env read.
defaults = Settings.model_construct().model_dump(mode="json")

def default_of(path):
    node = defaults
    for part in path:
        node = node[part]
    return node

def resolve(node):
    while "$ref" in node:
        node = {**defs[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node

out = {}
def walk(properties, path):
    for name, prop in properties.items():
        node = resolve(prop)
        if node.get("type") == "object" and "properties" in node:
            walk(node["properties"], path + [name])
            continue
        types = [resolve(option).get("type") for option in node.get("anyOf", [node])]
        enum = node.get("enum")
        for option in node.get("anyOf", []):
            enum = enum or resolve(option).get("enum")
        out["zi." + ".".join(path + [name])] = {
            "types": [t for t in types if t],
            "default": default_of(path + [name]),
            "enum": enum,
            "items": node.get("items", {}).get("type") if isinstance(node.get("items"), dict) else None,
            "minimum": node.get("minimum"),
            "exclusiveMinimum": node.get("exclusiveMinimum"),
        }
walk(schema["properties"], [])
print(json.dumps(out))
`;

function python() {
  if (process.env.ZI_PYTHON) {
    return [process.env.ZI_PYTHON, []];
  }
  const venv = join(repoRoot, ".venv", "bin", "python");
  if (existsSync(venv)) {
    return [venv, []];
  }
  return ["uv", ["run", "--project", repoRoot, "python"]];
}

const [command, prefix] = python();
const server = JSON.parse(
  execFileSync(command, [...prefix, "-c", DUMP], { cwd: repoRoot, encoding: "utf8", env: { ...process.env, PYTHONPATH: repoRoot } }),
);
const manifest = JSON.parse(readFileSync(join(extensionRoot, "package.json"), "utf8"));
const contributed = Object.assign({}, ...manifest.contributes.configuration.map((section) => section.properties));

const problems = [];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

for (const [key, spec] of Object.entries(server)) {
  const mine = contributed[key];
  if (mine === undefined) {
    problems.push(`${key}: not contributed`);
    continue;
  }
  const nullable = spec.types.includes("null");
  const types = spec.types.filter((type) => type !== "null");
  if (types.length !== 1 || types[0] !== mine.type) {
    problems.push(`${key}: type ${mine.type}, server ${spec.types.join("|")}`);
  }
  const expectedDefault = spec.default === null && nullable ? "" : spec.default;
  if (!same(mine.default, expectedDefault)) {
    problems.push(`${key}: default ${JSON.stringify(mine.default)}, server ${JSON.stringify(spec.default)}`);
  }
  if (spec.enum && !same(mine.enum, spec.enum)) {
    problems.push(`${key}: choices ${JSON.stringify(mine.enum)}, server ${JSON.stringify(spec.enum)}`);
  }
  if (spec.items && mine.items?.type !== spec.items) {
    problems.push(`${key}: items ${mine.items?.type}, server ${spec.items}`);
  }
  for (const bound of ["minimum", "exclusiveMinimum"]) {
    if (spec[bound] !== null && spec[bound] !== undefined && mine[bound] !== spec[bound]) {
      problems.push(`${key}: ${bound} ${mine[bound]}, server ${spec[bound]}`);
    }
  }
}
for (const key of Object.keys(contributed)) {
  if (!(key in server) && !CLIENT_ONLY.has(key)) {
    problems.push(`${key}: not a server setting (nor an extension-only one)`);
  }
}

if (problems.length > 0) {
  console.error(`package.json and server/settings.py disagree:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`${Object.keys(server).length} server settings mirrored in package.json`);
