// Cloudflare Worker in front of a gemini-balance Hugging Face Space.
//
// Every request is forwarded to the Space, its path prefixed with /hf:
//   https://<worker>.workers.dev/v1/chat/completions
//     -> https://<SPACE_HOST>/hf/v1/chat/completions
// Method, headers, query string and body pass through unchanged, and both
// bodies are streamed (a client's upload and a `stream: true` answer are never
// buffered here). Paths that already start with /hf are not prefixed twice.
//
// Settings (Worker → Settings → Variables, or [vars] in deploy/wrangler.toml):
//   SPACE_HOST      required: the Space's host, e.g. "your-user-your-space.hf.space"
//                   (a full "https://host/" is accepted too)
//   SPACE_PROTOCOL  optional: "https" (default); "http" only for local tests
//   PATH_PREFIX     optional: "/hf" (default); "" to forward paths as they are
//
// Deploy: paste this file into the dashboard's editor, or `npx wrangler deploy`
// from deploy/ (see README.md, "Cloudflare Worker").

export default {
  async fetch(request, env) {
    let target;
    try {
      target = upstreamUrl(request.url, env || {});
    } catch (e) {
      return json(500, {
        error: {
          message: `cloudflare-worker: ${e.message}`,
          type: "worker_configuration_error",
          param: null,
          code: null,
        },
      });
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
      return json(502, {
        error: {
          message: `cloudflare-worker: the Space did not answer (${e.message})`,
          type: "upstream_unreachable",
          param: null,
          code: null,
        },
      });
    }
    // Same status, headers and a streamed body.
    return new Response(upstream.body, upstream);
  },
};

/** The Space URL for an incoming request URL. Throws on a bad configuration. */
export function upstreamUrl(requestUrl, env) {
  let host = String(env.SPACE_HOST || "").trim();
  if (!host) {
    throw new Error(
      "SPACE_HOST is not set; add it under Settings → Variables (e.g. your-user-your-space.hf.space)",
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

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}
