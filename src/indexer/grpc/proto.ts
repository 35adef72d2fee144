// Loads the indexer's gRPC service definition (indexer.proto) once, for the server and the client,
// with field names kept as written in the .proto file. grpc.health.v1 is in src/common/grpc/health.ts.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

interface ServiceConstructor {
  new (address: string, credentials: grpc.ChannelCredentials): grpc.Client;
  service: grpc.ServiceDefinition;
}

function loadService(file: string, dotted: string): ServiceConstructor {
  const definition = protoLoader.loadSync(path.join(here, file), LOADER_OPTIONS);
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of dotted.split('.')) node = (node as Record<string, unknown>)[part];
  return node as ServiceConstructor;
}

export const IndexerService = loadService('indexer.proto', 'kvroute.indexer.v1.Indexer');

/** ScoreRequest as proto-loader delivers it (defaults filled, names as in indexer.proto). */
export interface ScoreRequestMessage {
  model: string;
  tokens: number[];
  prompt?: string;
  messages: Array<{ role: string; content: string; parts: Array<{ type: string; text: string }>; fields_json: string }>;
  lora_name: string;
  cache_salt: string;
  pods: string[];
  chat_template_kwargs_json: string;
  add_generation_prompt?: boolean | null;
  tools_json: string;
}

export interface ScoreResponseMessage {
  scores: Record<string, number>;
  total_blocks: number;
}
