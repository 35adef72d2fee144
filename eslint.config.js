// Lint gate (`npm run lint`): type-aware typescript-eslint rules for the mistakes that bite servers
// (floating promises, misused promises), and the import boundaries of ADR 0009. Formatting is
// prettier's job (`prettier --check`), unused exports are knip's (knip.json).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

const components = ['indexer', 'sim', 'router', 'controllers', 'demo', 'gateway'];

/** Files in `from` may not import anything under the listed src/ folders. */
function forbid(from, folders, why) {
  return {
    files: [`src/${from}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: folders.map((f) => ({
            group: [`**/${f}/**`, `**/${f}`],
            message: `${from} may not import src/${f} (${why}; ADR 0009)`,
          })),
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/**', '.cache/**', 'coverage/**', 'src/envoy/proto/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-duplicate-imports': ['error', { allowSeparateTypeImports: true }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Tests may use `any` for response bodies they then assert on field by field.
    files: ['**/*.test.ts', 'e2e/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  // Components never import one another; the router reaches the indexer through src/indexer/public.ts only.
  ...components.map((c) =>
    forbid(
      c,
      components.filter((o) => o !== c && !(c === 'router' && o === 'indexer')),
      'components never import one another',
    ),
  ),
  {
    files: ['src/router/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...components
              .filter((o) => o !== 'router' && o !== 'indexer')
              .map((f) => ({ group: [`**/${f}/**`], message: `router may not import src/${f} (ADR 0009)` })),
            {
              group: ['**/indexer/**', '!**/indexer/public.ts'],
              message: 'the router reaches the indexer only through src/indexer/public.ts (ADR 0009)',
            },
          ],
        },
      ],
    },
  },
  forbid('vllm', [...components, 'tokenize', 'api', 'cli', 'envoy'], 'vLLM protocol code depends on nothing but itself and common'),
  forbid('envoy', [...components, 'vllm', 'tokenize', 'api', 'cli'], "Envoy's protocol depends only on common"),
  forbid('tokenize', [...components, 'vllm', 'api', 'cli'], 'tokenizers depend only on common'),
  forbid('api', [...components, 'vllm', 'tokenize', 'cli'], 'API schemas depend only on common'),
  forbid('common', [...components, 'vllm', 'tokenize', 'api', 'cli'], 'common is the bottom layer'),
  prettier,
);
