/**
 * When the server stops by itself (a crash), the client starts it again, up to `max`
 * times within `windowMs` (vscode-languageclient's own rule: 4 in 3 minutes); after
 * that it gives up until the user restarts the server (Zi: Restart Server, or a setting
 * that needs a new process), which starts the count afresh: the crashes before that
 * restart say nothing about the new process.
 */
export class RestartPolicy {
  private crashes: number[] = [];

  constructor(
    readonly max = 4,
    readonly windowMs = 3 * 60_000,
  ) {}

  /** The server stopped unexpectedly at `now` (ms): true to restart it, false to give up. */
  crashed(now: number): boolean {
    this.crashes = this.crashes.filter((time) => now - time < this.windowMs);
    if (this.crashes.length >= this.max) {
      return false;
    }
    this.crashes.push(now);
    return true;
  }

  /** The user restarted the server: earlier crashes no longer count. */
  reset(): void {
    this.crashes = [];
  }
}
