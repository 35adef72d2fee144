// A progress line on stderr for long benchmark steps: rewritten in place on a terminal, a few plain
// lines otherwise (CI logs), and cleared when the step ends.

export interface Progress {
  update(done: number, total: number): void;
  end(note?: string): void;
}

export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = performance.now();
  let lastPrint = 0;
  let lastPct = -1;
  return {
    update(done, total) {
      const now = performance.now();
      const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
      if (stream.isTTY) {
        if (now - lastPrint < 100) return;
        stream.write(`\r${label}: ${pct}% (${done}/${total})   `);
      } else {
        if (pct < lastPct + 25) return;
        stream.write(`${label}: ${pct}%\n`);
        lastPct = pct;
      }
      lastPrint = now;
    },
    end(note) {
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      stream.write(`${stream.isTTY ? '\r\x1b[K' : ''}${label}: done in ${secs}s${note ? ` (${note})` : ''}\n`);
    },
  };
}
