import { describe, it, expect } from '@jest/globals';
import { parseIndexerConfig } from '../api/indexer-config.ts';
import { command, mergeFlags } from './indexer.ts';

/** The flags commander parses from `args`, without running the server. */
function flagsOf(args: string[]): Parameters<typeof mergeFlags>[1] {
  const cmd = command().exitOverride();
  cmd.action(() => {});
  cmd.parse(args, { from: 'user' });
  return cmd.opts() as Parameters<typeof mergeFlags>[1];
}

describe('kvroute indexer flags', () => {
  it('merges LoRA modules and the source idle timeout over the config file', () => {
    const file = { zmq: { bind: 'tcp://0.0.0.0:5557', sourceIdleTimeoutSeconds: 60 }, loras: { a: '/file/a', b: '/file/b' } };
    const flags = flagsOf(['--lora-module', 'b=/flag/b', '--lora-module', 'c=/flag/c', '--source-idle-timeout', '0']);
    const config = parseIndexerConfig(mergeFlags(file, flags));
    expect(config.loras).toEqual({ a: '/file/a', b: '/flag/b', c: '/flag/c' });
    expect(config.zmq.sourceIdleTimeoutSeconds).toBe(0);
    expect(parseIndexerConfig(mergeFlags(file, flagsOf([]))).zmq.sourceIdleTimeoutSeconds).toBe(60);
  });

  it('rejects a LoRA module without a path, naming the flag and the shape', () => {
    expect(() => flagsOf(['--lora-module', 'sql'])).toThrow(/--lora-module expects NAME=PATH, got "sql"/);
    expect(() => flagsOf(['--source-idle-timeout', 'soon'])).toThrow(/--source-idle-timeout expects an integer >= 0, got "soon"/);
  });
});
