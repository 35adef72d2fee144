// The repository root, for tests and benchmarks that read checked-in files or start bin/kvroute.js
// whatever directory jest or node was started from. The one definition: import it, do not recompute.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository root (no trailing separator). */
export const repoRoot = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
