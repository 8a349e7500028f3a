//! STUB
use super::*;
/// stub
pub struct EmbedCall {
    /** x */
    pub model: String,
    /** x */
    pub client_model: String,
    /** x */
    pub batches: Vec<Value>,
    /** x */
    pub base64: bool,
    /** x */
    pub count: usize,
    /** x */
    pub prompt_tokens: u64,
}
/// stub
pub fn translate_request(_req: &Value) -> Result<EmbedCall, TranslateError> {
    todo!()
}
/// stub
pub fn translate_response(_r: &[Value], _c: &EmbedCall) -> Result<Value, TranslateError> {
    todo!()
}
