import { isIPv6 } from 'node:net'

/**
 * The source of a request for the limits per address: an IPv4 address, or the /64 of an IPv6 one,
 * since one subscriber holds a whole /64.
 */
export function sourceKey (ip: string): string {
  if (!isIPv6(ip)) return ip
  const mapped = /^::ffff:([0-9.]+)$/i.exec(ip)
  if (mapped?.[1] !== undefined) return mapped[1]
  const [head = '', tail] = ip.split('%')[0]?.split('::') ?? []
  // an embedded IPv4 address (::ffff:1.2.3.4 aside) is two groups
  const groups = (part: string | undefined): string[] => part === undefined || part === '' ? [] : part.split(':').flatMap(group => group.includes('.') ? ['0', '0'] : [group])
  const first = groups(head)
  const last = groups(tail)
  // '::' stands for as many zero groups as are missing
  const all = [...first, ...Array<string>(8 - first.length - last.length).fill('0'), ...last]
  return `${all.slice(0, 4).map(group => parseInt(group, 16).toString(16)).join(':')}::/64`
}
