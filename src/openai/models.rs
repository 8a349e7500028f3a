//! STUB
use super::*;
/// stub
pub fn translate_list(_m: &[Value], _o: &Options) -> Value {
    todo!()
}
/// stub
pub fn translate_one(_m: &Value) -> Value {
    todo!()
}
