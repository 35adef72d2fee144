import { describe, it, expect } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseIndexerConfig, readIndexerConfigFile } from './indexer-config.ts';

describe('indexer config', () => {
  it('fills every default from a minimal central-mode config', () => {
    expect(parseIndexerConfig({ zmq: { bind: 'tcp://0.0.0.0:5557' } })).toEqual({
      zmq: {
        bind: 'tcp://0.0.0.0:5557',
        pods: [],
        sourceIdleTimeoutSeconds: 0,
        dataParallelSize: 1,
        maxBatchBytes: 16 * 1024 * 1024,
        maxBatchEvents: 65_536,
        maxMessageBytes: 64 * 1024 * 1024,
      },
      http: { host: '0.0.0.0', port: 8081, maxBodyBytes: 16 * 1024 * 1024 },
      grpc: { host: '0.0.0.0', port: 9004, maxReceiveBytes: 16 * 1024 * 1024 },
      blockSize: 16,
      hashSeed: null,
      engineKeyParity: false,
      loras: {},
      index: { maxBlocksPerPod: 1 << 20 },
      tierWeights: { gpu: 1.0, cpu: 0.8 },
      tokenizers: {},
      defaultTokenizer: 'npm:qwen3',
      tokenization: { cacheMaxBytes: 64 * 1024 * 1024, workers: 1 },
      logLevel: 'info',
    });
  });

  it('accepts per-pod mode and a numeric hash seed as its string', () => {
    const c = parseIndexerConfig({
      zmq: { pods: [{ name: 'p0', endpoint: 'tcp://10.0.0.1:5557', replayEndpoint: 'tcp://10.0.0.1:5558' }] },
      hashSeed: 0,
    });
    expect(c.zmq.pods[0]).toEqual({ name: 'p0', endpoint: 'tcp://10.0.0.1:5557', replayEndpoint: 'tcp://10.0.0.1:5558' });
    expect(c.hashSeed).toBe('0');
  });

  it('names every bad field and what was expected', () => {
    let message = '';
    try {
      parseIndexerConfig(
        { zmq: { pods: [{ name: 'a', endpoint: 'http://x' }] }, blockSize: 0, tierWeights: { gpu: -1 }, colour: 'red', logLevel: 'loud' },
        'f.yaml',
      );
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('invalid indexer config f.yaml');
    expect(message).toMatch(/zmq\.pods\.0\.endpoint: expected a ZMQ endpoint/);
    expect(message).toMatch(/blockSize: .*>=1/);
    expect(message).toMatch(/tierWeights\.gpu: /);
    expect(message).toMatch(/colour: unknown field/);
    expect(message).toMatch(/logLevel: /);
  });

  it('takes LoRA adapter paths and a source idle timeout, naming a bad one', () => {
    const c = parseIndexerConfig({ zmq: { bind: 'tcp://0.0.0.0:5557', sourceIdleTimeoutSeconds: 0 }, loras: { sql: '/adapters/sql' } });
    expect(c.loras).toEqual({ sql: '/adapters/sql' });
    expect(c.zmq.sourceIdleTimeoutSeconds).toBe(0);
    expect(() => parseIndexerConfig({ zmq: { bind: 'tcp://0.0.0.0:5557', sourceIdleTimeoutSeconds: -1 }, loras: { sql: '' } })).toThrow(
      /zmq\.sourceIdleTimeoutSeconds: [\s\S]*loras\.sql: expected the adapter path vLLM was given/,
    );
  });

  it('takes a central-mode replay endpoint template and data-parallel size, naming a bad one', () => {
    const c = parseIndexerConfig({ zmq: { bind: 'tcp://0.0.0.0:5557', replayEndpointTemplate: 'tcp://{pod}:5558', dataParallelSize: 4 } });
    expect(c.zmq).toMatchObject({ replayEndpointTemplate: 'tcp://{pod}:5558', dataParallelSize: 4 });
    expect(() => parseIndexerConfig({ zmq: { bind: 'tcp://0.0.0.0:5557', replayEndpointTemplate: 'tcp://10.0.0.1:5558' } })).toThrow(
      /zmq\.replayEndpointTemplate: expected a ZMQ endpoint with \{pod\} or \{host\} in it/,
    );
    expect(() => parseIndexerConfig({ zmq: { bind: 'ipc:///tmp/kv', dataParallelSize: 2 } })).toThrow(
      /zmq\.dataParallelSize: expected zmq.bind as tcp:\/\/HOST:PORT with a fixed port/,
    );
  });

  it('requires a bind endpoint, at least one pod or discovery', () => {
    expect(() => parseIndexerConfig({})).toThrow(
      /zmq: expected zmq.bind \(central mode\), at least one zmq.pods entry \(per-pod mode\) or zmq.discovery/,
    );
  });

  it('fills discovery defaults: vLLM ports 5557/5558, pod id from the IP, a 30 s NotReady grace, one data-parallel rank', () => {
    const c = parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', selector: { app: 'vllm' } } } });
    expect(c.zmq.discovery).toEqual({
      namespace: 'ml',
      selector: { app: 'vllm' },
      servingLabel: { key: 'llm-d.ai/inferenceServing', value: 'true' },
      port: 5557,
      replayPort: 5558,
      podIdFrom: 'ip',
      notReadyGraceSeconds: 30,
      dataParallelSize: 1,
    });
    expect(parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', replayPort: null } } }).zmq.discovery!.replayPort).toBeNull();
  });

  it('names a missing namespace and bad discovery fields', () => {
    expect(() => parseIndexerConfig({ zmq: { discovery: {} } })).toThrow(
      /zmq\.discovery\.namespace: expected the namespace to watch: .*POD_NAMESPACE/,
    );
    let message = '';
    try {
      parseIndexerConfig({
        zmq: { discovery: { namespace: 'ML_ns', selector: { 'bad key!': 'x' }, port: 0, podIdFrom: 'name', extra: 1 } },
      });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/zmq\.discovery\.namespace: expected a namespace name/);
    expect(message).toMatch(/zmq\.discovery\.selector\.bad key!: expected a Kubernetes label key/);
    expect(message).toMatch(/zmq\.discovery\.port: /);
    expect(message).toMatch(/zmq\.discovery\.podIdFrom: /);
    expect(message).toMatch(/zmq\.discovery\.extra: unknown field/);
  });

  it('accepts data-parallel discovery whose publisher and replay port ranges are apart', () => {
    const c = parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', port: 5557, replayPort: 5600, dataParallelSize: 4 } } });
    expect(c.zmq.discovery).toMatchObject({ port: 5557, replayPort: 5600, dataParallelSize: 4 });
    expect(
      parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', replayPort: null, dataParallelSize: 8 } } }).zmq.discovery!
        .dataParallelSize,
    ).toBe(8);
  });

  it('rejects data-parallel discovery whose rank ports overlap or run past 65535, naming the field', () => {
    // vLLM's defaults 5557/5558 cannot serve two ranks: rank 1 would publish on rank 0's replay port.
    expect(() => parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', dataParallelSize: 2 } } })).toThrow(
      /zmq\.discovery\.replayPort: expected publisher ports 5557-5558 and replay ports 5558-5559 not to overlap/,
    );
    expect(() =>
      parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', port: 65535, replayPort: null, dataParallelSize: 2 } } }),
    ).toThrow(/zmq\.discovery\.dataParallelSize: expected port \+ dataParallelSize - 1 <= 65535: rank 1 would publish on 65536/);
    expect(() =>
      parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', port: 5557, replayPort: 65534, dataParallelSize: 3 } } }),
    ).toThrow(/zmq\.discovery\.dataParallelSize: expected replayPort \+ dataParallelSize - 1 <= 65535/);
    expect(() => parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', dataParallelSize: 0 } } })).toThrow(
      /zmq\.discovery\.dataParallelSize: /,
    );
  });

  it('reads YAML and JSON files and reports unreadable ones', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-cfg-'));
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'zmq:\n  bind: tcp://127.0.0.1:5557\nblockSize: 32\n');
    fs.writeFileSync(path.join(dir, 'b.json'), '{"zmq": {"bind": "tcp://127.0.0.1:5557"}, "tokenizers": {"*": "npm:qwen3"}}');
    fs.writeFileSync(path.join(dir, 'c.yaml'), '- a list\n');
    expect(parseIndexerConfig(await readIndexerConfigFile(path.join(dir, 'a.yaml'))).blockSize).toBe(32);
    expect(parseIndexerConfig(await readIndexerConfigFile(path.join(dir, 'b.json'))).tokenizers).toEqual({ '*': 'npm:qwen3' });
    await expect(readIndexerConfigFile(path.join(dir, 'c.yaml'))).rejects.toThrow(/expected a mapping/);
    await expect(readIndexerConfigFile(path.join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read indexer config/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
