//! STUB
use serde_json::Value;
/// stub
pub fn error_body(_m: &str, _k: &str, _c: Option<&str>, _p: Option<&str>) -> Value {
    todo!()
}
/// stub
pub struct MappedError {
    /** x */
    pub status: u16,
    /** x */
    pub body: Value,
    /** x */
    pub retry_after: Option<u64>,
    /** x */
    pub should_retry: Option<bool>,
}
/// stub
pub fn from_gemini(_s: u16, _b: &[u8]) -> MappedError {
    todo!()
}
/// stub
pub fn kind_for_status(_s: u16) -> (&'static str, Option<&'static str>) {
    todo!()
}
/// stub
pub fn scrub(m: &str) -> String {
    m.to_string()
}
