/**
 * Who the client is when jobwire runs behind a reverse proxy (`--trusted-proxies`).
 *
 * A connection from a trusted proxy is believed about the client: the client's address is
 * the rightmost one in `X-Forwarded-For` that is not itself a trusted proxy, and the client
 * used HTTPS when the first `X-Forwarded-Proto` says `https`. Each proxy appends the
 * address it saw, so what a client wrote further left is reached only when the client's
 * own address is trusted too: the list must hold proxies and nothing else. From any other
 * address both headers are ignored. IPv6 ranges hold IPv6 addresses only: an IPv4 client
 * on a dual-stack socket (`::ffff:a.b.c.d`) is matched against the IPv4 ranges.
 *
 * @module
 */

/** The address as clients' addresses are reported (IPv6 in its shortest form), or `undefined`. */
export function ipLiteral(text: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    return text.split(".").every((n) => Number(n) <= 255) ? text : undefined;
  }
  if (!/^[0-9a-f:.]+$/i.test(text) || !text.includes(":")) return undefined;
  try {
    // The URL parser writes an IPv6 address in its shortest form ("0:0::1" as "::1").
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** Names that stand for several ranges. */
const NAMED_RANGES: Record<string, readonly string[]> = {
  loopback: ["127.0.0.0/8", "::1/128"],
  private: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
};

/**
 * One entry of `--trusted-proxies` in its normal form (a name, an address, or a range
 * `address/bits`; an IPv4-mapped one as IPv4), or `undefined` when it is none of those.
 * A mapped range shorter than `/96` is refused: it would reach beyond IPv4.
 */
export function proxyEntry(text: string): string | undefined {
  const entry = text.trim().toLowerCase();
  if (Object.hasOwn(NAMED_RANGES, entry)) return entry;
  const slash = entry.indexOf("/");
  const written = slash < 0 ? entry : entry.slice(0, slash);
  const address = normalAddress(written);
  if (address === undefined) return undefined;
  const mapped = written.includes(":") && !address.includes(":");
  if (slash < 0) return address;
  const bitsText = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText) - (mapped ? 96 : 0);
  if (bits < 0 || bits > (address.includes(":") ? 128 : 32)) return undefined;
  return `${address}/${bits}`;
}

/** An address as a number, IPv4 (32 bits) or IPv6 (128); IPv4-mapped IPv6 counts as IPv4. */
interface Bits {
  v6: boolean;
  value: bigint;
}

const MAPPED_V4 = 0xffffn;

/** The bits of an address `ipLiteral` accepted (an IPv6 one holds only hex groups). */
function bitsOf(address: string): Bits {
  if (!address.includes(":")) {
    return {
      v6: false,
      value: address.split(".").reduce((sum, n) => (sum << 8n) | BigInt(n), 0n),
    };
  }
  const [head = "", tail] = address.split("::");
  const groups = (text: string) => text === "" ? [] : text.split(":");
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  const value = all.reduce((sum, group) => (sum << 16n) | BigInt(`0x${group}`), 0n);
  if (value >> 32n === MAPPED_V4) return { v6: false, value: value & 0xffffffffn };
  return { v6: true, value };
}

/** An address written as `ipLiteral` writes it, with an IPv4-mapped one as plain IPv4. */
function normalAddress(text: string): string | undefined {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(text);
  const address = ipLiteral(mapped?.[1] ?? text);
  if (address === undefined || !address.includes(":")) return address;
  const bits = bitsOf(address);
  if (bits.v6) return address;
  return [24n, 16n, 8n, 0n].map((shift) => String((bits.value >> shift) & 0xffn)).join(".");
}

/** A range: the bits every address in it starts with, and how many they are. */
interface Range {
  v6: boolean;
  prefix: bigint;
  shift: bigint;
}

function rangesOf(entry: string): Range[] {
  if (Object.hasOwn(NAMED_RANGES, entry)) return NAMED_RANGES[entry]!.flatMap(rangesOf);
  const [address = "", bitsText] = entry.split("/");
  const bits = bitsOf(address);
  const width = bits.v6 ? 128 : 32;
  const shift = BigInt(width - (bitsText === undefined ? width : Number(bitsText)));
  return [{ v6: bits.v6, prefix: bits.value >> shift, shift }];
}

/** Whether an address is in a set (of trusted proxies, of addresses limits skip). */
export type AddressTest = (ip: string) => boolean;

/**
 * The test of a list of {@link proxyEntry} forms (addresses, ranges, `loopback`,
 * `private`), such as `--trusted-proxies` or `--limits-exempt-ips`; an empty list holds
 * nothing.
 */
export function addressSet(entries: readonly string[]): AddressTest {
  if (entries.length === 0) return () => false;
  const ranges = entries.flatMap(rangesOf);
  return (ip) => {
    const address = normalAddress(ip);
    if (address === undefined) return false;
    const bits = bitsOf(address);
    return ranges.some((r) => r.v6 === bits.v6 && bits.value >> r.shift === r.prefix);
  };
}

/** Who made a request: the client's address, and whether it reached the first proxy over HTTPS. */
export interface Client {
  ip: string;
  /** Whether `ip` came from `X-Forwarded-For` rather than being the connection's peer. */
  forwarded: boolean;
  https: boolean;
}

/** An address from `X-Forwarded-For`: bare, quoted, or with a port (`[::1]:80`, `1.2.3.4:80`). */
function hopAddress(text: string): string | undefined {
  let hop = text.trim();
  if (hop.length > 1 && hop.startsWith('"') && hop.endsWith('"')) hop = hop.slice(1, -1);
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(hop);
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop);
  return normalAddress(bracketed?.[1] ?? withPort?.[1] ?? hop);
}

/**
 * The client of a request that came from `peer`: `peer` itself, unless `peer` is a trusted
 * proxy, in which case the forwarding headers say (see the module's description). A hop
 * that is not an address ends the walk at the proxy that forwarded it.
 */
export function clientBehind(peer: string, headers: Headers, trusted: AddressTest): Client {
  if (!trusted(peer)) return { ip: peer, forwarded: false, https: false };
  let ip = normalAddress(peer) ?? peer;
  let forwarded = false;
  const hops = (headers.get("x-forwarded-for") ?? "").split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const text = hops[i]!;
    if (text.trim() === "") continue;
    const hop = hopAddress(text);
    if (hop === undefined) break;
    ip = hop;
    forwarded = true;
    if (!trusted(hop)) break;
  }
  const proto = headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return { ip, forwarded, https: proto === "https" };
}
