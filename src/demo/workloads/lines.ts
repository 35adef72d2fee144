// Streaming line reader for JSONL workload files: one JSON value per non-blank line, with the
// 1-based line number, and errors that name the file, the line and what was wrong.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { z } from 'zod';

export class WorkloadFileError extends Error {}

export interface JsonLine {
  line: number;
  value: unknown;
}

/** The JSON value of each non-blank line of `path`, read as a stream (traces can be large). */
export async function* readJsonLines(path: string): AsyncGenerator<JsonLine> {
  const input = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    throw new WorkloadFileError(`${path}: cannot read the workload file (${(err as Error).message})`);
  }
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new WorkloadFileError(`${path}:${line}: not valid JSON (${(err as Error).message})`);
      }
      yield { line, value };
    }
  } catch (err) {
    if (err instanceof WorkloadFileError) throw err;
    throw new WorkloadFileError(`${path}: cannot read the workload file after line ${line} (${(err as Error).message})`);
  } finally {
    lines.close();
    input.destroy();
  }
}

/** Parses one line's value with `schema`, or throws naming the file, line and every bad field. */
export function parseLine<T>(schema: z.ZodType<T>, path: string, item: JsonLine): T {
  const result = schema.safeParse(item.value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(line)'}: ${i.message}`).join('; ');
  throw new WorkloadFileError(`${path}:${item.line}: ${issues}`);
}
