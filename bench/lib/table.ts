// Benchmarks print their summaries with the same table helpers as the CLI.
export { fmt, formatTable } from '../../src/common/table.ts';
