// Simulated time. The engine runs on simulated milliseconds; a RealClock maps them onto the wall
// clock at --time-scale (100 = a hundred simulated seconds per wall second), a ManualClock jumps
// straight to the next deadline so tests run deterministically and fast.

export interface SimClock {
  /** Simulated milliseconds since the clock's epoch (Unix epoch for the real clock). */
  now(): number;
  /** Resolves once now() >= t. */
  waitUntil(t: number): Promise<void>;
}

export class RealClock implements SimClock {
  private readonly scale: number;
  private readonly wallStart = performance.now();
  private readonly simStart = Date.now();

  constructor(timeScale = 1) {
    if (!(timeScale > 0)) throw new Error(`time scale must be > 0, got ${timeScale}`);
    this.scale = timeScale;
  }

  now(): number {
    return this.simStart + (performance.now() - this.wallStart) * this.scale;
  }

  waitUntil(t: number): Promise<void> {
    const wallDelay = (t - this.now()) / this.scale;
    // Timers fire no sooner than ~1 ms; below that the engine runs ahead and catches up later.
    if (wallDelay < 1) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => setTimeout(resolve, wallDelay));
  }
}

export class ManualClock implements SimClock {
  private t: number;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  advance(ms: number): void {
    this.t += ms;
  }

  waitUntil(t: number): Promise<void> {
    if (t > this.t) this.t = t;
    return new Promise((resolve) => setImmediate(resolve));
  }
}
