//! gemini-balance: a small, fast gateway in front of Google's Gemini API.
//!
//! It speaks the OpenAI API (translating to Gemini's native API), passes
//! native Gemini calls through byte for byte, and spreads every call over a
//! pool of Gemini API keys with retries, cooldowns and re-verification.
//!
//! # Layout
//!
//! Data flows one way: server → router (route table, authentication) → API
//! handlers → translate → key pool + upstream client → back; nothing below
//! imports from above (docs/architecture.md has the module listing).
//!
//! * [`config`] — environment + `.env` → [`config::Config`], with clear errors.
//! * [`log`] — one-line logging at `LOG_LEVEL`, secrets masked by callers.
//! * [`server`] — accept loop, connection limits, CORS, panic guard, graceful shutdown.
//! * [`router`] — path → handler, the `/hf` prefix, authentication before any handler.
//! * [`app`] — the shared state: configuration, key pools, upstream client, counters.
//! * [`auth`] — client, admin and native credential rules.
//! * [`request`] — reading request bodies, query parameters and credentials.
//! * [`answer`] — log details, masked logged paths, passed-on headers, whole upstream answers.
//! * [`error`] — the gateway's error answers in each API's format.
//! * [`admin`] — `/health`, `/status`, key resets, `/metrics`, `/verify`.
//! * [`keys`] — the key pool: selection, states, cooldowns, outcome classes.
//! * [`model`] — what a model name may be (checked on every route before it is recorded).
//! * [`upstream`] — the one pooled HTTPS client and the retry loop over keys.
//! * [`proxy`] — outbound proxies (`PROXIES`): their connectors, health and key mapping.
//! * [`keepalive`] — slow non-streamed answers kept alive with whitespace (`NONSTREAM_KEEPALIVE`).
//! * [`longcall`] — a request's deadline over all its attempts (`REQUEST_TIMEOUT`, `TIMEOUT_RETRIES`).
//! * [`smooth`] — Gemini streams' large text events re-cut and paced (`STREAM_SMOOTHING`).
//! * [`openai`] — pure OpenAI ↔ Gemini translation (chat, stream, embeddings, models, errors).
//! * [`handlers`] — the OpenAI chat handler, gluing translation to the upstream.
//! * [`models_api`] — the OpenAI `/v1/embeddings` and `/v1/models` handlers.
//! * [`anthropic`] — pure Anthropic Messages ↔ Gemini translation (request, answer, stream).
//! * [`messages_api`] — the Anthropic Messages handlers (`/v1/messages`, `count_tokens`).
//! * [`media`] — pure image-generation and speech translation, and the kept images.
//! * [`media_api`] — `/v1/images/generations`, `/v1/audio/speech`, `/images/{id}.png`.
//! * [`gemini`] — native pass-through and Gemini's own OpenAI endpoint.
//! * [`status`] — counters behind `/health`, `/status` and `/metrics`.
//! * [`dashboard`] — the key status page at `/dashboard`.
//! * [`scheduler`] — key re-verification and keep-alive jobs.
//! * [`replica`] — other replicas' changes (via the store) applied to this one.
//! * [`store`] — kept and shared state (memory, `DATA_DIR` file, Redis), written behind.
//! * [`body`] — the response body type and small body helpers.
//! * [`clock`] — wall-clock helpers (unix seconds and milliseconds).
//!
//! The fake Gemini upstream used by the tests, `--demo` and the benchmark is a
//! crate of its own, `crates/fake-gemini`; the `demo` feature (on by default)
//! puts it in the binary.

pub mod admin;
pub mod affinity;
pub mod answer;
pub mod anthropic;
pub mod app;
pub mod auth;
pub mod body;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod gemini;
pub mod handlers;
pub mod keepalive;
pub mod keys;
pub mod lanes;
pub mod log;
pub mod longcall;
pub mod media;
pub mod media_api;
pub mod messages_api;
pub mod model;
pub mod models_api;
pub mod openai;
pub mod proxy;
pub mod replica;
pub mod request;
pub mod responses;
pub mod responses_api;
pub mod router;
pub mod scheduler;
pub mod server;
pub mod smooth;
pub mod status;
pub mod store;
pub mod upstream;
pub mod vertex;

/// The crate version, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
