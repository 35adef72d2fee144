// Three projects: unit tests live beside the code in src/, tests against real peers live in e2e/, and the
// chaos suite (e2e/chaos/) runs on its own.
const transform = {
  '^.+\\.ts$': [
    '@swc/jest',
    {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'es6' },
    },
  ],
};

// Generous timeouts: CI runs on two shared cores, where socket and tokenizer set-up can stall for seconds.
const common = {
  transform,
  extensionsToTreatAsEsm: ['.ts'],
  testEnvironment: 'node',
};

export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/src/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest-timeout-unit.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.test.ts'],
      // The chaos suite is its own project (npm run test:chaos), with longer timeouts.
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/e2e/chaos/'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest-timeout-e2e.ts'],
      slowTestThreshold: 30,
    },
    {
      ...common,
      // Issue 10's chaos suite, short form: faults under traffic (data plane), API-server and leader
      // faults (operator), and load. Each file starts and breaks a whole system for minutes.
      displayName: 'chaos',
      testMatch: ['<rootDir>/e2e/chaos/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/e2e/chaos/setup-timeout.ts'],
      slowTestThreshold: 300,
    },
  ],
};
