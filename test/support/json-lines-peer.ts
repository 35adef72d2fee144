// A test peer in its own process driven by JSON lines: one command per line on stdin, one reply per
// line on stdout (`{"ok": true, ...}` or a refusal), `{"op": "quit"}` to exit. The hack/ publishers
// (kv_publisher.py, vllm_publisher.py) speak it.

import type { ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

export class JsonLinesPeer {
  readonly child: ChildProcess;
  private readonly name: string;
  private readonly lines: Interface;
  private readonly pending: Array<(line: string) => void> = [];
  private readonly buffered: string[] = [];
  private stderrText = '';

  /** `name` says which peer failed in error messages. */
  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    this.lines = createInterface({ input: child.stdout! });
    this.lines.on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter(line);
      else this.buffered.push(line);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderrText += d.toString()));
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** The next line the peer writes, parsed; rejects with its stderr when none comes in time. */
  async next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const line =
      this.buffered.shift() ??
      (await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${this.name} did not answer within ${timeoutMs} ms; stderr: ${this.stderrText}`)),
          timeoutMs,
        );
        this.pending.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      }));
    return JSON.parse(line) as Record<string, unknown>;
  }

  /** Sends one command (bigints as decimal strings: JSON has no uint64) and returns its accepted reply. */
  async command(cmd: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>> {
    const text = JSON.stringify(cmd, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    this.child.stdin!.write(text + '\n');
    const reply = await this.next(timeoutMs);
    if (reply.ok !== true) throw new Error(`${this.name} rejected ${text}: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Asks the peer to quit and waits for it to exit, killing it when it has not after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.stdin!.end(JSON.stringify({ op: 'quit' }) + '\n');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    this.lines.close();
  }
}
