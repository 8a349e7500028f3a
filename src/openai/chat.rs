//! STUB (replaced by the real file).
use super::*;
/// stub
pub struct GeminiCall {
    /** x */
    pub model: String,
    /** x */
    pub client_model: String,
    /** x */
    pub stream: bool,
    /** x */
    pub include_usage: bool,
    /** x */
    pub body: Value,
}
/// stub
pub fn translate_request(_req: &Value, _opts: &Options) -> Result<GeminiCall, TranslateError> {
    todo!()
}
