// The gRPC server the router calls: Indexer.Score over the same request parsing and service as
// HTTP, plus grpc.health.v1 (src/common/grpc/health.ts). Client mistakes become INVALID_ARGUMENT naming
// the field. A call's deadline and cancellation travel with it into the service, which sheds the call
// rather than work for a caller that already gave up (CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED).
// Served on the project's own HTTP/2 transport, as the router's ext_proc port is (ADR 0015): Score is
// on every request's path.

import {
  GrpcStatus,
  GrpcStatusError,
  grpcStatusName,
  served,
  startBidiStreamServer,
  unaryMethod,
} from '../../common/grpc/bidi-stream-server.ts';
import { createHealthImplementation } from '../../common/grpc/health.ts';
import type { Logger } from '../../common/log.ts';
import { TokenizeShedError, type ShedReason } from '../../tokenize/tokenizers.ts';
import { RequestError, parseScoreBody } from '../scoring/request.ts';
import type { IndexerService } from '../scoring/service.ts';
import { IndexerService as IndexerGrpcService, type ScoreRequestMessage, type ScoreResponseMessage } from './proto.ts';

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** Larger requests are refused with RESOURCE_EXHAUSTED before they are parsed (default 16 MiB). */
  maxReceiveBytes?: number;
  service: IndexerService;
  log: Logger;
  ready: () => boolean;
  /** Called after each Score call with its status name (OK, INVALID_ARGUMENT, ...), for metrics. */
  observe?: (status: string, seconds: number) => void;
}

export interface RunningGrpcServer {
  port: number;
  close(): Promise<void>;
}

/** A proto field carrying JSON; parseScoreBody checks the value's shape under the body field's name. */
function parseJsonField(field: string, text: string, kind: 'object' | 'array'): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RequestError(`${field}: expected a JSON ${kind}, ${(err as Error).message}`);
  }
}

/** A message's extra fields; they are spread into the message, so only an object will do. */
function messageFields(field: string, text: string): Record<string, unknown> {
  const value = parseJsonField(field, text, 'object');
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RequestError(`${field}: expected a JSON object, got ${text}`);
  return value as Record<string, unknown>;
}

/**
 * The proto request as the JSON body parseScoreBody accepts: unset proto fields become absent. Throws
 * RequestError when a *_json field is not JSON; parseScoreBody checks the rest.
 */
function scoreBodyFromProto(m: ScoreRequestMessage): Record<string, unknown> {
  const body: Record<string, unknown> = { model: m.model };
  if (m.tokens.length > 0) body.tokens = m.tokens;
  if (m.prompt !== undefined && m.prompt !== null) body.prompt = m.prompt;
  if (m.messages.length > 0) {
    body.messages = m.messages.map((msg, i) => ({
      ...(msg.fields_json ? messageFields(`messages.${i}.fields_json`, msg.fields_json) : {}),
      role: msg.role,
      content: msg.parts.length > 0 ? msg.parts : msg.content,
    }));
  }
  if (m.lora_name) body.lora_name = m.lora_name;
  if (m.cache_salt) body.cache_salt = m.cache_salt;
  if (m.pods.length > 0) body.pods = m.pods;
  if (m.chat_template_kwargs_json)
    body.chat_template_kwargs = parseJsonField('chat_template_kwargs_json', m.chat_template_kwargs_json, 'object');
  if (m.tools_json) body.tools = parseJsonField('tools_json', m.tools_json, 'array');
  if (m.add_generation_prompt !== undefined && m.add_generation_prompt !== null) body.add_generation_prompt = m.add_generation_prompt;
  return body;
}

/**
 * HTTP/2 rapid-reset limits: a router gives up a Score call past its deadline by resetting the stream,
 * and under overload that can be many per second on one connection; above Node's default (1000, then
 * 33/s) the whole connection would be cut.
 */
const RESET_LIMITS = { streamResetBurst: 10_000, streamResetRate: 10_000 } as const;

const SHED_STATUS: Record<ShedReason, number> = {
  cancelled: GrpcStatus.CANCELLED,
  deadline: GrpcStatus.DEADLINE_EXCEEDED,
  overloaded: GrpcStatus.RESOURCE_EXHAUSTED,
};

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { service, log } = options;
  const def = IndexerGrpcService.service['Score']!;
  const score = unaryMethod<ScoreRequestMessage, ScoreResponseMessage>(
    def.path,
    (b) => def.requestDeserialize(b) as ScoreRequestMessage,
    (m) => def.responseSerialize(m),
    async (request, call) => {
      const started = performance.now();
      const finish = (code: number) => options.observe?.(grpcStatusName(code), (performance.now() - started) / 1000);
      try {
        // The call's deadline and cancellation (a reset, or the deadline passing) go into the service.
        const result = await service.scoreParsed(parseScoreBody(scoreBodyFromProto(request)), {
          signal: call.signal,
          deadline: call.deadline,
        });
        finish(GrpcStatus.OK);
        return { scores: result.scores, total_blocks: result.totalBlocks ?? 0 };
      } catch (err) {
        const code =
          err instanceof RequestError
            ? GrpcStatus.INVALID_ARGUMENT
            : err instanceof TokenizeShedError
              ? SHED_STATUS[err.reason]
              : GrpcStatus.INTERNAL;
        if (code === GrpcStatus.INTERNAL) log.error('grpc score failed', { err });
        finish(code);
        throw new GrpcStatusError(code, code === GrpcStatus.INTERNAL ? 'internal error' : (err as Error).message);
      }
    },
  );
  const health = createHealthImplementation((service) =>
    service === '' || service === 'kvroute.indexer.v1.Indexer' ? (options.ready() ? 'SERVING' : 'NOT_SERVING') : undefined,
  );
  const server = await startBidiStreamServer(options.host, options.port, [served(score), ...health.methods], {
    tls: null,
    maxReceiveMessageBytes: options.maxReceiveBytes ?? 16 * 1024 * 1024,
    sessionOptions: RESET_LIMITS,
    onSessionError: (err) => log.limited('grpc-session-error', 'warn', 'gRPC HTTP/2 session error', { err }),
  });
  log.info('grpc server listening', { host: options.host, port: server.port });

  return {
    port: server.port,
    close: async () => {
      // Let in-flight calls finish, but do not wait on idle client connections forever.
      health.close();
      await server.close(5_000);
    },
  };
}
