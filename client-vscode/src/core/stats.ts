/**
 * `Zi: Show Completion Stats` runs `zi-coder stats`. Servers from before that command
 * existed answer with argparse's "invalid choice", which is not an error the user
 * caused: it gets a plain message instead of the error text.
 */

export interface CommandRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the process could not be started or timed out. */
  readonly error?: string;
}

export type StatsOutcome =
  | { readonly kind: "output"; readonly text: string }
  | { readonly kind: "unsupported"; readonly message: string }
  | { readonly kind: "failed"; readonly message: string };

export const STATS_ARGS: readonly string[] = ["stats"];

export function interpretStats(run: CommandRun): StatsOutcome {
  if (run.error !== undefined) {
    return { kind: "failed", message: `Zi Coder: could not run zi-coder stats: ${run.error}` };
  }
  if (run.code === 0) {
    const text = run.stdout.trim() || run.stderr.trim();
    return { kind: "output", text: text || "(zi-coder stats printed nothing)" };
  }
  if (run.code === 2 && /invalid choice: '?stats'?/.test(run.stderr)) {
    return {
      kind: "unsupported",
      message:
        "Zi Coder: this zi-coder has no `stats` command yet. Every suggestion and what " +
        "you did with it is recorded in the history database (zi.database_url); stats " +
        "come with a later zi-coder release.",
    };
  }
  const detail = lastLine(run.stderr) || lastLine(run.stdout) || `exit status ${run.code}`;
  return { kind: "failed", message: `Zi Coder: zi-coder stats failed: ${detail}` };
}

function lastLine(text: string): string {
  const lines = text.trim().split(/\r?\n/);
  return lines[lines.length - 1]?.trim() ?? "";
}
