// Jest reads `testTimeout` only from the root config, not from `projects` entries: the chaos project
// sets its own. A chaos suite starts a whole data plane (or API server) and breaks it for minutes.
import { jest } from '@jest/globals';

jest.setTimeout(600_000);
