//! OpenAI's `POST /v1/images/generations` ↔ Gemini: the request read and
//! checked ([`parse`]: `prompt`, `n` 1–4, `size` → the nearest aspect ratio
//! the backend takes, `response_format`, `model`), the Gemini bodies
//! ([`gemini_body`] for image-output models' `generateContent`,
//! [`imagen_body`] for Imagen's `:predict`), and the images read back from
//! their answers ([`gemini_images`], [`imagen_images`]).

use serde_json::{Value, json};

use crate::openai::TranslateError;

/// The sizes `size` may name (OpenAI's list); anything else is a 400 naming them.
pub const SIZES: &[&str] = &[
    "auto",
    "256x256",
    "512x512",
    "1024x1024",
    "1536x1024",
    "1024x1536",
    "1792x1024",
    "1024x1792",
];
/// Most images one request may ask for.
pub const MAX_N: u64 = 4;
/// Aspect ratios Imagen takes.
const IMAGEN_RATIOS: &[&str] = &["1:1", "3:4", "4:3", "9:16", "16:9"];
/// Aspect ratios Gemini's image-output models take.
const GEMINI_RATIOS: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];

/// Which Gemini API makes the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A Gemini image-output model: `generateContent`, one image per call.
    Gemini,
    /// An Imagen model (`imagen-*`): `:predict` with `sampleCount`.
    Imagen,
}

/// How the images are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `data[].b64_json` (the default).
    B64Json,
    /// `data[].url`: the gateway keeps the image and serves it.
    Url,
}

/// A checked image request.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRequest {
    /// The Gemini model.
    pub model: String,
    /// Which API it is called through.
    pub backend: Backend,
    /// The prompt.
    pub prompt: String,
    /// How many images (1–[`MAX_N`]).
    pub n: usize,
    /// The aspect ratio (`None`: the model's default, for `size: "auto"` or none).
    pub aspect: Option<&'static str>,
    /// How the images are answered.
    pub format: Format,
}

/// One image from Gemini: its MIME type and base64 data.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// e.g. `image/png`.
    pub mime: String,
    /// Standard base64.
    pub b64: String,
}

/// Whether `model` names one of OpenAI's image models (which mean `IMAGE_MODEL`).
fn openai_model(model: &str) -> bool {
    ["dall-e", "gpt-image", "chatgpt-image"]
        .iter()
        .any(|p| model.starts_with(p))
}

/// The aspect ratio among `ratios` nearest to `w`:`h` (by the ratio's logarithm).
fn nearest(w: f64, h: f64, ratios: &[&'static str]) -> Option<&'static str> {
    let want = (w / h).ln();
    let value = |r: &str| {
        let (a, b) = r.split_once(':')?;
        Some((a.parse::<f64>().ok()? / b.parse::<f64>().ok()?).ln())
    };
    ratios
        .iter()
        .filter_map(|r| value(r).map(|v| (*r, (v - want).abs())))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(r, _)| r)
}

/// The aspect ratio for `size` on `backend`; `Err` for a size not in [`SIZES`].
pub fn aspect_for(size: &str, backend: Backend) -> Result<Option<&'static str>, TranslateError> {
    if !SIZES.contains(&size) {
        let msg = format!(
            "size: `{}` is not supported; use one of {}.",
            size.chars().take(40).collect::<String>(),
            SIZES.join(", ")
        );
        return Err(TranslateError::new("size", msg));
    }
    let Some((w, h)) = size.split_once('x') else {
        return Ok(None);
    };
    let (Ok(w), Ok(h)) = (w.parse::<f64>(), h.parse::<f64>()) else {
        return Ok(None);
    };
    let ratios = match backend {
        Backend::Gemini => GEMINI_RATIOS,
        Backend::Imagen => IMAGEN_RATIOS,
    };
    Ok(nearest(w, h, ratios))
}

/// Read and check an OpenAI image request; `image_model` is `IMAGE_MODEL`.
pub fn parse(v: &Value, image_model: &str) -> Result<ImageRequest, TranslateError> {
    if !v.is_object() {
        return Err(TranslateError::new("body", "expected a JSON object"));
    }
    let prompt = match v.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ => {
            return Err(TranslateError::new(
                "prompt",
                "prompt: required, a non-empty string.",
            ));
        }
    };
    let model = match v.get("model") {
        None | Some(Value::Null) => image_model.to_string(),
        Some(Value::String(m)) if openai_model(m) => image_model.to_string(),
        Some(Value::String(m)) => crate::openai::bare_model(m).to_string(),
        Some(_) => return Err(TranslateError::new("model", "model: expected a string.")),
    };
    let backend = if model.starts_with("imagen") {
        Backend::Imagen
    } else {
        Backend::Gemini
    };
    let n = match v.get("n") {
        None | Some(Value::Null) => 1,
        Some(n) => match n.as_u64() {
            Some(n @ 1..=MAX_N) => n as usize,
            _ => {
                let msg = format!("n: expected an integer from 1 to {MAX_N}.");
                return Err(TranslateError::new("n", msg));
            }
        },
    };
    let aspect = match v.get("size") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => aspect_for(s, backend)?,
        Some(_) => return Err(TranslateError::new("size", "size: expected a string.")),
    };
    let format = match v.get("response_format") {
        None | Some(Value::Null) => Format::B64Json,
        Some(Value::String(f)) if f == "b64_json" => Format::B64Json,
        Some(Value::String(f)) if f == "url" => Format::Url,
        Some(_) => {
            return Err(TranslateError::new(
                "response_format",
                "response_format: use `b64_json` (the default) or `url`.",
            ));
        }
    };
    Ok(ImageRequest {
        model,
        backend,
        prompt,
        n,
        aspect,
        format,
    })
}

/// The `generateContent` body for a Gemini image-output model (one image).
pub fn gemini_body(r: &ImageRequest) -> Value {
    let mut config = json!({"responseModalities": ["TEXT", "IMAGE"]});
    if let Some(a) = r.aspect {
        config["imageConfig"] = json!({"aspectRatio": a});
    }
    json!({
        "contents": [{"role": "user", "parts": [{"text": r.prompt}]}],
        "generationConfig": config,
    })
}

/// The `:predict` body for an Imagen model (`sampleCount` = `n`).
pub fn imagen_body(r: &ImageRequest) -> Value {
    let mut parameters = json!({"sampleCount": r.n});
    if let Some(a) = r.aspect {
        parameters["aspectRatio"] = json!(a);
    }
    json!({"instances": [{"prompt": r.prompt}], "parameters": parameters})
}

/// A string member under its camelCase or snake_case name.
fn member<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

/// The images of a `generateContent` answer (every `inlineData` part of an
/// `image/*` type), or why there are none (the block or finish reason, or
/// the model's text).
pub fn gemini_images(answer: &Value) -> Result<Vec<Image>, String> {
    if let Some(reason) = answer
        .get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .and_then(Value::as_str)
    {
        return Err(format!("the prompt was blocked ({reason})"));
    }
    let mut images = Vec::new();
    let mut text = String::new();
    let mut finish = None;
    let candidates = answer.get("candidates").and_then(Value::as_array);
    for c in candidates.into_iter().flatten() {
        finish = finish.or(c.get("finishReason").and_then(Value::as_str));
        let parts = c.pointer("/content/parts").and_then(Value::as_array);
        for p in parts.into_iter().flatten() {
            if let Some(d) = member(p, "inlineData", "inline_data") {
                let mime = member(d, "mimeType", "mime_type").and_then(Value::as_str);
                let data = d.get("data").and_then(Value::as_str);
                if let (Some(mime), Some(data)) = (mime, data)
                    && mime.starts_with("image/")
                {
                    images.push(Image {
                        mime: mime.to_string(),
                        b64: data.to_string(),
                    });
                }
            } else if let Some(t) = p.get("text").and_then(Value::as_str)
                && p.get("thought") != Some(&Value::Bool(true))
            {
                text.push_str(t);
            }
        }
    }
    if !images.is_empty() {
        return Ok(images);
    }
    Err(match (finish, text.trim()) {
        (Some(f), _) if f != "STOP" => format!("Gemini returned no image (finishReason {f})"),
        (_, "") => "Gemini returned no image".to_string(),
        (_, t) => format!(
            "Gemini returned no image; it said: {}",
            t.chars().take(300).collect::<String>()
        ),
    })
}

/// The images of a `:predict` answer; filtered samples are left out. `Err`
/// when none is left (with the first filter reason, if any).
pub fn imagen_images(answer: &Value) -> Result<Vec<Image>, String> {
    let mut images = Vec::new();
    let mut reason = None;
    let predictions = answer.get("predictions").and_then(Value::as_array);
    for p in predictions.into_iter().flatten() {
        match p.get("bytesBase64Encoded").and_then(Value::as_str) {
            Some(b64) => images.push(Image {
                mime: p
                    .get("mimeType")
                    .and_then(Value::as_str)
                    .unwrap_or("image/png")
                    .to_string(),
                b64: b64.to_string(),
            }),
            None => reason = reason.or(p.get("raiFilteredReason").and_then(Value::as_str)),
        }
    }
    match (images.is_empty(), reason) {
        (false, _) => Ok(images),
        (true, Some(r)) => Err(format!("Imagen returned no image: {r}")),
        (true, None) => Err("Imagen returned no image".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_the_nearest_supported_aspect_ratio() {
        let g = |s| aspect_for(s, Backend::Gemini).expect("known size");
        let i = |s| aspect_for(s, Backend::Imagen).expect("known size");
        assert_eq!(g("1024x1024"), Some("1:1"));
        assert_eq!(g("256x256"), Some("1:1"));
        assert_eq!(g("1792x1024"), Some("16:9"));
        assert_eq!(g("1024x1792"), Some("9:16"));
        assert_eq!(g("1536x1024"), Some("3:2"));
        assert_eq!(g("1024x1536"), Some("2:3"));
        assert_eq!(i("1536x1024"), Some("4:3"), "Imagen has no 3:2");
        assert_eq!(i("1024x1536"), Some("3:4"));
        assert_eq!(i("1792x1024"), Some("16:9"));
        assert_eq!(g("auto"), None);
        let e = aspect_for("999x1", Backend::Gemini).expect_err("unknown");
        assert!(e.message.contains("1024x1024") && e.message.contains("1792x1024"));
        assert_eq!(e.param.as_deref(), Some("size"));
    }

    #[test]
    fn requests_are_checked_and_models_chosen() {
        let ok = |v: Value| parse(&v, "gemini-2.5-flash-image").expect("valid");
        let r = ok(json!({"prompt": "a fox"}));
        assert_eq!(r.model, "gemini-2.5-flash-image");
        assert_eq!(
            (r.backend, r.n, r.format),
            (Backend::Gemini, 1, Format::B64Json)
        );
        let r = ok(json!({"prompt": "a fox", "model": "dall-e-3", "response_format": "url"}));
        assert_eq!(
            (r.model.as_str(), r.format),
            ("gemini-2.5-flash-image", Format::Url)
        );
        let r = ok(json!({"prompt": "a", "model": "models/imagen-4.0-generate-001", "n": 3}));
        assert_eq!((r.backend, r.n), (Backend::Imagen, 3));
        assert_eq!(r.model, "imagen-4.0-generate-001");
        let bad = |v: Value| parse(&v, "m").expect_err("invalid").param;
        assert_eq!(bad(json!({"prompt": ""})).as_deref(), Some("prompt"));
        assert_eq!(bad(json!({"prompt": "a", "n": 5})).as_deref(), Some("n"));
        assert_eq!(bad(json!({"prompt": "a", "n": 0})).as_deref(), Some("n"));
        assert_eq!(
            bad(json!({"prompt": "a", "size": "7x7"})).as_deref(),
            Some("size")
        );
        let f = bad(json!({"prompt": "a", "response_format": "png"}));
        assert_eq!(f.as_deref(), Some("response_format"));
    }

    #[test]
    fn bodies_and_answers() {
        let r = parse(&json!({"prompt": "p", "size": "1792x1024", "n": 2}), "g").expect("ok");
        let b = gemini_body(&r);
        assert_eq!(b["generationConfig"]["imageConfig"]["aspectRatio"], "16:9");
        assert_eq!(b["contents"][0]["parts"][0]["text"], "p");
        let mut r2 = r.clone();
        r2.backend = Backend::Imagen;
        let b = imagen_body(&r2);
        assert_eq!(b["parameters"]["sampleCount"], 2);
        assert_eq!(b["instances"][0]["prompt"], "p");
        let answer = json!({"candidates": [{"content": {"parts": [
            {"text": "here"}, {"inlineData": {"mimeType": "image/png", "data": "QUJD"}}]},
            "finishReason": "STOP"}]});
        let imgs = gemini_images(&answer).expect("an image");
        assert_eq!(imgs[0].b64, "QUJD");
        let declined = json!({"candidates": [{"content": {"parts": [{"text": "no"}]},
            "finishReason": "IMAGE_SAFETY"}]});
        assert!(
            gemini_images(&declined)
                .expect_err("none")
                .contains("IMAGE_SAFETY")
        );
        let preds = json!({"predictions": [{"bytesBase64Encoded": "QQ==", "mimeType": "image/png"},
            {"raiFilteredReason": "filtered"}]});
        assert_eq!(imagen_images(&preds).expect("one").len(), 1);
        let none = json!({"predictions": [{"raiFilteredReason": "filtered"}]});
        assert!(imagen_images(&none).expect_err("none").contains("filtered"));
    }
}
