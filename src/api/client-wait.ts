import type { FastifyReply } from 'fastify';
import { linkSignals } from '../shared/linked-signal.ts';

/**
 * Runs `wait` with a signal that aborts when the HTTP client goes away before its answer was
 * written, or when the server shuts down. Only the wait ends then: the tasks it waits for keep
 * running. (The request stream is finished once its body is read, so the response tells us the
 * client left.)
 */
export async function whileClientWaits(reply: FastifyReply, shutdown: AbortSignal, wait: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const onClose = (): void => {
    if (!reply.raw.writableFinished) controller.abort();
  };
  reply.raw.once('close', onClose);
  // Not AbortSignal.any: the shutdown signal lives as long as the server (see linkSignals).
  const linked = linkSignals(controller.signal, shutdown);
  try {
    await wait(linked.signal);
  } finally {
    reply.raw.off('close', onClose);
    linked.dispose();
  }
}
