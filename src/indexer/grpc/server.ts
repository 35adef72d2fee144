// The gRPC server the router calls: Indexer.Score over the same request parsing and service as
// HTTP, plus grpc.health.v1 (src/common/grpc/health.ts). Client mistakes become INVALID_ARGUMENT naming
// the field. A call's deadline and cancellation travel with it into the service, which sheds the call
// rather than work for a caller that already gave up (CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED).

import * as grpc from '@grpc/grpc-js';
import { HealthService, createHealthImplementation } from '../../common/grpc/health.ts';
import type { Logger } from '../../common/log.ts';
import { TokenizeShedError, type ShedReason } from '../../tokenize/tokenizers.ts';
import { RequestError, parseScoreBody } from '../scoring/request.ts';
import type { IndexerService } from '../scoring/service.ts';
import { IndexerService as IndexerGrpcService, type ScoreRequestMessage, type ScoreResponseMessage } from './proto.ts';

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** Larger requests are refused by grpc-js with RESOURCE_EXHAUSTED before they are parsed (default 16 MiB). */
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

const SHED_STATUS: Record<ShedReason, grpc.status> = {
  cancelled: grpc.status.CANCELLED,
  deadline: grpc.status.DEADLINE_EXCEEDED,
  overloaded: grpc.status.RESOURCE_EXHAUSTED,
};

/** A call's deadline as epoch milliseconds (grpc-js gives a Date or a number; Infinity when none). */
function deadlineMs(deadline: grpc.Deadline): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { service, log } = options;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': options.maxReceiveBytes ?? 16 * 1024 * 1024 });
  server.addService(IndexerGrpcService.service, {
    Score: (call: grpc.ServerUnaryCall<ScoreRequestMessage, ScoreResponseMessage>, callback: grpc.sendUnaryData<ScoreResponseMessage>) => {
      const started = performance.now();
      const finish = (code: grpc.status) => options.observe?.(grpc.status[code] ?? String(code), (performance.now() - started) / 1000);
      // grpc-js emits 'cancelled' when the client resets the stream and when the deadline timer fires.
      const aborted = new AbortController();
      const abort = () => aborted.abort();
      call.once('cancelled', abort);
      if (call.cancelled) abort();
      Promise.resolve()
        .then(() =>
          service.scoreParsed(parseScoreBody(scoreBodyFromProto(call.request)), {
            signal: aborted.signal,
            deadline: deadlineMs(call.getDeadline()),
          }),
        )
        .then((result) => {
          finish(grpc.status.OK);
          callback(null, { scores: result.scores, total_blocks: result.totalBlocks ?? 0 });
        })
        .catch((err: unknown) => {
          const code =
            err instanceof RequestError
              ? grpc.status.INVALID_ARGUMENT
              : err instanceof TokenizeShedError
                ? SHED_STATUS[err.reason]
                : grpc.status.INTERNAL;
          if (code === grpc.status.INTERNAL) log.error('grpc score failed', { err });
          finish(code);
          callback({ code, details: code === grpc.status.INTERNAL ? 'internal error' : (err as Error).message });
        })
        .finally(() => call.off('cancelled', abort));
    },
  });
  const health = createHealthImplementation((service) =>
    service === '' || service === 'kvroute.indexer.v1.Indexer' ? (options.ready() ? 'SERVING' : 'NOT_SERVING') : undefined,
  );
  server.addService(HealthService.service, health.handlers);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  log.info('grpc server listening', { host: options.host, port });

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // Let in-flight calls finish, but do not wait on idle client connections forever.
        health.close();
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
