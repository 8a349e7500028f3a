//! Media generation as Google answers it: Imagen's `:predict`
//! (`instances[].prompt`, `parameters.sampleCount` 1–4 and
//! `parameters.aspectRatio` → `predictions[].bytesBase64Encoded` PNGs), the
//! image-output check of `generateContent` (`imageConfig.aspectRatio` must be
//! one Gemini knows), and speech (`responseModalities: ["AUDIO"]` with a
//! prebuilt voice → one `inlineData` part of `audio/L16;codec=pcm;rate=24000`
//! headerless 16-bit PCM, its length derived from the text).

use http::Response;
use serde_json::Value;

use crate::body::{Ctx, FakeBody, json_response};
use crate::encoding::b64_std;
use crate::errors::{GoogleError, err_bad};
use crate::json::Json;
use crate::plan::PNG_1X1;
use crate::request::{arr, field};

/// Aspect ratios Imagen takes.
const IMAGEN_RATIOS: &[&str] = &["1:1", "3:4", "4:3", "9:16", "16:9"];
/// Aspect ratios Gemini's image-output models take.
const GEMINI_RATIOS: &[&str] = &[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
/// Gemini's prebuilt voices (matched case-insensitively, as Google does).
pub(crate) const VOICES: &[&str] = &[
    "Zephyr",
    "Puck",
    "Charon",
    "Kore",
    "Fenrir",
    "Leda",
    "Orus",
    "Aoede",
    "Callirrhoe",
    "Autonoe",
    "Enceladus",
    "Iapetus",
    "Umbriel",
    "Algieba",
    "Despina",
    "Erinome",
    "Algenib",
    "Rasalgethi",
    "Laomedeia",
    "Achernar",
    "Alnilam",
    "Schedar",
    "Gacrux",
    "Pulcherrima",
    "Achird",
    "Zubenelgenubi",
    "Vindemiatrix",
    "Sadachbia",
    "Sadaltager",
    "Sulafat",
];
/// PCM bytes of speech per character of text (10 ms at 24 kHz, 16-bit).
pub(crate) const PCM_BYTES_PER_CHAR: usize = 480;

/// Whether `model` is an Imagen model (served by `:predict`).
pub(crate) fn is_imagen(model: &str) -> bool {
    model.starts_with("imagen-")
}

/// `POST models/{imagen}:predict`.
pub(crate) fn predict(ctx: &Ctx, root: &Value) -> Result<Response<FakeBody>, GoogleError> {
    let prompt = arr(root.get("instances"))
        .first()
        .and_then(|i| i.get("prompt"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if prompt.trim().is_empty() {
        return Err(err_bad(
            "* PredictRequest.instances[0].prompt: is required\n",
        ));
    }
    let params = root.get("parameters");
    let count = match params.and_then(|p| field(p, "sampleCount", "sample_count")) {
        None => 4,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=4) => n as usize,
            _ => return Err(err_bad("Number of images must be between 1 and 4.")),
        },
    };
    if let Some(r) = params.and_then(|p| field(p, "aspectRatio", "aspect_ratio"))
        && !r.as_str().is_some_and(|r| IMAGEN_RATIOS.contains(&r))
    {
        return Err(err_bad("Aspect ratio is not supported."));
    }
    let one = Json::obj([
        ("bytesBase64Encoded", Json::s(PNG_1X1)),
        ("mimeType", Json::s("image/png")),
    ]);
    let predictions = Json::Arr(vec![one; count]);
    Ok(json_response(
        ctx,
        200,
        &Json::obj([("predictions", predictions)]),
    ))
}

/// The request's `generationConfig`.
fn gen_config(root: &Value) -> Option<&Value> {
    field(root, "generationConfig", "generation_config")
}

/// Whether the request asks for a modality (case-insensitive, as Google reads it).
fn wants(root: &Value, modality: &str) -> bool {
    let modalities =
        gen_config(root).and_then(|g| field(g, "responseModalities", "response_modalities"));
    arr(modalities)
        .iter()
        .any(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case(modality)))
}

/// Whether a generate request asks for audio (a speech request).
pub(crate) fn wants_audio(root: &Value) -> bool {
    wants(root, "AUDIO")
}

/// Google's check on an image-output request: a known `imageConfig.aspectRatio`.
pub(crate) fn check_image_config(root: &Value) -> Result<(), GoogleError> {
    let ratio = gen_config(root)
        .and_then(|g| field(g, "imageConfig", "image_config"))
        .and_then(|c| field(c, "aspectRatio", "aspect_ratio"));
    match ratio {
        Some(r) if !r.as_str().is_some_and(|r| GEMINI_RATIOS.contains(&r)) => {
            Err(err_bad("Unsupported aspect ratio."))
        }
        _ => Ok(()),
    }
}

/// The voice a speech request names (`speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName`).
fn voice_name(root: &Value) -> Option<&str> {
    let speech = gen_config(root).and_then(|g| field(g, "speechConfig", "speech_config"))?;
    let voice = field(speech, "voiceConfig", "voice_config")?;
    let prebuilt = field(voice, "prebuiltVoiceConfig", "prebuilt_voice_config")?;
    field(prebuilt, "voiceName", "voice_name")?.as_str()
}

/// All the text of the request's contents.
fn text_of(root: &Value) -> String {
    let mut out = String::new();
    for c in arr(root.get("contents")) {
        for p in arr(c.get("parts")) {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
    }
    out
}

/// The PCM the fake speaks for `text`: [`PCM_BYTES_PER_CHAR`] bytes per
/// character of a quiet saw wave (16-bit little-endian samples).
pub(crate) fn pcm_for(text: &str) -> Vec<u8> {
    let samples = text.chars().count() * PCM_BYTES_PER_CHAR / 2;
    let mut pcm = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        let s = ((i % 100) as i16 - 50) * 40;
        pcm.extend_from_slice(&s.to_le_bytes());
    }
    pcm
}

/// A speech answer: one `inlineData` part of 24 kHz 16-bit mono PCM.
pub(crate) fn speech(
    ctx: &Ctx,
    model: &str,
    root: &Value,
) -> Result<Response<FakeBody>, GoogleError> {
    if !model.contains("tts") {
        return Err(err_bad(
            "The requested combination of response modalities (AUDIO) is not supported by the model.",
        ));
    }
    let voice = voice_name(root).unwrap_or("Kore");
    if !VOICES.iter().any(|v| v.eq_ignore_ascii_case(voice)) {
        return Err(err_bad(format!("Voice {voice} is not supported.")));
    }
    let text = text_of(root);
    if text.trim().is_empty() {
        return Err(err_bad(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    let pcm = pcm_for(&text);
    let audio = Json::obj([(
        "inlineData",
        Json::obj([
            ("mimeType", Json::s("audio/L16;codec=pcm;rate=24000")),
            ("data", Json::s(b64_std(&pcm))),
        ]),
    )]);
    // An `Empty` key answers with no content here too.
    let content = if ctx.empty {
        Json::obj([("role", Json::s("model"))])
    } else {
        Json::obj([
            ("role", Json::s("model")),
            ("parts", Json::Arr(vec![audio])),
        ])
    };
    let candidate = Json::obj([
        ("content", content),
        ("finishReason", Json::s("STOP")),
        ("index", Json::Int(0)),
    ]);
    let prompt = (text.len() / 4).max(1) as i64;
    let audio_tokens = (pcm.len() / 1920).max(1) as i64;
    let usage = Json::obj([
        ("promptTokenCount", Json::Int(prompt)),
        ("candidatesTokenCount", Json::Int(audio_tokens)),
        ("totalTokenCount", Json::Int(prompt + audio_tokens)),
    ]);
    let answer = Json::obj([
        ("candidates", Json::Arr(vec![candidate])),
        ("usageMetadata", usage),
        ("modelVersion", Json::s(model.to_string())),
    ]);
    Ok(json_response(ctx, 200, &answer))
}
