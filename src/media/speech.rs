//! OpenAI's `POST /v1/audio/speech` ↔ a Gemini TTS model: the request read
//! and checked ([`parse`]: `model`, `input`, `voice` mapped by [`VOICES`],
//! `instructions`, `response_format` `wav` or `pcm`, `speed`), the
//! `generateContent` body ([`gemini_body`]), the PCM read back from the
//! answer ([`audio_of`]) and the WAV header put around it ([`wav`]).
//!
//! Differences from OpenAI, documented in the README: `wav` is the default
//! format (OpenAI's is `mp3`, which would need an encoder); `mp3`, `opus`,
//! `aac` and `flac` get a 400 naming `wav` and `pcm`; `speed` is checked
//! (0.25–4.0) and otherwise ignored, since Gemini TTS has no speaking-rate
//! parameter; `instructions` becomes a style line before the text, as
//! Gemini's TTS prompts are written ("Say cheerfully: …").

use base64::Engine;
use serde_json::{Value, json};

use crate::openai::TranslateError;

/// OpenAI's voices and the Gemini prebuilt voice each stands for (chosen
/// by Google's one-word descriptions of its voices).
pub const VOICES: &[(&str, &str)] = &[
    ("alloy", "Kore"),     // neutral, firm
    ("ash", "Orus"),       // firm, lower
    ("ballad", "Algieba"), // smooth
    ("coral", "Aoede"),    // breezy, warm
    ("echo", "Charon"),    // informative
    ("fable", "Iapetus"),  // clear, storytelling
    ("onyx", "Algenib"),   // deep, gravelly
    ("nova", "Leda"),      // youthful, bright
    ("sage", "Gacrux"),    // mature, calm
    ("shimmer", "Zephyr"), // bright
    ("verse", "Puck"),     // upbeat
    ("marin", "Sulafat"),  // warm
    ("cedar", "Achird"),   // friendly
];

/// Gemini's prebuilt voices (accepted as they are, any case).
pub const GEMINI_VOICES: &[&str] = &[
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

/// OpenAI's speech models, which mean `TTS_MODEL`.
const OPENAI_MODELS: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// The sample rate Gemini TTS speaks at when its MIME type does not say.
pub const DEFAULT_RATE: u32 = 24_000;

/// How the audio is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFormat {
    /// A RIFF/WAVE file around the PCM (the default).
    Wav,
    /// The raw PCM: signed 16-bit little-endian mono.
    Pcm,
}

impl AudioFormat {
    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
        }
    }
}

/// A checked speech request.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechRequest {
    /// The Gemini TTS model.
    pub model: String,
    /// The Gemini prebuilt voice.
    pub voice: &'static str,
    /// The text to speak, with the style line when `instructions` was given.
    pub text: String,
    /// How the audio is answered.
    pub format: AudioFormat,
}

/// The Gemini voice for an OpenAI or Gemini voice name (any case).
pub fn voice_for(name: &str) -> Option<&'static str> {
    let name = name.trim();
    VOICES
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(name))
        .map(|(_, g)| *g)
        .or_else(|| {
            GEMINI_VOICES
                .iter()
                .find(|g| g.eq_ignore_ascii_case(name))
                .copied()
        })
}

/// The model to call: OpenAI's names (and `gpt-4o-mini-tts-*` snapshots)
/// and an absent model mean `tts_model`; others are Gemini names.
fn model_for(v: &Value, tts_model: &str) -> Result<String, TranslateError> {
    match v.get("model") {
        None | Some(Value::Null) => Ok(tts_model.to_string()),
        Some(Value::String(m))
            if OPENAI_MODELS.contains(&m.as_str()) || m.starts_with("gpt-4o-mini-tts-") =>
        {
            Ok(tts_model.to_string())
        }
        Some(Value::String(m)) => Ok(crate::openai::bare_model(m).to_string()),
        Some(_) => Err(TranslateError::new("model", "model: expected a string.")),
    }
}

/// The voice: a string naming an OpenAI or Gemini voice (default `alloy`'s).
fn voice_of(v: &Value) -> Result<&'static str, TranslateError> {
    let unknown = || {
        let openai: Vec<&str> = VOICES.iter().map(|(o, _)| *o).collect();
        let msg = format!(
            "voice: use one of OpenAI's voices ({}) or a Gemini prebuilt voice ({}).",
            openai.join(", "),
            GEMINI_VOICES.join(", ")
        );
        TranslateError::new("voice", msg)
    };
    match v.get("voice") {
        None | Some(Value::Null) => Ok(VOICES[0].1),
        Some(Value::String(name)) => voice_for(name).ok_or_else(unknown),
        Some(_) => Err(unknown()),
    }
}

/// The answer format: `wav` (default) or `pcm`; others are refused naming these.
fn format_of(v: &Value) -> Result<AudioFormat, TranslateError> {
    let name = match v.get("response_format") {
        None | Some(Value::Null) => return Ok(AudioFormat::Wav),
        Some(Value::String(f)) if f == "wav" => return Ok(AudioFormat::Wav),
        Some(Value::String(f)) if f == "pcm" => return Ok(AudioFormat::Pcm),
        Some(Value::String(f)) => f.chars().take(20).collect::<String>(),
        Some(_) => "(not a string)".to_string(),
    };
    let msg = format!(
        "response_format: `{name}` is not supported; use `wav` (the default) or `pcm` (raw 24 kHz 16-bit mono). Gemini speaks PCM and the gateway has no encoder for other formats."
    );
    Err(TranslateError::new("response_format", msg))
}

/// Read and check an OpenAI speech request; `tts_model` is `TTS_MODEL`.
pub fn parse(v: &Value, tts_model: &str) -> Result<SpeechRequest, TranslateError> {
    if !v.is_object() {
        return Err(TranslateError::new("body", "expected a JSON object"));
    }
    let input = match v.get("input") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
        _ => {
            return Err(TranslateError::new(
                "input",
                "input: required, a non-empty string.",
            ));
        }
    };
    let model = model_for(v, tts_model)?;
    let voice = voice_of(v)?;
    let format = format_of(v)?;
    match v.get("speed") {
        None | Some(Value::Null) => {}
        Some(s) if s.as_f64().is_some_and(|s| (0.25..=4.0).contains(&s)) => {}
        Some(_) => {
            return Err(TranslateError::new(
                "speed",
                "speed: expected a number from 0.25 to 4.0.",
            ));
        }
    }
    if v.get("stream_format").and_then(Value::as_str) == Some("sse") {
        return Err(TranslateError::new(
            "stream_format",
            "stream_format: only `audio` is supported.",
        ));
    }
    let text = match v.get("instructions").and_then(Value::as_str).map(str::trim) {
        Some(i) if !i.is_empty() => {
            let style = i.trim_end_matches(['.', ':', ' ']);
            format!("{style}: {input}")
        }
        _ => input.to_string(),
    };
    Ok(SpeechRequest {
        model,
        voice,
        text,
        format,
    })
}

/// The `generateContent` body: audio output in the request's voice.
pub fn gemini_body(r: &SpeechRequest) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": r.text}]}],
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": r.voice}}},
        },
    })
}

/// The `rate=` parameter of an `audio/L16;codec=pcm;rate=24000` MIME type.
fn rate_of(mime: &str) -> Option<u32> {
    mime.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("rate"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The `data` chunk of a WAV file and its sample rate (some models answer
/// `audio/wav`): `None` unless it is 16-bit mono PCM.
fn pcm_of_wav(wav: &[u8]) -> Option<(Vec<u8>, u32)> {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let (mut at, mut rate) = (12, None);
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().ok()?) as usize;
        let body = wav.get(at + 8..(at + 8).saturating_add(size).min(wav.len()))?;
        if id == b"fmt " && body.len() >= 16 {
            let mono16 = body[0..2] == [1, 0] && body[2..4] == [1, 0] && body[14..16] == [16, 0];
            if !mono16 {
                return None;
            }
            rate = Some(u32::from_le_bytes(body[4..8].try_into().ok()?));
        } else if id == b"data" {
            return Some((body.to_vec(), rate?));
        }
        at += 8 + size + (size & 1);
    }
    None
}

/// The PCM of a TTS answer (every audio `inlineData` part, in order) and
/// its sample rate; `Err` says why there is none.
pub fn audio_of(answer: &Value) -> Result<(Vec<u8>, u32), String> {
    if let Some(r) = answer
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
    {
        return Err(format!("the input was blocked ({r})"));
    }
    let (mut pcm, mut rate) = (Vec::new(), None);
    let parts = answer
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array);
    for p in parts.into_iter().flatten() {
        let Some(d) = p.get("inlineData").or_else(|| p.get("inline_data")) else {
            continue;
        };
        let mime = d
            .get("mimeType")
            .or_else(|| d.get("mime_type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(data) = d.get("data").and_then(Value::as_str) else {
            continue;
        };
        if !mime.starts_with("audio/") {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| "Gemini's audio is not valid base64".to_string())?;
        if mime.contains("wav") {
            let (data, r) =
                pcm_of_wav(&bytes).ok_or("Gemini's WAV audio is not 16-bit mono PCM")?;
            pcm.extend_from_slice(&data);
            rate = rate.or(Some(r));
        } else {
            pcm.extend_from_slice(&bytes);
            rate = rate.or(rate_of(mime));
        }
    }
    if pcm.is_empty() {
        let finish = answer
            .pointer("/candidates/0/finishReason")
            .and_then(Value::as_str)
            .unwrap_or("none");
        return Err(format!("Gemini returned no audio (finishReason {finish})"));
    }
    Ok((pcm, rate.unwrap_or(DEFAULT_RATE)))
}

/// A WAV file: the canonical 44-byte RIFF header for 16-bit mono PCM at
/// `rate`, then the PCM unchanged.
pub fn wav(pcm: &[u8], rate: u32) -> Vec<u8> {
    let n = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + n).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wav_header_is_canonical() {
        // Wire reference: N = 96,000 bytes at 24 kHz.
        let pcm = vec![0u8; 96_000];
        let w = wav(&pcm, 24_000);
        let expected: [u8; 44] = [
            0x52, 0x49, 0x46, 0x46, 0x24, 0x77, 0x01, 0x00, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6D,
            0x74, 0x20, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xC0, 0x5D, 0x00, 0x00,
            0x80, 0xBB, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 0x64, 0x61, 0x74, 0x61, 0x00, 0x77,
            0x01, 0x00,
        ];
        assert_eq!(&w[..44], &expected);
        assert_eq!(w.len(), 44 + 96_000);
        assert_eq!(pcm_of_wav(&w), Some((pcm, 24_000)));
    }

    #[test]
    fn voices_models_and_formats() {
        let ok = |v: Value| parse(&v, "gemini-2.5-flash-preview-tts").expect("valid");
        let r = ok(json!({"model": "tts-1", "input": "hi", "voice": "alloy"}));
        assert_eq!(r.model, "gemini-2.5-flash-preview-tts");
        assert_eq!((r.voice, r.format), ("Kore", AudioFormat::Wav));
        let r = ok(
            json!({"model": "gpt-4o-mini-tts", "input": "hi", "voice": "onyx",
            "response_format": "pcm", "speed": 1.5, "instructions": "Cheerful."}),
        );
        assert_eq!((r.voice, r.format), ("Algenib", AudioFormat::Pcm));
        assert_eq!(r.text, "Cheerful: hi");
        let r = ok(json!({"model": "gemini-2.5-pro-preview-tts", "input": "hi", "voice": "puck"}));
        assert_eq!(
            (r.model.as_str(), r.voice),
            ("gemini-2.5-pro-preview-tts", "Puck")
        );
        let bad = |v: Value| parse(&v, "t").expect_err("invalid");
        let e = bad(json!({"input": "hi", "response_format": "mp3"}));
        assert_eq!(e.param.as_deref(), Some("response_format"));
        assert!(e.message.contains("`wav`") && e.message.contains("`pcm`"));
        assert_eq!(
            bad(json!({"input": "hi", "voice": "robot"}))
                .param
                .as_deref(),
            Some("voice")
        );
        assert_eq!(bad(json!({"input": ""})).param.as_deref(), Some("input"));
        assert_eq!(
            bad(json!({"input": "a", "speed": 9})).param.as_deref(),
            Some("speed")
        );
        for (o, g) in VOICES {
            assert!(GEMINI_VOICES.contains(g), "{o} maps to a real voice");
        }
    }

    #[test]
    fn audio_is_read_from_the_answer() {
        let data = base64::engine::general_purpose::STANDARD.encode([1u8, 0, 2, 0]);
        let answer = json!({"candidates": [{"content": {"parts": [{"inlineData": {
            "mimeType": "audio/L16;codec=pcm;rate=16000", "data": data}}]}}]});
        assert_eq!(audio_of(&answer), Ok((vec![1, 0, 2, 0], 16_000)));
        let none = json!({"candidates": [{"finishReason": "OTHER"}]});
        assert!(audio_of(&none).expect_err("no audio").contains("OTHER"));
    }
}
