// Cloudflare Worker in front of a gemini-balance Hugging Face Space.
//
// Every request is forwarded to the Space, its path prefixed with /hf:
//   https://<worker-name>.<your-subdomain>.workers.dev/v1/chat/completions
//     -> https://<SPACE_HOST>/hf/v1/chat/completions
// Method, headers, query string and body pass through unchanged, and both
// bodies are streamed (a client's upload and a `stream: true` answer are never
// buffered here). Paths that already start with /hf are not prefixed twice.
//
// Settings (dashboard: the Worker → Settings → Variables and Secrets; or
// `npx wrangler secret put SPACE_HOST` from deploy/). deploy/wrangler.toml sets
// none of them and keeps the dashboard's on deploy (keep_vars = true):
//   SPACE_HOST      required: the Space's host, e.g. "alice-gemini-balance.hf.space"
//                   (a full "https://host/" is accepted too). Unset, empty or a
//                   placeholder, every request gets a 500 saying "SPACE_HOST is not set".
//   SPACE_PROTOCOL  optional: "https" (default); "http" only for local tests
//   PATH_PREFIX     optional: "/hf" (default); "" to forward paths as they are
//
// The Worker's own errors (configuration, Space unreachable) come in the format
// of the API called: Google's {"error":{"code","message","status"}} on native
// Gemini paths (/v1beta/..., /gemini/..., /v1/models/{m}:action), OpenAI's
// {"error":{"message","type","param","code"}} everywhere else.
//
// Deploy: paste this file into the dashboard's editor, or `npx wrangler deploy`
// from deploy/ (see README.md, "Cloudflare Worker").

export default {
  async fetch(request, env) {
    let target;
    try {
      target = upstreamUrl(request.url, env || {});
    } catch (e) {
      return errorResponse(request.url, 500, `cloudflare-worker: ${e.message}`, "worker_configuration_error");
    }

    const headers = new Headers(request.headers);
    // The runtime sets Host from the URL; these describe the hop to the Worker.
    headers.delete("host");
    headers.set("x-forwarded-host", new URL(request.url).host);

    const init = {
      method: request.method,
      headers,
      // Pass redirects back to the client rather than following them here.
      redirect: "manual",
    };
    if (request.method !== "GET" && request.method !== "HEAD" && request.body) {
      init.body = request.body; // a ReadableStream: streamed, not buffered
    }

    let upstream;
    try {
      upstream = await fetch(target, init);
    } catch (e) {
      return errorResponse(
        request.url,
        502,
        `cloudflare-worker: the Space did not answer (${e.message})`,
        "upstream_unreachable",
      );
    }
    // Same status, headers and a streamed body.
    return new Response(upstream.body, upstream);
  },
};

/** The Space URL for an incoming request URL. Throws on a bad configuration. */
export function upstreamUrl(requestUrl, env) {
  let host = String(env.SPACE_HOST || "").trim();
  if (!host || isPlaceholder(host)) {
    const was = host ? ` (it holds the example value ${JSON.stringify(host)})` : "";
    throw new Error(
      `SPACE_HOST is not set${was}; set it to your Space's host, e.g. alice-gemini-balance.hf.space, ` +
        "under the Worker's Settings → Variables and Secrets, or with `npx wrangler secret put SPACE_HOST`",
    );
  }
  let protocol = String(env.SPACE_PROTOCOL || "https").trim().replace(/:?\/*$/, "");
  const scheme = host.match(/^([a-z]+):\/\//i);
  if (scheme) {
    protocol = scheme[1];
    host = host.slice(scheme[0].length);
  }
  host = host.replace(/\/.*$/, "");
  if (protocol !== "https" && protocol !== "http") {
    throw new Error(`SPACE_PROTOCOL must be https or http, not ${JSON.stringify(protocol)}`);
  }
  const prefix = String(env.PATH_PREFIX ?? "/hf").replace(/\/+$/, "");

  const incoming = new URL(requestUrl);
  let path = incoming.pathname;
  if (prefix && path !== prefix && !path.startsWith(prefix + "/")) {
    path = prefix + path;
  }
  if (path === "") path = "/";
  const out = new URL(`${protocol}://${host}`);
  out.pathname = path;
  out.search = incoming.search;
  return out.toString();
}

/** Example values from the docs (and from older wrangler.toml files) that are not a real Space. */
function isPlaceholder(host) {
  return /[<>]/.test(host) || /^(https?:\/\/)?your-user-your-space\.hf\.space\/?$/i.test(host);
}

/** Whether a request path is a native Gemini route of the gateway (Google's error format). */
export function isNativePath(pathname) {
  const p = pathname.replace(/^\/hf(?=\/|$)/, "");
  return /^\/(v1beta|gemini)(\/|$)/.test(p) || /^\/v1\/models\/[^/]*:/.test(p);
}

/** An error of the Worker itself, in the format of the API the client called. */
function errorResponse(requestUrl, status, message, type) {
  if (isNativePath(new URL(requestUrl).pathname)) {
    const statusName = status === 502 ? "UNAVAILABLE" : "INTERNAL";
    return json(status, { error: { code: status, message, status: statusName } });
  }
  return json(status, { error: { message, type, param: null, code: null } });
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}
