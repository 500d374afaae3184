/**
 * A block of status lines redrawn in place on a terminal (cursor up, clear line), refreshed
 * on every change and four times a second so elapsed times tick. Only for TTY output.
 */
export class LiveLines {
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (text: string) => void,
    private readonly render: () => readonly string[],
    private readonly columns = 120,
  ) {}

  start(): void {
    this.draw();
    this.timer = setInterval(() => this.draw(), 250);
    this.timer.unref();
  }

  /** Redraws now (after a change). */
  draw(): void {
    const lines = this.render().map((line) => (line.length > this.columns - 1 ? `${line.slice(0, this.columns - 2)}…` : line));
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) text += `\r\x1b[2K${line}\n`;
    // Lines left over from a longer block are cleared.
    for (let i = lines.length; i < this.drawn; i++) text += '\r\x1b[2K\n';
    this.drawn = Math.max(lines.length, this.drawn);
    this.write(text);
  }

  /** Draws the final state and stops refreshing. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.draw();
  }
}

/** `3.2s`, `1m04s`. */
export function seconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** `$0.0280`, or '' when no cost was reported. */
export function money(cost: number | undefined): string {
  return cost === undefined ? '' : `$${cost.toFixed(4)}`;
}
