// Jest reads `testTimeout` only from the root config, not from `projects` entries, so each project
// sets its own here. End-to-end tests start real peers (Envoy, kube-apiserver, Python publishers).
import { jest } from '@jest/globals';

jest.setTimeout(120_000);
