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
  it('keeps scoring on the listen host and adds a probe and metrics listener with --metrics-port, over the file', () => {
    const file = { zmq: { bind: 'tcp://*:5557' }, http: { host: '127.0.0.1' }, metrics: { host: '10.0.0.1', port: 9091 } };
    const config = parseIndexerConfig(mergeFlags(file, flagsOf(['--metrics-port', '0'])));
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.metrics).toEqual({ host: '10.0.0.1', port: 0 });
    expect(parseIndexerConfig(mergeFlags({ zmq: { bind: 'tcp://*:5557' } }, flagsOf([]))).metrics).toBeUndefined();
    expect(parseIndexerConfig(mergeFlags({ zmq: { bind: 'tcp://*:5557' } }, flagsOf(['--metrics-port', '9091']))).metrics).toEqual({
      host: '0.0.0.0',
      port: 9091,
    });
  });

  it('merges the input bounds over the file, with documented defaults', () => {
    const defaults = parseIndexerConfig(mergeFlags({ zmq: { bind: 'tcp://*:5557' } }, flagsOf([])));
    expect(defaults.zmq).toMatchObject({ maxBatchBytes: 16 * 1024 * 1024, maxBatchEvents: 65_536, maxMessageBytes: 64 * 1024 * 1024 });
    expect(defaults.index.maxBlocksPerPod).toBe(1 << 20);
    expect(defaults.http.maxBodyBytes).toBe(16 * 1024 * 1024);
    expect(defaults.grpc.maxReceiveBytes).toBe(16 * 1024 * 1024);
    expect(defaults.tokenization.cacheMaxBytes).toBe(64 * 1024 * 1024);
    const flags = flagsOf([
      '--tokenizer-cache-bytes=5000',
      '--max-event-batch-bytes=1000',
      '--max-event-batch-events=10',
      '--zmq-max-message-bytes=4000',
      '--max-blocks-per-pod=50',
      '--max-http-body-bytes=2000',
      '--grpc-max-receive-bytes=3000',
    ]);
    const config = parseIndexerConfig(mergeFlags({ zmq: { bind: 'tcp://*:5557', maxBatchEvents: 5 } }, flags));
    expect(config.zmq).toMatchObject({ maxBatchBytes: 1000, maxBatchEvents: 10, maxMessageBytes: 4000 });
    expect(config.index.maxBlocksPerPod).toBe(50);
    expect(config.http.maxBodyBytes).toBe(2000);
    expect(config.grpc.maxReceiveBytes).toBe(3000);
    expect(config.tokenization.cacheMaxBytes).toBe(5000);
    expect(() => flagsOf(['--max-blocks-per-pod=0'])).toThrow(/--max-blocks-per-pod expects an integer >= 1/);
    expect(() => flagsOf(['--tokenizer-cache-bytes=-1'])).toThrow(/--tokenizer-cache-bytes expects an integer >= 0/);
  });

  it('merges LoRA modules and the source idle timeout over the config file', () => {
    const file = { zmq: { bind: 'tcp://0.0.0.0:5557', sourceIdleTimeoutSeconds: 60 }, loras: { a: '/file/a', b: '/file/b' } };
    const flags = flagsOf(['--lora-module', 'b=/flag/b', '--lora-module', 'c=/flag/c', '--source-idle-timeout', '0']);
    const config = parseIndexerConfig(mergeFlags(file, flags));
    expect(config.loras).toEqual({ a: '/file/a', b: '/flag/b', c: '/flag/c' });
    expect(config.zmq.sourceIdleTimeoutSeconds).toBe(0);
    expect(parseIndexerConfig(mergeFlags(file, flagsOf([]))).zmq.sourceIdleTimeoutSeconds).toBe(60);
  });

  it('merges the central-mode replay template, data-parallel size and default tokenizer over the file', () => {
    const file = { zmq: { bind: 'tcp://0.0.0.0:5557', replayEndpointTemplate: 'tcp://{pod}:6000' }, defaultTokenizer: 'npm:llama3_1' };
    const config = parseIndexerConfig(
      mergeFlags(file, flagsOf(['--replay-endpoint-template', 'tcp://{host}:5558', '--dp-size', '2', '--default-tokenizer', 'none'])),
    );
    expect(config.zmq).toMatchObject({ replayEndpointTemplate: 'tcp://{host}:5558', dataParallelSize: 2 });
    expect(config.defaultTokenizer).toBe('none');
    const fromFile = parseIndexerConfig(mergeFlags(file, flagsOf([])));
    expect(fromFile.zmq).toMatchObject({ replayEndpointTemplate: 'tcp://{pod}:6000', dataParallelSize: 1 });
    expect(fromFile.defaultTokenizer).toBe('npm:llama3_1');
    expect(() => flagsOf(['--dp-size', '0'])).toThrow(/--dp-size expects an integer >= 1, got "0"/);
  });

  it('turns on discovery from flags, taking the namespace from POD_NAMESPACE unless given', () => {
    const flags = flagsOf([
      '--discover-pods',
      '--discovery-selector',
      'app=vllm,tier=gpu',
      '--pod-zmq-port',
      '6557',
      '--pod-replay-port',
      'none',
      '--not-ready-grace',
      '5',
    ]);
    const config = parseIndexerConfig(mergeFlags({}, flags, { POD_NAMESPACE: 'ml' }));
    expect(config.zmq.discovery).toEqual({
      namespace: 'ml',
      selector: { app: 'vllm', tier: 'gpu' },
      servingLabel: { key: 'llm-d.ai/inferenceServing', value: 'true' },
      port: 6557,
      replayPort: null,
      podIdFrom: 'ip',
      notReadyGraceSeconds: 5,
      dataParallelSize: 1,
    });
    const named = parseIndexerConfig(
      mergeFlags({}, flagsOf(['--discover-pods', '--discovery-namespace', 'other']), { POD_NAMESPACE: 'ml' }),
    );
    expect(named.zmq.discovery!.namespace).toBe('other');
    expect(() => parseIndexerConfig(mergeFlags({}, flagsOf(['--discover-pods']), {}))).toThrow(
      /zmq\.discovery\.namespace: expected the namespace to watch/,
    );
  });

  it('lays discovery flags over the file and rejects them when discovery is off', () => {
    const file = { zmq: { discovery: { namespace: 'ml', selector: { app: 'vllm' }, port: 5557 } } };
    const config = parseIndexerConfig(mergeFlags(file, flagsOf(['--pod-zmq-port', '7000']), {}));
    expect(config.zmq.discovery).toMatchObject({ namespace: 'ml', selector: { app: 'vllm' }, port: 7000, replayPort: 5558 });
    expect(() => mergeFlags({ zmq: { bind: 'tcp://*:5557' } }, flagsOf(['--discovery-namespace', 'ml']), {})).toThrow(
      /--discovery-namespace needs --discover-pods/,
    );
    expect(() => flagsOf(['--discovery-selector', 'app'])).toThrow(/--discovery-selector expects KEY=VALUE/);
    expect(() => flagsOf(['--pod-replay-port', 'never'])).toThrow(/--pod-replay-port expects an integer >= 1, got "never"/);
  });

  it('sets the discovery data-parallel size from --discovery-dp-size over the file, only with discovery on', () => {
    const file = { zmq: { discovery: { namespace: 'ml', port: 5557, replayPort: 5600, dataParallelSize: 2 } } };
    expect(parseIndexerConfig(mergeFlags(file, flagsOf([]), {})).zmq.discovery!.dataParallelSize).toBe(2);
    expect(parseIndexerConfig(mergeFlags(file, flagsOf(['--discovery-dp-size', '4']), {})).zmq.discovery!.dataParallelSize).toBe(4);
    expect(() => mergeFlags({ zmq: { bind: 'tcp://*:5557' } }, flagsOf(['--discovery-dp-size', '2']), {})).toThrow(
      /--discovery-dp-size needs --discover-pods/,
    );
    expect(() => flagsOf(['--discovery-dp-size', '0'])).toThrow(/--discovery-dp-size expects an integer >= 1, got "0"/);
  });

  it('rejects a LoRA module without a path, naming the flag and the shape', () => {
    expect(() => flagsOf(['--lora-module', 'sql'])).toThrow(/--lora-module expects NAME=PATH, got "sql"/);
    expect(() => flagsOf(['--source-idle-timeout', 'soon'])).toThrow(/--source-idle-timeout expects an integer >= 0, got "soon"/);
  });
});
