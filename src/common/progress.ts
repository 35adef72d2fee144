// A progress indicator for long commands, always on stderr so stdout stays clean for --json: one
// line redrawn in place (\r) on a terminal, plain lines every few seconds otherwise (CI logs, pipes).
// Shows the label, done/total, percentage, rate and the time left.

export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  label?: string;
  /** What is counted, for the rate: "req/s". */
  unit?: string;
  /** Defaults to process.stderr; never stdout. */
  stream?: ProgressStream;
  now?: () => number;
  /** Not a terminal: at most one line per interval (and one each interval while running). Default 5 s. */
  lineIntervalMs?: number;
  /** Terminal: redraw at most this often. Default 100 ms. */
  redrawIntervalMs?: number;
  /** Write on a timer too, so a stalled run still shows its elapsed time. Default true; tests turn it off. */
  timer?: boolean;
}

export interface ProgressState {
  label: string;
  unit: string;
  done: number;
  total: number;
  elapsedMs: number;
}

/** m:ss, or h:mm:ss from an hour. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The numbers part of a progress line: `120/240 50% 12.3 req/s ETA 0:10`. */
export function describeProgress(p: ProgressState): string {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const rate = p.elapsedMs > 0 ? (p.done * 1000) / p.elapsedMs : 0;
  const left = p.total - p.done;
  const eta = left <= 0 ? `elapsed ${formatDuration(p.elapsedMs)}` : rate > 0 ? `ETA ${formatDuration((left / rate) * 1000)}` : 'ETA -';
  const rateText = rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2);
  return `${p.done}/${p.total} ${Math.floor(fraction * 100)}% ${rateText} ${p.unit}/s ${eta}`;
}

const BAR_WIDTH = 24;

function bar(done: number, total: number): string {
  const filled = total > 0 ? Math.round(Math.min(1, done / total) * BAR_WIDTH) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
}

export class Progress {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private start: number;
  private readonly lineIntervalMs: number;
  private readonly redrawIntervalMs: number;
  private readonly unit: string;
  private readonly timer: ReturnType<typeof setInterval> | null = null;
  private label: string;
  private total: number;
  private done = 0;
  private lastWrite = -Infinity;
  private lastWrittenDone = -1;
  private finished = false;

  constructor(options: ProgressOptions) {
    if (!Number.isInteger(options.total) || options.total < 0)
      throw new Error(`progress total: expected a non-negative integer, got ${options.total}`);
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.start = this.now();
    this.lineIntervalMs = options.lineIntervalMs ?? 5000;
    this.redrawIntervalMs = options.redrawIntervalMs ?? 100;
    this.unit = options.unit ?? 'req';
    this.label = options.label ?? '';
    this.total = options.total;
    if (options.timer ?? true) {
      this.timer = setInterval(() => this.render(false), this.tty ? 1000 : this.lineIntervalMs);
      // The indicator must never keep the process alive.
      this.timer.unref();
    }
    if (this.tty) this.render(true);
  }

  /** Counts `n` more done. */
  tick(n = 1): void {
    this.update(this.done + n);
  }

  /** Sets how many are done. */
  update(done: number): void {
    if (this.finished) return;
    this.done = done;
    this.render(false);
  }

  /** Changes the label, keeping the count. */
  setLabel(label: string): void {
    if (this.finished) return;
    this.label = label;
    if (this.tty) this.render(true);
  }

  /** Ends the current phase's line and starts counting a new phase (e.g. the next strategy) from 0. */
  restart(label: string, total: number): void {
    if (this.finished) return;
    this.writeFinal();
    if (this.tty) this.stream.write('\n');
    this.label = label;
    this.total = total;
    this.done = 0;
    this.start = this.now();
    this.lastWrittenDone = -1;
    if (this.tty) this.render(true);
  }

  /** Writes the final state and ends the line; later calls do nothing. */
  finish(): void {
    if (this.finished) return;
    this.writeFinal();
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.stream.write('\n');
  }

  /** The phase's last state, unless a plain line already showed it. */
  private writeFinal(): void {
    if (this.tty || this.lastWrittenDone !== this.done) this.render(true);
  }

  private render(force: boolean): void {
    if (this.finished) return;
    const t = this.now();
    const interval = this.tty ? this.redrawIntervalMs : this.lineIntervalMs;
    if (!force && t - this.lastWrite < interval && this.done < this.total) return;
    this.lastWrite = t;
    this.lastWrittenDone = this.done;
    const numbers = describeProgress({ label: this.label, unit: this.unit, done: this.done, total: this.total, elapsedMs: t - this.start });
    const prefix = this.label ? `${this.label} ` : '';
    if (this.tty) {
      // Cut to the terminal width: a wrapped line cannot be redrawn with \r.
      const line = `${prefix}${bar(this.done, this.total)} ${numbers}`.slice(0, Math.max(20, (this.stream.columns ?? 80) - 1));
      this.stream.write(`\r${line}\x1b[K`);
    } else {
      this.stream.write(`${prefix}${numbers}\n`);
    }
  }
}
