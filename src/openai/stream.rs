//! STUB
use super::*;
/// stub
pub struct SseParser;
/// stub
#[derive(Debug)]
pub struct SseError;
impl SseParser {
    /** x */
    pub fn new(_m: usize) -> Self {
        SseParser
    }
    /** x */
    pub fn push(&mut self, _c: &[u8], _o: &mut Vec<String>) -> Result<(), SseError> {
        todo!()
    }
    /** x */
    pub fn finish(&mut self) -> Option<String> {
        todo!()
    }
}
/// stub
pub struct StreamTranslator;
/// stub
pub enum Step {
    /** x */
    Continue,
    /** x */
    Ended,
}
impl StreamTranslator {
    /** x */
    pub fn new(_m: &str, _c: u64, _i: bool, _o: &Options) -> Self {
        StreamTranslator
    }
    /** x */
    pub fn on_event(&mut self, _p: &str, _o: &mut Vec<u8>) -> Step {
        todo!()
    }
    /** x */
    pub fn finish(&mut self, _o: &mut Vec<u8>) {}
    /** x */
    pub fn fail(&mut self, _m: &str, _c: &str, _o: &mut Vec<u8>) {}
    /** x */
    pub fn started(&self) -> bool {
        false
    }
}
