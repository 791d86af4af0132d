import * as fs from "node:fs";
import * as path from "node:path";

/** The extension's root (tests run from out/test/). */
export const ROOT = path.resolve(__dirname, "..", "..");

export function readManifest(): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
}

export function readSource(relative: string): string {
  return fs.readFileSync(path.join(ROOT, relative), "utf8");
}
