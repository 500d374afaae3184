/** Which ports outbound URLs may name (`KILN_OUTBOUND_PORTS`). */

/** The port a URL connects to (its default when none is written). */
export function portOf(url: URL): number {
  return url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
}

/**
 * The problem in words when `text` names a port outside `allowedPorts`, else `undefined`.
 * `allowPrivate` (trusted networks, tests) lifts the rule. Unparseable URLs are left to the
 * caller's own checks.
 */
export function portProblem(text: string, allowPrivate: boolean, allowedPorts: readonly number[]): string | undefined {
  if (allowPrivate) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const port = portOf(url);
  return allowedPorts.includes(port) ? undefined : `Port ${port} is not allowed; URLs may use port ${allowedPorts.join(' or ')}.`;
}
