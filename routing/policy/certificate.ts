/** Host-name check on Meta's certificate (OpenSSL in Kamailio 5.6 checks only the chain). */

/** Whether a certificate host name (possibly "*.example.com") covers host. */
export function certificateNameMatches(certName: string, host: string): boolean {
  const name = certName.toLowerCase();
  const h = host.toLowerCase();
  if (name.indexOf("*.") === 0) {
    const rest = name.slice(1);
    return h.length > rest.length && h.slice(h.length - rest.length) === rest && h.slice(0, h.length - rest.length).indexOf(".") < 0;
  }
  return name === h;
}
