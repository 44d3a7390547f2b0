export interface OriginalDst {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/** getsockopt(SO_ORIGINAL_DST) then (IP6T_SO_ORIGINAL_DST) on a connected TCP socket's descriptor. */
export function getOriginalDst(fd: number): OriginalDst | null;
