import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, invalidApiKey, toApiError } from '../errors/index.ts';
import { isPlainObject } from '../protocol/field-rules.ts';
import { parseEnvelope } from '../protocol/validate-task.ts';
import { newUuid } from '../shared/ids.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { Principal } from '../tasks/task-service.ts';
import type { ReplySink, TaskDispatcher } from './task-dispatcher.ts';

export interface RestOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly syncTimeoutMs: number;
  /** Aborted at shutdown: sync waits end with a retryable error. */
  readonly shutdown: AbortSignal;
  /** Engine names for `X-Kiln-Engine`: of a model, and the default. */
  engineOf(model: unknown): string | undefined;
  readonly defaultEngine: string;
}

/** Runware's error envelope, with the `data: []` that live error bodies carry. */
export function sendErrors(reply: FastifyReply, errors: readonly ApiError[]): FastifyReply {
  const status = errors[0]?.status ?? 500;
  return reply.code(status).send({ data: [], errors: errors.map((e) => e.toJSON()) });
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1]?.trim();
}

/** `POST /v1` (and `/v1/`): a JSON array of tasks in, `{data, errors}` out. */
export function registerRestRoutes(app: FastifyInstance, options: RestOptions): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const envelope = parseEnvelope(typeof request.body === 'string' ? request.body : '');
    if (!envelope.ok) return sendErrors(reply.header('X-Kiln-Engine', options.defaultEngine), [envelope.error]);
    const tasks = envelope.tasks;
    const engines = new Set(
      tasks.flatMap((t) => (isPlainObject(t) && t.taskType === 'imageInference' ? [options.engineOf(t.model)] : [])),
    );
    engines.delete(undefined);
    reply.header('X-Kiln-Engine', engines.size > 0 ? [...engines].join(',') : options.defaultEngine);

    let principal: Principal | undefined;
    const headerKey = bearer(request);
    if (headerKey !== undefined) {
      principal = await options.apiKeys.verify(headerKey);
      if (!principal) return sendErrors(reply, [invalidApiKey()]);
    }
    const first = tasks[0];
    const authFirst = isPlainObject(first) && first.taskType === 'authentication';
    if (!principal && !authFirst) return sendErrors(reply, [invalidApiKey()]);

    const data: Record<string, unknown>[] = [];
    const errors: ApiError[] = [];
    // A getResponse that found its task answered, even when it reports failed images.
    let answered = false;
    const sink: ReplySink = {
      data: (item) => data.push(item),
      error: (error) => errors.push(error),
      notice: (error) => errors.push(error),
      batch: (items, errs) => {
        answered = true;
        data.push(...items);
        errors.push(...errs);
      },
    };
    // The task keeps running if the client goes away; only the wait for it ends. (The request
    // stream is finished once its body is read, so the response tells us the client left.)
    const controller = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableFinished) controller.abort();
    };
    reply.raw.once('close', onClose);
    try {
      await options.dispatcher.dispatch(
        tasks,
        {
          principal: async () => principal,
          authenticate: async (task) => {
            const verified = await options.apiKeys.verify(task.apiKey);
            if (!verified) throw invalidApiKey();
            principal ??= verified;
            return { taskType: 'authentication', connectionSessionUUID: task.connectionSessionUUID ?? newUuid() };
          },
          dryRun: false,
          syncTimeoutMs: options.syncTimeoutMs,
          signal: AbortSignal.any([controller.signal, options.shutdown]),
        },
        sink,
      );
    } catch (thrown) {
      errors.push(toApiError(thrown));
    } finally {
      reply.raw.off('close', onClose);
    }
    // During a shutdown the connection must not idle in keep-alive: the server waits for it.
    if (options.shutdown.aborted) reply.header('Connection', 'close');
    if (!principal) return sendErrors(reply, errors.length > 0 ? errors : [invalidApiKey()]);
    if (errors.length === 0) return reply.code(200).send({ data });
    // kiln-extensions.md: 200 when at least one task produced data, otherwise the first error's status.
    const producedData = answered || data.some((item) => item.taskType !== 'authentication');
    return reply.code(producedData ? 200 : (errors[0]?.status ?? 500)).send({ data, errors: errors.map((e) => e.toJSON()) });
  };
  app.post('/v1', handler);
  app.post('/v1/', handler);
}
