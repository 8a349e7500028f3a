//! STUB
use super::*;
/// stub
pub struct ResponseCtx<'a> {
    /** x */
    pub model: &'a str,
    /** x */
    pub created: u64,
    /** x */
    pub opts: &'a Options,
}
/// stub
pub fn translate_response(_g: &Value, _c: &ResponseCtx) -> Value {
    todo!()
}
