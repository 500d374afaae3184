import type { FastifyRequest } from 'fastify';

/** A host as a URL may carry it: a DNS name or an IPv4 address, or an IPv6 one in brackets, with an optional port. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/**
 * The base URL a client reached Kiln at (`http://192.168.1.20:8080`), from the request's `Host`
 * (and, when the server trusts its proxy, `X-Forwarded-Proto` and `X-Forwarded-Host`). Image URLs
 * use it when KILN_PUBLIC_URL is unset, so a client on another machine can download them.
 * `undefined` for a missing or malformed host (the server's own default applies then).
 */
export function publicBaseOf(request: FastifyRequest): string | undefined {
  const protocol = request.protocol;
  const host = request.host;
  if ((protocol !== 'http' && protocol !== 'https') || host.length > 260 || !HOST.test(host)) return undefined;
  return `${protocol}://${host.toLowerCase()}`;
}
