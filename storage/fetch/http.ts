/**
 * The real network: got 14 behind airlock's one-method `Fetcher`, shared by
 * the cache node (staging, `manifest build`) and the node client.
 *
 * - Proxy: `--proxy` or the environment (storage/fetch/proxy.ts). Plain http
 *   goes to the proxy as an absolute-URI request (so the proxy's access log
 *   names every URL); https goes through CONNECT (hpagent). Upstream names
 *   are then resolved by the proxy, never here.
 * - No got-level retries and no automatic redirects: storage's ingest retries
 *   with backoff and resumes from its partial file, and redirects are followed
 *   here so that `Authorization` never travels to another host.
 * - A redirect keeps the proxy decision of the request it came from: when
 *   that went through a proxy, every hop goes through the same proxy (no_proxy
 *   is not consulted again, so an upstream cannot steer us to a host the
 *   proxy would not reach); when it went direct, each hop is routed by the
 *   normal policy for its own host. Refused outright (non-retryable): a hop
 *   to another scheme than http(s), a loop, more than `maxRedirects`, and a
 *   hop into loopback or link-local addresses from a host that is not one.
 * - A stall (no bytes for `stallTimeoutMs`), a reset, a short body or a 5xx
 *   is EUPSTREAM with `details.retryable = true`; 404/410 is ENOTFOUND. So
 *   is a 401/403 from a host a redirect sent us to: presigned URLs (a cache
 *   with `redirect_blobs`, a registry's blob storage) expire, and asking the
 *   URL we were given again gets a fresh one; Range is sent on every hop. An
 *   answer that is not HTTP, or a Content-Range other than asked for, is a
 *   protocol error: EUPSTREAM with `retryable = false`.
 * - `maxLength` cuts the body (size + 1 lets the verifier see "too long"); a
 *   Fetcher answer announcing a longer Content-Length is refused before its
 *   body is read.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { isIP, type LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import got, { type Agents, type RequestFunction } from 'got';
import { HttpsProxyAgent } from 'hpagent';
import { AirlockError, isAirlockError } from '../../manifests/errors.js';
import type { FetchOptions, FetchResult, Fetcher } from '../types.js';
import { proxyFor, type ProxySettings } from './proxy.js';

export interface HttpClientOptions extends ProxySettings {
  /** extra CA certificates (PEM) for upstream TLS, added to the system ones */
  caFile?: string | null;
  /** no bytes for this long (waiting for headers or body) → EUPSTREAM; default 30 s */
  stallTimeoutMs?: number;
  /** default 30 s */
  connectTimeoutMs?: number;
  /** default 5 */
  maxRedirects?: number;
  userAgent?: string;
  /** replaces DNS for direct connections (tests use it to prove nothing is resolved locally) */
  dnsLookup?: LookupFunction;
  /** whom this client talks to, for the advice in its errors: an upstream (default; a proxy may be set), the node's cache or a stage mirror (always direct) */
  peer?: 'upstream' | 'cache' | 'mirror';
}

/** How a request went out, for naming the cause of a failure. */
export interface Route {
  proxy: URL | null;
  peer?: 'upstream' | 'cache' | 'mirror';
}

/** TLS verification failures: the chain is not trusted here. */
const UNTRUSTED_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * A TLS certificate that does not verify: not a network failure that a
 * re-run cures, but something to change (EUSAGE, exit 2): the CA to trust
 * (`--ca-file`), the name to use, or the certificate itself. Ingest moves
 * on to the next URL on it (details.cause 'tls').
 */
function tlsError(code: string, err: NodeJS.ErrnoException, url: string): AirlockError | null {
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    // keep the URL
  }
  const cert = ((err as { cert?: { subjectaltname?: string; valid_to?: string } }).cert ??
    (err.cause as { cert?: { subjectaltname?: string; valid_to?: string } } | undefined)?.cert);
  const details = { url, cause: 'tls', error: code, retryable: false };
  if (UNTRUSTED_CERT.has(code)) {
    return new AirlockError(
      'EUSAGE',
      `${url}: TLS: the certificate of ${host} is not signed by a CA this machine trusts (${code}); give its CA with --ca-file PEM (ca_file in the config)`,
      details,
      { cause: err },
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = cert?.subjectaltname?.replace(/(DNS|IP Address):/g, '').split(/,\s*/).filter(Boolean) ?? [];
    const which = names.length > 0 ? `it is for ${names.join(', ')}` : 'it names another host';
    return new AirlockError(
      'EUSAGE',
      `${url}: TLS: the certificate of ${host} does not match that name: ${which}; use a name the certificate holds in the URL, or have it reissued for ${host}`,
      { ...details, names },
      { cause: err },
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    const when = cert?.valid_to ? ` (valid to ${cert.valid_to})` : '';
    return new AirlockError(
      'EUSAGE',
      `${url}: TLS: the certificate of ${host} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}${when}; renew it on that server, or check this machine's clock`,
      details,
      { cause: err },
    );
  }
  return null;
}

export interface HttpRequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** adds `Range: bytes=offset-` when > 0 */
  offset?: number;
  /** the body stream ends after this many bytes */
  maxLength?: number;
  signal?: AbortSignal;
  /**
   * route this request as a redirect hop from `routeAs` (a URL we were sent
   * here by, e.g. the registry that named a token realm): same proxy rules
   */
  routeAs?: string;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** the URL that answered, after redirects */
  url: string;
  /** capped and stall-guarded; errors are AirlockErrors */
  body: Readable;
}

export interface HttpClient {
  /** one request, redirects followed (Authorization dropped when the host changes); any status resolves */
  request(url: string, opts?: HttpRequestOptions): Promise<HttpResponse>;
  /** the proxy that would carry `url`, or null for direct */
  proxyFor(url: string): URL | null;
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Maps whatever the socket layer threw into EUPSTREAM (retryable unless
 * aborted or not HTTP at all), naming its cause when it is one the operator
 * must act on: a name that does not resolve with no proxy set, a proxy that
 * refuses, a certificate that does not verify (EUSAGE, see tlsError).
 */
export function upstreamError(e: unknown, url: string, signal?: AbortSignal, route?: Route): AirlockError {
  if (isAirlockError(e)) return e;
  const err = e as NodeJS.ErrnoException & { name?: string };
  if (signal?.aborted || err?.name === 'AbortError') {
    return new AirlockError('EUPSTREAM', `${url}: aborted`, { url, aborted: true, retryable: false });
  }
  const code = err?.code ?? err?.name ?? 'error';
  // llhttp's parse errors: whatever answered does not speak HTTP; asking again will not change that
  if (code.startsWith('HPE_') || code === 'ERR_UNSUPPORTED_PROTOCOL') {
    return new AirlockError('EUPSTREAM', `${url}: protocol error: ${String(err?.message ?? e)}`, { url, cause: 'protocol error', error: code, retryable: false }, { cause: e });
  }
  const tls = tlsError(code, err, url);
  if (tls) return tls;
  let why = code === 'ETIMEDOUT' ? 'timed out' : String(err?.message ?? e);
  let host = '';
  try {
    host = new URL(url).hostname;
  } catch {
    // why stays as it is
  }
  const proxy = route?.proxy ?? null;
  if (proxy && code === 'ECONNREFUSED') {
    why = `proxy ${proxy.host} refused the connection; check --proxy or http_proxy/https_proxy, and that the proxy is running`;
  } else if (proxy && (code === 'ENOTFOUND' || code === 'EAI_AGAIN')) {
    why = `proxy host ${proxy.hostname} does not resolve; check --proxy or http_proxy/https_proxy`;
  } else if (!proxy && route && (code === 'ENOTFOUND' || code === 'EAI_AGAIN') && host) {
    why =
      route.peer === 'cache'
        ? `cache host ${host} does not resolve; check --cache (or cache in the config) and this node's DNS`
        : route.peer === 'mirror'
          ? `mirror host ${host} does not resolve; check --mirror (or mirrors in the config) and this machine's DNS`
          : `${host} does not resolve, and no proxy is set for it; set --proxy or http_proxy/https_proxy (or proxy in the config)`;
  }
  return new AirlockError('EUPSTREAM', `${url}: ${why}`, { url, cause: code, retryable: true, ...(proxy ? { proxy: proxy.host } : {}) }, { cause: e });
}

/** Loopback, link-local (cloud metadata lives there) and unspecified addresses, by name or literal. */
export function isLocalTarget(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) {
    const [a, b] = host.split('.').map(Number);
    return a === 127 || a === 0 || (a === 169 && b === 254);
  }
  if (isIP(host) === 6) {
    if (host === '::1' || host === '::') return true;
    if (/^fe[89ab][0-9a-f]:/.test(host)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
    return mapped ? isLocalTarget(new URL(`http://${mapped[1]}/`)) : false;
  }
  return false;
}

function refusedRedirect(from: string, to: string, cause: string, why: string): AirlockError {
  return new AirlockError('EUPSTREAM', `${from}: refused a redirect ${why} (${to})`, { url: from, location: to, cause, retryable: false });
}

/**
 * The next hop of a redirect, or a refusal. `viaProxy` is the proxy that
 * carried the hop before: a proxied chain stays on that proxy (see the file
 * comment); a direct one follows the site's policy for the new host.
 */
export function redirectHop(
  from: URL,
  location: string,
  viaProxy: URL | null,
  seen: ReadonlySet<string>,
  settings: ProxySettings,
): { url: URL; proxy: URL | null } {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new AirlockError('EUPSTREAM', `${from.href}: protocol error: a redirect to "${location}", which is not a URL`, {
      url: from.href,
      location,
      cause: 'protocol error',
      retryable: false,
    });
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw refusedRedirect(from.href, next.href, 'redirect scheme', 'to an unsupported scheme');
  if (seen.has(next.href)) throw refusedRedirect(from.href, next.href, 'redirect loop', 'back to a URL already asked for: a redirect loop');
  if (isLocalTarget(next) && !isLocalTarget(from)) {
    throw refusedRedirect(from.href, next.href, 'redirect target', 'to a loopback or link-local address');
  }
  return { url: next, proxy: viaProxy ?? proxyFor(next, settings) };
}

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const stallMs = options.stallTimeoutMs ?? 30_000;
  const maxRedirects = options.maxRedirects ?? 5;
  const ca = options.caFile ? [...readCa(options.caFile)] : undefined;
  const agents = new Map<string, http.Agent>();
  const directHttp = new http.Agent({ keepAlive: true });
  const directHttps = new https.Agent({ keepAlive: true, ca: ca ? withSystemCas(ca) : undefined });

  const forwardAgent = (proxy: URL): http.Agent => {
    const key = `fwd ${proxy.href}`;
    let a = agents.get(key);
    if (!a) {
      a = proxy.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
      agents.set(key, a);
    }
    return a;
  };
  const tunnelAgent = (proxy: URL): https.Agent => {
    const key = `tunnel ${proxy.href}`;
    let a = agents.get(key) as https.Agent | undefined;
    if (!a) {
      a = new HttpsProxyAgent({ proxy, keepAlive: true, ca: ca ? withSystemCas(ca) : undefined });
      agents.set(key, a);
    }
    return a;
  };

  /** plain http through a proxy: connect to the proxy, ask for the absolute URI */
  const viaForwardProxy = (proxy: URL): RequestFunction => (url, native, callback) => {
    const headers: Record<string, string | string[] | undefined> = { ...((native.headers as Record<string, string | string[] | undefined> | undefined) ?? {}), host: url.host };
    if (proxy.username || proxy.password) {
      const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(cred).toString('base64')}`;
    }
    const lib = proxy.protocol === 'https:' ? https : http;
    return lib.request(
      {
        ...native,
        host: proxy.hostname,
        hostname: proxy.hostname,
        port: proxy.port || (proxy.protocol === 'https:' ? 443 : 80),
        path: url.href,
        headers,
        setHost: false,
        agent: forwardAgent(proxy),
      },
      callback,
    );
  };

  const once = async (url: URL, proxy: URL | null, opts: HttpRequestOptions, headers: Record<string, string>): Promise<http.IncomingMessage & { body: Readable }> => {
    let agent: Agents;
    let request: RequestFunction | undefined;
    if (!proxy) agent = { http: directHttp, https: directHttps };
    else if (url.protocol === 'https:') agent = { https: tunnelAgent(proxy) };
    else {
      agent = {};
      request = viaForwardProxy(proxy);
    }
    const stream = got.stream(url, {
      method: opts.method ?? 'GET',
      headers,
      agent,
      request,
      retry: { limit: 0 },
      followRedirect: false,
      throwHttpErrors: false,
      decompress: false,
      dnsLookup: options.dnsLookup,
      https: ca ? { certificateAuthority: withSystemCas(ca) } : {},
      timeout: { connect: options.connectTimeoutMs ?? 30_000, response: stallMs },
      signal: opts.signal,
    });
    return new Promise((resolve, reject) => {
      stream.once('error', (e) => reject(upstreamError(e, url.href, opts.signal, { proxy, peer: options.peer })));
      stream.once('response', (res: http.IncomingMessage) => {
        stream.removeAllListeners('error');
        resolve(Object.assign(res, { body: stream as unknown as Readable }));
      });
    });
  };

  return {
    proxyFor: (url) => proxyFor(url, options),
    close() {
      directHttp.destroy();
      directHttps.destroy();
      for (const a of agents.values()) a.destroy();
    },
    async request(urlText, opts = {}) {
      let url = new URL(urlText);
      let proxy: URL | null;
      if (opts.routeAs) {
        const from = new URL(opts.routeAs);
        ({ url, proxy } = redirectHop(from, urlText, proxyFor(from, options), new Set(), options));
      } else proxy = proxyFor(url, options);
      const headers: Record<string, string> = { 'user-agent': options.userAgent ?? 'airlock/0.1', ...lower(opts.headers ?? {}) };
      if (opts.offset && opts.offset > 0) headers.range = `bytes=${opts.offset}-`;
      const seen = new Set<string>([url.href]);
      for (let hop = 0; ; hop++) {
        const res = await once(url, proxy, opts, headers);
        const location = res.headers.location;
        if (REDIRECTS.has(res.statusCode ?? 0) && location) {
          res.body.destroy();
          const next = redirectHop(url, location, proxy, seen, options);
          if (hop >= maxRedirects) {
            throw new AirlockError('EUPSTREAM', `${urlText}: more than ${maxRedirects} redirects`, { url: urlText, cause: 'redirects', retryable: false });
          }
          // Blob storage behind a registry must never see the registry's token.
          if (next.url.origin !== url.origin) delete headers.authorization;
          ({ url, proxy } = next);
          seen.add(url.href);
          continue;
        }
        return {
          status: res.statusCode ?? 0,
          headers: res.headers,
          url: url.href,
          body: guardBody(res.body, {
            url: url.href,
            stallMs,
            // maxLength counts from `offset`; an upstream that ignored Range sends from 0
            maxLength: (opts.maxLength ?? Number.POSITIVE_INFINITY) + (res.statusCode === 200 && opts.offset ? opts.offset : 0),
            expectedLength: opts.method === 'HEAD' ? null : contentLength(res.headers),
            signal: opts.signal,
          }),
        };
      }
    },
  };
}

/** The got-based Fetcher (python-tuf's one method): Range from `offset`, body cut at `maxLength`. */
export function httpFetcher(clientOrOptions: HttpClient | HttpClientOptions = {}, extraHeaders: Record<string, string> = {}): Fetcher {
  const client = 'request' in clientOrOptions ? (clientOrOptions as HttpClient) : createHttpClient(clientOrOptions);
  return {
    fetch: (url: string, opts: FetchOptions): Promise<FetchResult> =>
      fetchRange(url, opts, (offset) => client.request(url, { offset, maxLength: opts.maxLength, signal: opts.signal, headers: extraHeaders })),
  };
}

/**
 * A Range fetch that survives 416: when the partial file already holds the
 * whole body (killed between the last byte and the commit), a 416 whose
 * Content-Range total equals offset means "nothing left"; an empty stream lets the verifier
 * finish; any other 416 is answered by asking for the whole body again.
 */
export async function fetchRange(url: string, opts: FetchOptions, send: (offset: number) => Promise<HttpResponse>): Promise<FetchResult> {
  const res = await send(opts.offset);
  if (res.status === 416 && opts.offset > 0) {
    res.body.resume();
    const total = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    if (total && Number(total[1]) === opts.offset) return { offset: opts.offset, stream: Readable.from([]) };
    return fetchResult(await send(0), url, 0, opts.maxLength + opts.offset);
  }
  return fetchResult(res, url, opts.offset, opts.maxLength);
}

/**
 * Turns an answer into a FetchResult or the right error (shared with the
 * registry client). `maxLength` (bytes from `offset`) refuses, before a byte
 * of the body is read, an answer that announces more than could be kept.
 */
export function fetchResult(res: HttpResponse, url: string, offset: number, maxLength = Number.POSITIVE_INFINITY): FetchResult {
  const { status } = res;
  if (status === 200 || status === 206) {
    // a 200 ignored Range and starts at 0: it may carry the `offset` bytes we already hold as well
    const limit = status === 200 ? maxLength + offset : maxLength;
    const announced = contentLength(res.headers);
    if (announced !== null && announced > limit) {
      res.body.destroy();
      throw new AirlockError('EINTEGRITY', `${url}: Content-Length ${announced} is more than the ${limit} bytes that may be read; refused before reading it`, {
        url,
        status,
        contentLength: announced,
        limit,
        retryable: false,
      });
    }
  }
  if (status === 200) return { offset: 0, stream: res.body };
  if (status === 206) {
    const start = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
    if (start && Number(start[1]) === offset) return { offset, stream: res.body };
    res.body.destroy();
    throw new AirlockError('EUPSTREAM', `${url}: protocol error: asked for bytes from ${offset}, got Content-Range "${res.headers['content-range'] ?? ''}"`, {
      url,
      status,
      cause: 'protocol error',
      retryable: false,
    });
  }
  res.body.destroy();
  if ((status === 401 || status === 403) && res.url !== url) throw refusedAfterRedirect(status, url, res.url);
  throw statusError(status, url, res.headers);
}

/** A redirect target that refused us: retryable, since `url` redirects afresh (the signature's query is left out of the message). */
function refusedAfterRedirect(status: number, url: string, target: string): AirlockError {
  let where = target;
  try {
    const t = new URL(target);
    where = `${t.origin}${t.pathname}`;
  } catch {
    // keep it whole
  }
  return new AirlockError(
    'EUPSTREAM',
    `${url}: redirected to ${where}, which answered ${status} (an expired or refused presigned URL: asking ${url} again gets a fresh one)`,
    { url, status, redirectedTo: where, cause: 'redirect target', retryable: true },
  );
}

export function statusError(status: number, url: string, headers?: http.IncomingHttpHeaders): AirlockError {
  if (status === 404 || status === 410) return new AirlockError('ENOTFOUND', `${url}: upstream answered ${status}`, { url, status });
  const retryable = status >= 500 || status === 408 || status === 429;
  // how long a 503 or a 429 asks us to stay away (a node waiting out its cache honours it)
  const retryAfterMs = headers ? retryAfter(headers['retry-after']) : null;
  return new AirlockError('EUPSTREAM', `${url}: upstream answered ${status}`, { url, status, retryable, ...(retryAfterMs !== null ? { retryAfterMs } : {}) });
}

/** Retry-After as milliseconds from now: delay-seconds or an HTTP-date (null when absent or unreadable). */
export function retryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

interface GuardOptions {
  url: string;
  stallMs: number;
  maxLength: number;
  expectedLength: number | null;
  signal?: AbortSignal;
}

/**
 * Re-emits `src` with three guards: at most `maxLength` bytes, a stall timer
 * (paused while our reader is the slow one), and a short body against
 * Content-Length reported as a retryable EUPSTREAM rather than a quiet end.
 */
function guardBody(src: Readable, g: GuardOptions): Readable {
  let seen = 0;
  let last = Date.now();
  let timer: NodeJS.Timeout | null = null;
  const out = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      last = Date.now();
      src.resume();
    },
    destroy(err, cb) {
      if (timer) clearInterval(timer);
      src.destroy();
      cb(err);
    },
  });
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  timer = setInterval(() => {
    const backpressured = out.readableLength >= out.readableHighWaterMark;
    if (backpressured) last = Date.now();
    else if (Date.now() - last > g.stallMs) {
      stop();
      out.destroy(
        new AirlockError('EUPSTREAM', `${g.url}: stalled, no bytes for ${Math.round(g.stallMs / 1000)} s`, {
          url: g.url,
          cause: 'stall',
          retryable: true,
        }),
      );
    }
  }, Math.min(1000, Math.max(50, g.stallMs / 4)));
  timer.unref();
  src.on('data', (chunk: Buffer) => {
    last = Date.now();
    const room = g.maxLength - seen;
    if (chunk.length >= room) {
      seen += room;
      if (room > 0) out.push(chunk.subarray(0, room));
      stop();
      out.push(null);
      src.destroy();
      return;
    }
    seen += chunk.length;
    if (!out.push(chunk)) src.pause();
  });
  src.once('end', () => {
    stop();
    if (out.destroyed || out.readableEnded) return;
    if (g.expectedLength !== null && seen < g.expectedLength && seen < g.maxLength) {
      out.destroy(
        new AirlockError('EUPSTREAM', `${g.url}: connection closed after ${seen} of ${g.expectedLength} bytes`, {
          url: g.url,
          cause: 'short body',
          retryable: true,
        }),
      );
      return;
    }
    out.push(null);
  });
  src.once('error', (e) => {
    stop();
    if (seen >= g.maxLength) return;
    out.destroy(upstreamError(e, g.url, g.signal));
  });
  return out;
}

function contentLength(headers: http.IncomingHttpHeaders): number | null {
  const v = headers['content-length'];
  if (v === undefined || headers['content-encoding']) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

function lower(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function readCa(file: string): string[] {
  try {
    return [readFileSync(file, 'utf8')];
  } catch (e) {
    throw new AirlockError('EUSAGE', `--ca-file ${file}: cannot read: ${(e as Error).message}`, { file });
  }
}

/** Setting `ca` replaces Node's bundle; private CAs are meant to be added to it. */
function withSystemCas(extra: string[]): string[] {
  return [...tls.rootCertificates, ...extra];
}
