//! The media handlers: `POST /v1/images/generations` ([`generations`]: a
//! Gemini image-output model through `generateContent`, one call per image,
//! or an Imagen model through `:predict`), `POST /v1/audio/speech`
//! ([`speech`]: a Gemini TTS model, its PCM answered as WAV or raw), and
//! `GET /images/{id}.png` ([`image`]: the images kept for
//! `response_format: "url"`, readable without a token since the 128-bit id
//! is the credential). An image model makes one image per call, so `n`
//! images take `n` calls at once. Calls go over the key pool with the chat route's
//! retries, metering and OpenAI-format errors; translation is in
//! [`crate::media`].

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::answer::{LogInfo, upstream_failed};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::handlers::{json_headers, read_json, valid_model};
use crate::keys::unix_now;
use crate::media::images::{self, Backend, Format, Image};
use crate::media::speech;
use crate::openai::TranslateError;
use crate::upstream::{Auth, Call};

/// One `POST` of `body` to `path` over the pool (retries on other keys as
/// chat's), read whole and metered; the answer's JSON and the serving key, masked.
async fn call_json(
    app: &App,
    path: String,
    model: &str,
    body: &Value,
    route: &'static str,
) -> Result<(Value, String), GatewayError> {
    let up = Call {
        method: Method::POST,
        path,
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
        route,
    };
    let started = Instant::now();
    let answer = app
        .upstream
        .call(&app.pool, &up)
        .await
        .map_err(|f| upstream_failed(app, f, model, false))?;
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts.saturating_sub(1));
    let mut log = LogInfo::default();
    // An empty `generateContent` answer is retried on another key there.
    let answer = crate::answer::read_answer(app, &up, answer, false, &mut log).await?;
    let masked = app.pool.masked(answer.key).to_string();
    // An upstream that echoes the pool key must not hand it to the client.
    let bytes = crate::upstream::redact(answer.bytes, app.pool.key(answer.key));
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((v, masked)),
        Err(_) => Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        )),
    }
}

/// `scheme://host[/hf]` of this request: where the image URLs point.
fn own_base<B>(req: &Request<B>) -> String {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let scheme = header("x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .map(str::trim)
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let mount = if req.uri().path().starts_with("/hf/") {
        "/hf"
    } else {
        ""
    };
    format!("{scheme}://{host}{mount}")
}

/// The request with its `model` put through `MODEL_ALIASES` (before the
/// OpenAI names are mapped, so an alias can pick any model).
fn aliased(app: &App, mut value: Value) -> Value {
    let resolved = value
        .get("model")
        .and_then(Value::as_str)
        .map(|m| crate::model::resolve_alias(&app.cfg().model_aliases, m).into_owned());
    if let Some(m) = resolved {
        value["model"] = Value::String(m);
    }
    value
}

/// Gemini made no image: the client's answer (400 naming why).
fn no_image(why: String) -> GatewayError {
    GatewayError::Invalid(TranslateError::new("prompt", format!("{why}.")))
}

/// `POST /v1/images/generations`.
pub async fn generations(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let base = own_base(&req);
    let value = aliased(&app, read_json(&app, req).await?);
    let cfg = app.cfg();
    let r = images::parse(&value, &cfg.image_model).map_err(GatewayError::Invalid)?;
    if !valid_model(&r.model) {
        return Err(GatewayError::InvalidModel(r.model));
    }
    log.model.clone_from(&r.model);
    let made = match r.backend {
        Backend::Imagen => {
            let path = app.upstream.path(&format!("/models/{}:predict", r.model));
            let body = images::imagen_body(&r);
            let (answer, key) = call_json(&app, path, &r.model, &body, log.route).await?;
            log.key = key;
            images::imagen_images(&answer).map_err(no_image)?
        }
        Backend::Gemini => {
            let path = app
                .upstream
                .path(&format!("/models/{}:generateContent", r.model));
            // One image per call, the calls at once (each with its retries).
            let body = images::gemini_body(&r);
            let calls = (0..r.n).map(|_| call_json(&app, path.clone(), &r.model, &body, log.route));
            let answers = futures_util::future::try_join_all(calls).await?;
            let mut made = Vec::with_capacity(r.n);
            for (answer, key) in answers {
                log.key = key;
                made.extend(images::gemini_images(&answer).map_err(no_image)?);
            }
            made
        }
    };
    let ttl_ms = cfg.image_url_ttl_minutes.saturating_mul(60_000);
    let mut data = Vec::with_capacity(r.n);
    for img in made.into_iter().take(r.n) {
        data.push(match r.format {
            Format::B64Json => json!({"b64_json": img.b64}),
            Format::Url => json!({"url": keep(&app, &img, &base, ttl_ms)?}),
        });
    }
    let out = json!({"created": unix_now(), "data": data});
    Ok(body::json(StatusCode::OK, &out))
}

/// Keep an image for `response_format: "url"`; its URL on this gateway.
fn keep(app: &App, img: &Image, base: &str, ttl_ms: u64) -> Result<String, GatewayError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(img.b64.as_bytes())
        .map_err(|_| GatewayError::BadAnswer("Gemini's image is not valid base64.".into()))?;
    let Some(id) = app.images.put(&img.mime, Bytes::from(bytes), ttl_ms) else {
        return Err(GatewayError::BadAnswer(
            "The image could not be kept for a URL; ask for b64_json.".into(),
        ));
    };
    Ok(format!("{base}/images/{id}.png"))
}

/// `GET /images/{id}.png`: a kept image (404 once expired or unknown).
pub fn image(app: &App, id: &str) -> Result<Response<Body>, GatewayError> {
    let ttl_ms = app.cfg().image_url_ttl_minutes.saturating_mul(60_000);
    let found = app.images.get(id, ttl_ms);
    let Some((mime, bytes)) = found else {
        return Err(GatewayError::NotFound(
            "No such image: unknown, or older than IMAGE_URL_TTL.",
        ));
    };
    let mut res = Response::new(body::full(bytes));
    let h = res.headers_mut();
    let ct = HeaderValue::from_str(&mime).unwrap_or(HeaderValue::from_static("image/png"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// `POST /v1/audio/speech`: the audio bytes (`audio/wav` or `audio/pcm`).
pub async fn speech(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let value = aliased(&app, read_json(&app, req).await?);
    let r = speech::parse(&value, &app.cfg().tts_model).map_err(GatewayError::Invalid)?;
    if !valid_model(&r.model) {
        return Err(GatewayError::InvalidModel(r.model));
    }
    log.model.clone_from(&r.model);
    let path = app
        .upstream
        .path(&format!("/models/{}:generateContent", r.model));
    let body = speech::gemini_body(&r);
    let (answer, key) = call_json(&app, path, &r.model, &body, log.route).await?;
    log.key = key;
    let (pcm, rate) = speech::audio_of(&answer).map_err(|why| {
        if why.starts_with("the input was blocked") {
            GatewayError::Invalid(TranslateError::new(
                "input",
                format!("Gemini refused: {why}."),
            ))
        } else {
            GatewayError::BadAnswer(format!("{why}.").into())
        }
    })?;
    let audio = match r.format {
        speech::AudioFormat::Wav => speech::wav(&pcm, rate),
        speech::AudioFormat::Pcm => pcm,
    };
    let mut res = Response::new(body::full(audio));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(r.format.content_type()),
    );
    Ok(res)
}
