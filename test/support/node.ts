// Which node runs bin/kvroute.js in tests and benchmarks: kvroute's TypeScript runs by Node 24's type
// stripping, so Node 24. Under `npm test` this process already is the repo's pinned Node 24
// (node_modules/.bin comes first on PATH); started another way (a system node 20 on PATH), it is not.

import path from 'node:path';
import { repoRoot } from './repo-root.ts';

/** bin/kvroute.js, the command every kvroute subcommand is started from. */
export const kvrouteBin = path.join(repoRoot, 'bin/kvroute.js');

/** This process's node when it is Node 24 or later, else the repo's pinned one (the `node` devDependency). */
export function nodeBinary(): string {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 24 ? process.execPath : path.join(repoRoot, 'node_modules/.bin/node');
}
