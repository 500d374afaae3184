/**
 * Which IP addresses outbound requests may reach.
 *
 * An allowlist, not a blocklist: only addresses ipaddr.js classes as global `unicast` pass.
 * Everything else (private, loopback, link-local incl. the 169.254.169.254 metadata service,
 * CGNAT, multicast, unspecified, broadcast, documentation and benchmarking nets, unique-local
 * fc00::/7, NAT64 / 6to4 / Teredo prefixes that embed an IPv4 address) is refused. IPv4-mapped
 * IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4 address they carry, so they cannot
 * smuggle a private target through.
 */
import ipaddr from 'ipaddr.js';

/** Why an address was refused: the ipaddr.js range name, e.g. `loopback`, `private`, `linkLocal`. */
export type AddressRange = string;

/** Verdict on one address. */
export type AddressVerdict =
  | { readonly allowed: true; readonly range: AddressRange }
  | { readonly allowed: false; readonly range: AddressRange };

/** Ranges that are never a sensible destination, even when private addresses are allowed. */
const NEVER_ALLOWED: ReadonlySet<string> = new Set(['unspecified', 'multicast', 'broadcast']);

/** The IPv4-compatible prefix ::/96 (deprecated) would otherwise pass as plain unicast. */
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

/** True when `text` is an IPv4 or IPv6 literal (brackets allowed around IPv6). */
export function isIpLiteral(text: string): boolean {
  return ipaddr.isValid(stripBrackets(text));
}

/**
 * Classifies one IP address. With `allowPrivate` every unicast-capable address passes
 * (loopback and private nets included, for tests and trusted deployments); multicast,
 * broadcast and unspecified addresses are refused either way. Unparseable input is refused.
 */
export function checkAddress(address: string, allowPrivate: boolean): AddressVerdict {
  const text = stripBrackets(address);
  if (!ipaddr.isValid(text)) return { allowed: false, range: 'invalid' };
  // process() turns ::ffff:a.b.c.d into the IPv4 address so its own range applies.
  const parsed = ipaddr.process(text);
  let range: string = parsed.range();
  if (range === 'unicast' && parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE)) {
    range = 'ipv4Compatible';
  }
  if (NEVER_ALLOWED.has(range)) return { allowed: false, range };
  if (allowPrivate || range === 'unicast') return { allowed: true, range };
  return { allowed: false, range };
}

function stripBrackets(text: string): string {
  return text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
}
