// Jest reads `testTimeout` only from the root config, not from `projects` entries, so each project
// sets its own here. Generous: CI runs on two shared cores where socket and tokenizer set-up can stall.
import { jest } from '@jest/globals';

jest.setTimeout(30_000);
