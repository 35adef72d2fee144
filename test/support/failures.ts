// Lets test support react when a test or hook fails, so a peer's captured logs are printed next to
// the failure instead of being lost. Jest has no public hook for this; jest-circus (Jest's runner)
// keeps its event handlers in a global array under Symbol.for('EVENT_HANDLERS') (what a custom test
// environment's handleTestEvent is added to), and this module adds one there. Outside jest-circus
// it does nothing, and callers must still report their logs on their own errors (timeouts, exits).

interface CircusEvent {
  name: string;
  test?: { name: string; parent?: { name: string } };
  hook?: { type: string };
  error?: unknown;
}

type CircusHandler = (event: CircusEvent) => void;

const FAILURES = new Set(['test_fn_failure', 'hook_failure']);

function handlers(): CircusHandler[] | undefined {
  const value = (globalThis as Record<symbol, unknown>)[Symbol.for('EVENT_HANDLERS')];
  return Array.isArray(value) ? (value as CircusHandler[]) : undefined;
}

/**
 * Calls `listener` with a description of each test or hook that fails from now on, until the
 * returned function is called. Returns a no-op remover when not running under jest-circus.
 */
export function onTestFailure(listener: (what: string) => void): () => void {
  const list = handlers();
  if (!list) return () => {};
  const handler: CircusHandler = (event) => {
    if (!FAILURES.has(event.name)) return;
    const what = event.name === 'hook_failure' ? `${event.hook?.type ?? 'a'} hook` : `test "${event.test?.name ?? '?'}"`;
    listener(what);
  };
  list.push(handler);
  return () => {
    const i = list.lastIndexOf(handler);
    if (i >= 0) list.splice(i, 1);
  };
}
