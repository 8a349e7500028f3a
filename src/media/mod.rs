//! Pure translation for the media routes — OpenAI's image generation
//! (`POST /v1/images/generations`) onto Gemini image-output models or Imagen's
//! `:predict` ([`images`]), OpenAI's speech (`POST /v1/audio/speech`) onto a
//! Gemini TTS model with the PCM wrapped as WAV ([`speech`]) — and the
//! gateway's own short-lived image host for `response_format: "url"`
//! ([`kept`]). No I/O: `crate::media_api` runs the calls.

pub mod images;
pub mod kept;
pub mod speech;

pub use kept::Kept;
