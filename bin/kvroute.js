#!/usr/bin/env node
// Entry point for `npx kvroute`: Node 24 runs the TypeScript sources directly (type stripping).
import { main } from '../src/cli/main.ts';

main(process.argv).catch((err) => {
  process.stderr.write(`kvroute: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
