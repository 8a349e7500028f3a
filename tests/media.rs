//! Image generation (`POST /v1/images/generations`) and speech
//! (`POST /v1/audio/speech`) against the fake Gemini: b64 and url answers
//! (the url fetched without a token, under `/hf` too), `n`, the size →
//! aspect ratio mapping seen upstream, the Imagen `:predict` path, retries
//! over the pool, the 400s; WAV header fields, raw PCM, refused formats and
//! the voice mapping seen upstream; `/openai/v1/images/generations` routed
//! through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use base64::Engine;
use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The generate / predict calls the fake saw, with their JSON bodies.
fn upstream_calls(gw: &Gw, action: &str) -> Vec<(String, Value)> {
    gw.state()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(action))
        .map(|r| {
            let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.path, body)
        })
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[tokio::test]
async fn images_default_to_the_gemini_image_model_as_b64_with_the_size_mapped() {
    let gw = start(&[]).await;
    let body = json!({"prompt": "a red fox in snow", "size": "1792x1024", "model": "dall-e-3"});
    let a = post_json(&gw, "/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert!(v["created"].as_u64().is_some(), "{v}");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert!(b64(data[0]["b64_json"].as_str().expect("b64_json")).starts_with(PNG_MAGIC));
    let calls = upstream_calls(&gw, ":generateContent");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .0
            .ends_with("/models/gemini-2.5-flash-image:generateContent")
    );
    let config = &calls[0].1["generationConfig"];
    assert_eq!(config["imageConfig"]["aspectRatio"], "16:9");
    assert!(
        config["responseModalities"]
            .as_array()
            .unwrap()
            .contains(&json!("IMAGE"))
    );
    assert_eq!(
        calls[0].1["contents"][0]["parts"][0]["text"],
        "a red fox in snow"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn n_images_take_n_calls_and_failing_keys_are_retried() {
    let gw = start(&[]).await;
    // Two of the three keys fail: the pool retries on the third.
    gw.state()
        .set_key("key-a-0000000001", KeyBehavior::Internal);
    gw.state()
        .set_key("key-b-0000000002", KeyBehavior::Internal);
    let body = json!({"prompt": "two cats", "n": 2, "size": "1024x1536"});
    let a = post_json(&gw, "/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["data"].as_array().unwrap().len(), 2);
    let calls = upstream_calls(&gw, ":generateContent");
    assert!(calls.len() >= 2, "one call per image");
    for (_, b) in &calls {
        assert_eq!(b["generationConfig"]["imageConfig"]["aspectRatio"], "2:3");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn url_answers_are_served_by_the_gateway_without_a_token() {
    let gw = start(&[]).await;
    let body = json!({"prompt": "a lighthouse", "response_format": "url", "n": 2});
    let a = post_json(&gw, "/hf/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    let urls: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["url"].as_str().expect("url").to_string())
        .collect();
    assert_eq!(urls.len(), 2);
    assert_ne!(urls[0], urls[1]);
    let prefix = format!("http://{}/hf/images/", gw.addr);
    for url in &urls {
        let id = url
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".png"))
            .unwrap_or_else(|| panic!("{url} is not on the gateway under /hf"));
        assert_eq!(id.len(), 32, "128 bits in hex");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let got = send(Method::GET, url, &[], Bytes::new()).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        assert_eq!(got.headers["content-type"], "image/png");
        assert!(got.body.starts_with(PNG_MAGIC));
        // Without the mount too.
        let plain = url.replacen("/hf/images/", "/images/", 1);
        let got = send(Method::GET, &plain, &[], Bytes::new()).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    let unknown = gw.url(&format!("/images/{}.png", "0".repeat(32)));
    let got = send(Method::GET, &unknown, &[], Bytes::new()).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert!(got.json()["error"]["message"].is_string());
    gw.shutdown().await;
}

#[tokio::test]
async fn with_data_dir_url_images_outlive_a_restart() {
    let dir = std::env::temp_dir().join(format!("gb-media-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_string_lossy().to_string();
    let gw = start(&[("DATA_DIR", &d)]).await;
    let body = json!({"prompt": "a kite", "response_format": "url"});
    let a = post_json(&gw, "/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let url = a.json()["data"][0]["url"].as_str().unwrap().to_string();
    let id = url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".png")
        .to_string();
    assert!(dir.join("images").join(format!("{id}.png")).is_file());
    gw.shutdown().await;
    let gw = start(&[("DATA_DIR", &d)]).await;
    let got = send(
        Method::GET,
        &gw.url(&format!("/images/{id}.png")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(got.body.starts_with(PNG_MAGIC));
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn imagen_models_go_through_predict() {
    let gw = start(&[]).await;
    let body = json!({"prompt": "a bowl of fruit", "model": "imagen-4.0-generate-001",
        "n": 3, "size": "1536x1024"});
    let a = post_json(&gw, "/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let data = a.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert!(b64(data[2]["b64_json"].as_str().unwrap()).starts_with(PNG_MAGIC));
    let calls = upstream_calls(&gw, ":predict");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .0
            .ends_with("/models/imagen-4.0-generate-001:predict")
    );
    assert_eq!(calls[0].1["instances"][0]["prompt"], "a bowl of fruit");
    assert_eq!(calls[0].1["parameters"]["sampleCount"], 3);
    // Imagen has no 3:2: the nearest it takes.
    assert_eq!(calls[0].1["parameters"]["aspectRatio"], "4:3");
    gw.shutdown().await;
}

#[tokio::test]
async fn model_aliases_apply_to_the_media_routes() {
    let aliases =
        r#"{"dall-e-3":"imagen-4.0-fast-generate-001","my-voice":"gemini-2.5-pro-preview-tts"}"#;
    let gw = start(&[("MODEL_ALIASES", aliases)]).await;
    let body = json!({"prompt": "x", "model": "dall-e-3"});
    let a = post_json(&gw, "/v1/images/generations", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let calls = upstream_calls(&gw, ":predict");
    assert!(
        calls[0]
            .0
            .ends_with("/models/imagen-4.0-fast-generate-001:predict")
    );
    let body = json!({"model": "my-voice", "input": "hi", "voice": "alloy"});
    let a = post_json(&gw, "/v1/audio/speech", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let calls = upstream_calls(&gw, ":generateContent");
    assert!(
        calls[0]
            .0
            .ends_with("/models/gemini-2.5-pro-preview-tts:generateContent")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_image_requests_get_openai_400s_naming_what_is_supported() {
    let gw = start(&[]).await;
    let cases = [
        (
            json!({"prompt": "x", "size": "300x300"}),
            "size",
            "1024x1024",
        ),
        (json!({"prompt": "x", "n": 5}), "n", "1 to 4"),
        (
            json!({"prompt": "x", "response_format": "png"}),
            "response_format",
            "b64_json",
        ),
        (json!({"size": "1024x1024"}), "prompt", "prompt"),
    ];
    for (body, param, named) in cases {
        let a = post_json(&gw, "/v1/images/generations", &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        let e = &a.json()["error"];
        assert_eq!(e["param"], param, "{e}");
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert!(e["message"].as_str().unwrap().contains(named), "{e}");
    }
    assert!(upstream_calls(&gw, ":generateContent").is_empty());
    gw.shutdown().await;
}

/// The fields of a canonical 44-byte WAV header.
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[tokio::test]
async fn speech_answers_a_wav_around_the_pcm_with_the_voice_mapped() {
    let gw = start(&[]).await;
    let input = "Hello from the gateway";
    let body = json!({"model": "tts-1", "input": input, "voice": "nova"});
    let a = post_json(&gw, "/v1/audio/speech", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.headers["content-type"], "audio/wav");
    let w = &a.body;
    let pcm_len = input.len() * 480; // the fake's 480 bytes per character
    assert_eq!(w.len(), 44 + pcm_len);
    assert_eq!(&w[0..4], b"RIFF");
    assert_eq!(le32(w, 4) as usize, 36 + pcm_len);
    assert_eq!(&w[8..12], b"WAVE");
    assert_eq!(&w[12..16], b"fmt ");
    assert_eq!(le32(w, 16), 16);
    assert_eq!(le16(w, 20), 1, "PCM");
    assert_eq!(le16(w, 22), 1, "mono");
    assert_eq!(le32(w, 24), 24_000);
    assert_eq!(le32(w, 28), 48_000);
    assert_eq!(le16(w, 32), 2);
    assert_eq!(le16(w, 34), 16);
    assert_eq!(&w[36..40], b"data");
    assert_eq!(le32(w, 40) as usize, pcm_len);
    let calls = upstream_calls(&gw, ":generateContent");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .0
            .ends_with("/models/gemini-2.5-flash-preview-tts:generateContent")
    );
    let config = &calls[0].1["generationConfig"];
    assert_eq!(config["responseModalities"], json!(["AUDIO"]));
    let voice = &config["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"];
    assert_eq!(voice, "Leda", "nova → Leda");
    gw.shutdown().await;
}

#[tokio::test]
async fn speech_pcm_gemini_voices_and_refused_formats() {
    let gw = start(&[("TTS_MODEL", "gemini-2.5-pro-preview-tts")]).await;
    let body = json!({"model": "gpt-4o-mini-tts", "input": "abcd", "voice": "charon",
        "response_format": "pcm", "speed": 1.25});
    let a = post_json(&gw, "/hf/v1/audio/speech", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.headers["content-type"], "audio/pcm");
    assert_eq!(a.body.len(), 4 * 480, "raw PCM, no header");
    let calls = upstream_calls(&gw, ":generateContent");
    assert!(
        calls[0]
            .0
            .ends_with("/models/gemini-2.5-pro-preview-tts:generateContent")
    );
    let config = &calls[0].1["generationConfig"];
    let voice = &config["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"];
    assert_eq!(voice, "Charon", "a Gemini voice name as it is");
    for (body, param) in [
        (
            json!({"input": "hi", "voice": "alloy", "response_format": "mp3"}),
            "response_format",
        ),
        (
            json!({"input": "hi", "voice": "alloy", "response_format": "opus"}),
            "response_format",
        ),
        (json!({"input": "hi", "voice": "nobody"}), "voice"),
        (
            json!({"input": "hi", "voice": "alloy", "speed": 10}),
            "speed",
        ),
    ] {
        let a = post_json(&gw, "/v1/audio/speech", &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        let e = &a.json()["error"];
        assert_eq!(e["param"], param, "{e}");
        if param == "response_format" {
            let m = e["message"].as_str().unwrap();
            assert!(m.contains("`wav`") && m.contains("`pcm`"), "{m}");
        }
    }
    assert_eq!(
        upstream_calls(&gw, ":generateContent").len(),
        1,
        "no call for a 400"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn gemini_errors_come_back_in_openai_format() {
    let gw = start(&[]).await;
    // A model that cannot speak: Google's 400, as an OpenAI error.
    let body = json!({"model": "gemini-2.5-flash", "input": "hi", "voice": "alloy"});
    let a = post_json(&gw, "/v1/audio/speech", &body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(a.json()["error"]["message"].is_string());
    // No token: 401 on both routes, the image file route stays public.
    for path in ["/v1/images/generations", "/v1/audio/speech"] {
        let a = send(Method::POST, &gw.url(path), &[], Bytes::from_static(b"{}")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn gemini_openai_layer_images_pass_through() {
    let gw = start(&[]).await;
    let body =
        json!({"model": "imagen-4.0-generate-001", "prompt": "x", "response_format": "b64_json"});
    let _ = post_json(&gw, "/openai/v1/images/generations", &body).await;
    let seen = gw
        .state()
        .requests()
        .into_iter()
        .any(|r| r.path.ends_with("/openai/images/generations"));
    assert!(seen, "forwarded to Gemini's OpenAI layer");
    gw.shutdown().await;
}
