import type { Logger } from '../../src/shared/logger.ts';

/** A logger that keeps the messages of errors in `errors`, for the assertions, and drops the rest. */
export function recordingLogger(errors: string[]): Logger {
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (_fields: unknown, message?: string) => void errors.push(message ?? ''),
    child: () => logger,
  } as unknown as Logger;
  return logger;
}
