//! The OpenAI Responses API side of the gateway: pure translation between
//! `POST /v1/responses` and Gemini, and the stored responses.
//!
//! * [`request`] — the request's fields → the chat request it means (run
//!   through [`crate::openai::chat`] into the typed Gemini body).
//! * [`items`] — input items → chat messages.
//! * [`answer`] — the `response` object, ids, usage, endings.
//! * [`stream`] — Gemini answers → output items and the event sequence.
//! * [`kept`] — stored responses for `previous_response_id`,
//!   `item_reference` and `GET`/`DELETE /v1/responses/{id}`.
//!
//! The handler is `crate::responses_api`.

pub mod answer;
pub mod items;
pub mod kept;
pub mod request;
pub mod stream;

pub use kept::{Entry, Kept, owner_of};
pub use request::{MAX_ITEMS, check_fields, head, input_items, remap_param, translate};
pub use stream::Assembler;
