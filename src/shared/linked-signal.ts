/** A signal that aborts when any of its sources does, and a way to unhook it from them. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Removes its listeners from the sources (call when the work it guards is over). */
  dispose(): void;
}

/**
 * Like `AbortSignal.any`, for sources that outlive the work: Node 20's `AbortSignal.any` keeps a
 * weak reference to each signal it makes inside every source and never prunes them, so a
 * long-lived source (the server's shutdown signal, the delivery service's) grew by one entry per
 * request or webhook attempt (seen in the soak as half a megabyte a minute). This one listens to
 * the sources and stops listening on `dispose` (or once it has aborted).
 */
export function linkSignals(...sources: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const controller = new AbortController();
  const present = sources.filter((source): source is AbortSignal => source !== undefined);
  const aborted = present.find((source) => source.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, dispose: () => {} };
  }
  const hooks = present.map((source) => {
    const onAbort = (): void => {
      dispose();
      controller.abort(source.reason);
    };
    source.addEventListener('abort', onAbort, { once: true });
    return { source, onAbort };
  });
  function dispose(): void {
    for (const { source, onAbort } of hooks.splice(0)) source.removeEventListener('abort', onAbort);
  }
  return { signal: controller.signal, dispose };
}
