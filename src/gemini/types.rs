//! The typed Gemini wire model: the one representation of Gemini's
//! `generateContent` request and answer that every translator reads and
//! writes (OpenAI Chat Completions today; Responses and Anthropic Messages
//! next). It depends on nothing else in the crate.
//!
//! Field names and meanings follow Google's API reference:
//! <https://ai.google.dev/api/generate-content> (request, `GenerateContentResponse`,
//! `Candidate`, `UsageMetadata`, `GroundingMetadata`, `LogprobsResult`),
//! <https://ai.google.dev/api/caching#Content> (`Content`, `Part`, `Blob`,
//! `FunctionCall`, `FunctionResponse`, `FileData`, `ExecutableCode`,
//! `CodeExecutionResult`, `Tool`, `ToolConfig`) and
//! <https://ai.google.dev/api/generate-content#v1beta.GenerationConfig>.
//! The project's summary of both wire formats is `docs/wire-formats.md`.
//!
//! Three rules make the model safe to put in front of an API that keeps
//! growing:
//!
//! * **Unknown members are data.** Every struct has an `extra` catch-all
//!   ([`Extra`](crate::gemini::lenient::Extra), see [`crate::gemini::lenient`]): members it does not name are kept verbatim (borrowed raw
//!   JSON, in input order) and serialized back after the named ones. A part
//!   kind we do not model is such a member of [`Part`].
//! * **Odd types are absent, not errors.** Deserialization is lenient: a
//!   named member whose JSON type is not the modelled one (a number where a
//!   string belongs, an array where an object belongs) reads as absent
//!   (`None`, empty, or the default), and an array element that is not an
//!   object reads as an empty struct. Only malformed JSON fails. This is the
//!   behaviour of the old `serde_json::Value` walks, kept in one place.
//! * **Enums are open.** [`FinishReason`] and [`BlockReason`] keep values
//!   they do not know as `Unknown(text)`.
//!
//! Strings borrow from the input when they have no escapes (`Cow<'a, str>`)
//! and unknown members are borrowed slices (`&RawValue`), so reading an
//! answer copies little. Deserialize from a borrowed buffer
//! (`serde_json::from_slice` / `from_str`); `from_reader` and `from_value`
//! cannot lend the raw slices and fail when an unknown member is present.

use std::borrow::Cow;

use serde::Deserializer;
use serde_json::{Number, Value};

use crate::gemini::lenient::{Loose, wire_enum, wire_struct};

// ---------------------------------------------------------------------------
// Content

wire_struct! {
    /// A turn of the conversation (`Content`): its parts and who produced
    /// it (`user` or `model`; absent in `systemInstruction`).
    /// <https://ai.google.dev/api/caching#Content>
    pub struct Content<'a> {
        /// The ordered parts.
        "parts" => parts: Vec<Part<'a>>,
        /// `user` or `model`.
        "role" => role: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// One piece of a turn (`Part`). Google's `Part` is a union: exactly one
    /// of the data members is set (see [`Part::kind`]); `thought` and
    /// `thoughtSignature` qualify it. The non-text kinds are boxed, so a
    /// part stays small. A part kind this model does not know
    /// stays in `extra` and reads as [`PartKind::Unknown`].
    /// Members are in JSON name order.
    /// <https://ai.google.dev/api/caching#Part>
    pub struct Part<'a> {
        /// The result of running `executableCode`.
        "codeExecutionResult" => code_execution_result: Option<Box<CodeExecutionResult<'a>>>,
        /// Code the model wrote for the code execution tool.
        "executableCode" => executable_code: Option<Box<ExecutableCode<'a>>>,
        /// Data referenced by URI.
        "fileData" => file_data: Option<Box<FileData<'a>>>,
        /// A call the model asks the client to make.
        "functionCall" => function_call: Option<Box<FunctionCall<'a>>>,
        /// The client's result of a `functionCall`.
        "functionResponse" => function_response: Option<Box<FunctionResponse<'a>>>,
        /// Inline bytes (images, audio, documents), base64.
        "inlineData" => inline_data: Option<Box<Blob<'a>>>,
        /// Text.
        "text" => text: Option<Cow<'a, str>>,
        /// The part is a thought (summary), not answer text.
        "thought" => thought: Option<bool>,
        /// Opaque signature of the model's reasoning, to be sent back with
        /// the part in the next request.
        "thoughtSignature" => thought_signature: Option<Cow<'a, str>>,
    }
}

/// What a [`Part`] holds, in the order the members are checked (a
/// well-formed part has exactly one).
#[derive(Clone, Copy, Debug)]
pub enum PartKind<'p, 'a> {
    /// `functionCall`.
    FunctionCall(&'p FunctionCall<'a>),
    /// `text` with `thought: true`.
    Thought(&'p str),
    /// `text`.
    Text(&'p str),
    /// `executableCode`.
    ExecutableCode(&'p ExecutableCode<'a>),
    /// `codeExecutionResult`.
    CodeExecutionResult(&'p CodeExecutionResult<'a>),
    /// `inlineData`.
    InlineData(&'p Blob<'a>),
    /// `fileData`.
    FileData(&'p FileData<'a>),
    /// `functionResponse`.
    FunctionResponse(&'p FunctionResponse<'a>),
    /// Nothing this model names (a new part kind, kept in `extra`, or a
    /// thought without text).
    Unknown,
}

impl<'a> Part<'a> {
    /// A text part.
    pub fn text(t: impl Into<Cow<'a, str>>) -> Self {
        Part {
            text: Some(t.into()),
            ..Part::default()
        }
    }

    /// What the part holds.
    pub fn kind(&self) -> PartKind<'_, 'a> {
        if let Some(fc) = &self.function_call {
            return PartKind::FunctionCall(fc);
        }
        if self.thought == Some(true) {
            return self
                .text
                .as_deref()
                .map_or(PartKind::Unknown, PartKind::Thought);
        }
        if let Some(t) = &self.text {
            return PartKind::Text(t);
        }
        if let Some(c) = &self.executable_code {
            return PartKind::ExecutableCode(c);
        }
        if let Some(r) = &self.code_execution_result {
            return PartKind::CodeExecutionResult(r);
        }
        if let Some(b) = &self.inline_data {
            return PartKind::InlineData(b);
        }
        if let Some(f) = &self.file_data {
            return PartKind::FileData(f);
        }
        if let Some(f) = &self.function_response {
            return PartKind::FunctionResponse(f);
        }
        PartKind::Unknown
    }

    /// The non-empty `thoughtSignature`.
    pub fn signature(&self) -> Option<&str> {
        self.thought_signature.as_deref().filter(|s| !s.is_empty())
    }
}

wire_struct! {
    /// Inline bytes (`Blob`). <https://ai.google.dev/api/caching#Blob>
    pub struct Blob<'a> {
        /// Base64 data.
        "data" => data: Option<Cow<'a, str>>,
        /// IANA MIME type.
        "mimeType" => mime_type: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Data referenced by URI (`FileData`). <https://ai.google.dev/api/caching#FileData>
    pub struct FileData<'a> {
        /// The URI (a Files API URI, or an http(s) URL).
        "fileUri" => file_uri: Option<Cow<'a, str>>,
        /// IANA MIME type.
        "mimeType" => mime_type: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// A function call predicted by the model (`FunctionCall`).
    /// <https://ai.google.dev/api/caching#FunctionCall>
    pub struct FunctionCall<'a> {
        /// The arguments, a JSON object.
        "args" => args: Option<Value>,
        /// Call id (some models set it; echoed in the `functionResponse`).
        "id" => id: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// The result of a function call (`FunctionResponse`).
    /// <https://ai.google.dev/api/caching#FunctionResponse>
    pub struct FunctionResponse<'a> {
        /// The id of the call answered.
        "id" => id: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
        /// The result, a JSON object.
        "response" => response: Option<Value>,
    }
}

wire_struct! {
    /// Code written by the model for the code execution tool (`ExecutableCode`).
    /// <https://ai.google.dev/api/caching#ExecutableCode>
    pub struct ExecutableCode<'a> {
        /// The code.
        "code" => code: Option<Cow<'a, str>>,
        /// `PYTHON` (or `LANGUAGE_UNSPECIFIED`).
        "language" => language: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// What running `executableCode` gave (`CodeExecutionResult`).
    /// <https://ai.google.dev/api/caching#CodeExecutionResult>
    pub struct CodeExecutionResult<'a> {
        /// `OUTCOME_OK`, `OUTCOME_FAILED`, `OUTCOME_DEADLINE_EXCEEDED`, ….
        "outcome" => outcome: Option<Cow<'a, str>>,
        /// stdout on success, else stderr or a description.
        "output" => output: Option<Cow<'a, str>>,
    }
}

// ---------------------------------------------------------------------------
// Request

wire_struct! {
    /// The body of `models.generateContent` / `streamGenerateContent`.
    /// Members are in JSON name order.
    /// <https://ai.google.dev/api/generate-content#request-body>
    pub struct GenerateContentRequest<'a> {
        /// `cachedContents/{id}` to use as context.
        "cachedContent" => cached_content: Option<Cow<'a, str>>,
        /// The conversation so far.
        "contents" => contents: Vec<Content<'a>>,
        /// Sampling and output options.
        "generationConfig" => generation_config: Option<Box<GenerationConfig<'a>>>,
        /// Safety thresholds per harm category.
        "safetySettings" => safety_settings: Option<Vec<SafetySetting<'a>>>,
        /// The system prompt.
        "systemInstruction" => system_instruction: Option<Content<'a>>,
        /// How the model may use the tools.
        "toolConfig" => tool_config: Option<ToolConfig<'a>>,
        /// Tools the model may use.
        "tools" => tools: Vec<Tool<'a>>,
    }
}

wire_struct! {
    /// A safety threshold for one harm category (`SafetySetting`).
    /// <https://ai.google.dev/api/generate-content#v1beta.SafetySetting>
    pub struct SafetySetting<'a> {
        /// `HARM_CATEGORY_HARASSMENT`, `HARM_CATEGORY_HATE_SPEECH`, ….
        "category" => category: Option<Cow<'a, str>>,
        /// `BLOCK_NONE`, `BLOCK_ONLY_HIGH`, …, `OFF`.
        "threshold" => threshold: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// A tool (`Tool`): function declarations or one of Google's built-in
    /// tools. Members are in JSON name order.
    /// <https://ai.google.dev/api/caching#Tool>
    pub struct Tool<'a> {
        /// The code execution tool (`{}`).
        "codeExecution" => code_execution: Option<Value>,
        /// Functions the model may call.
        "functionDeclarations" => function_declarations: Vec<FunctionDeclaration<'a>>,
        /// Google Search grounding (`{}`).
        "googleSearch" => google_search: Option<Value>,
        /// URL context retrieval (`{}`).
        "urlContext" => url_context: Option<Value>,
    }
}

wire_struct! {
    /// A function the model may call (`FunctionDeclaration`).
    /// <https://ai.google.dev/api/caching#FunctionDeclaration>
    pub struct FunctionDeclaration<'a> {
        /// What the function does.
        "description" => description: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
        /// Its parameters, an OpenAPI schema object.
        "parameters" => parameters: Option<Value>,
        /// Its parameters, a JSON Schema.
        "parametersJsonSchema" => parameters_json_schema: Option<Value>,
    }
}

wire_struct! {
    /// How the model may use the tools (`ToolConfig`).
    /// <https://ai.google.dev/api/caching#ToolConfig>
    pub struct ToolConfig<'a> {
        /// Function calling mode and allowed names.
        "functionCallingConfig" => function_calling_config: Option<FunctionCallingConfig<'a>>,
    }
}

wire_struct! {
    /// `FunctionCallingConfig`. <https://ai.google.dev/api/caching#FunctionCallingConfig>
    pub struct FunctionCallingConfig<'a> {
        /// Only these functions may be called (mode `ANY`).
        "allowedFunctionNames" => allowed_function_names: Option<Vec<Cow<'a, str>>>,
        /// `AUTO`, `ANY`, `NONE` or `VALIDATED`.
        "mode" => mode: Option<Cow<'a, str>>,
    }
}

/// A string element of a list: non-strings read as `""`.
impl<'de: 'a, 'a> Loose<'de> for Cow<'a, str> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Cow<'a, str>>::loose(d)?.unwrap_or_default())
    }
}

wire_struct! {
    /// Sampling and output options (`GenerationConfig`). Numbers the client
    /// sent are kept exactly as written. Members are in JSON name order.
    /// <https://ai.google.dev/api/generate-content#v1beta.GenerationConfig>
    pub struct GenerationConfig<'a> {
        /// Number of candidates to generate.
        "candidateCount" => candidate_count: Option<i64>,
        /// Frequency penalty.
        "frequencyPenalty" => frequency_penalty: Option<Number>,
        /// Number of top logprobs per token.
        "logprobs" => logprobs: Option<i64>,
        /// Output token limit.
        "maxOutputTokens" => max_output_tokens: Option<i64>,
        /// Presence penalty.
        "presencePenalty" => presence_penalty: Option<Number>,
        /// The answer's JSON Schema (with `responseMimeType` JSON).
        "responseJsonSchema" => response_json_schema: Option<Value>,
        /// Return logprobs.
        "responseLogprobs" => response_logprobs: Option<bool>,
        /// `text/plain`, `application/json`, ….
        "responseMimeType" => response_mime_type: Option<Cow<'a, str>>,
        /// `TEXT`, `IMAGE`, `AUDIO`.
        "responseModalities" => response_modalities: Option<Vec<Cow<'a, str>>>,
        /// The answer's schema (OpenAPI subset).
        "responseSchema" => response_schema: Option<Value>,
        /// Sampling seed.
        "seed" => seed: Option<i64>,
        /// Stop sequences.
        "stopSequences" => stop_sequences: Option<Vec<Cow<'a, str>>>,
        /// Temperature.
        "temperature" => temperature: Option<Number>,
        /// Thinking budget, level and thought summaries.
        "thinkingConfig" => thinking_config: Option<ThinkingConfig<'a>>,
        /// Top-k.
        "topK" => top_k: Option<i64>,
        /// Top-p.
        "topP" => top_p: Option<Number>,
    }
}

wire_struct! {
    /// Thinking options (`ThinkingConfig`); client-supplied members of other
    /// names or types are kept in `extra` and passed on as given.
    /// <https://ai.google.dev/api/generate-content#ThinkingConfig>
    pub struct ThinkingConfig<'a> {
        /// Return thought summaries.
        "includeThoughts" => include_thoughts: Option<bool>,
        /// Thinking token budget (`-1` dynamic, `0` off).
        "thinkingBudget" => thinking_budget: Option<i64>,
        /// `low`, `high`, … (Gemini 3).
        "thinkingLevel" => thinking_level: Option<Cow<'a, str>>,
    }
}

// ---------------------------------------------------------------------------
// Response

wire_struct! {
    /// A `generateContent` answer, or one event of `streamGenerateContent`
    /// (`GenerateContentResponse`).
    /// <https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse>
    pub struct GenerateContentResponse<'a> {
        /// The candidate answers (none when the prompt was blocked).
        "candidates" => candidates: Vec<Candidate<'a>>,
        /// Why the prompt was blocked, if it was.
        "promptFeedback" => prompt_feedback: Option<PromptFeedback<'a>>,
        /// Token counts.
        "usageMetadata" => usage_metadata: Option<UsageMetadata<'a>>,
        /// The model version that answered.
        "modelVersion" => model_version: Option<Cow<'a, str>>,
        /// The answer's id.
        "responseId" => response_id: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// One candidate answer (`Candidate`).
    /// <https://ai.google.dev/api/generate-content#candidate>
    pub struct Candidate<'a> {
        /// The generated content.
        "content" => content: Option<Content<'a>>,
        /// Why generation stopped (absent while streaming).
        "finishReason" => finish_reason: Option<FinishReason<'a>>,
        /// Details of the finish reason.
        "finishMessage" => finish_message: Option<Cow<'a, str>>,
        /// The candidate's index among the answer's candidates.
        "index" => index: Option<u64>,
        /// Sources of a grounded answer.
        "groundingMetadata" => grounding_metadata: Option<Box<GroundingMetadata<'a>>>,
        /// Token log probabilities (when `responseLogprobs` was asked).
        "logprobsResult" => logprobs_result: Option<Box<LogprobsResult<'a>>>,
        /// Average log probability of the candidate's tokens.
        "avgLogprobs" => avg_logprobs: Option<f64>,
    }
}

impl<'a> Candidate<'a> {
    /// `content.parts`, empty when missing.
    pub fn parts(&self) -> &[Part<'a>] {
        self.content.as_ref().map_or(&[], |c| &c.parts)
    }
}

wire_enum! {
    /// Why a candidate stopped (`FinishReason`); unknown values are kept.
    /// <https://ai.google.dev/api/generate-content#FinishReason>
    pub enum FinishReason<'a> {
        /// Not set.
        Unspecified = "FINISH_REASON_UNSPECIFIED",
        /// Natural stop or a stop sequence.
        Stop = "STOP",
        /// The token limit was reached.
        MaxTokens = "MAX_TOKENS",
        /// Flagged for safety.
        Safety = "SAFETY",
        /// Flagged for recitation.
        Recitation = "RECITATION",
        /// Unsupported language.
        Language = "LANGUAGE",
        /// Another reason.
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Sensitive personally identifiable information.
        Spii = "SPII",
        /// An invalid function call.
        MalformedFunctionCall = "MALFORMED_FUNCTION_CALL",
        /// A generated image was flagged for safety.
        ImageSafety = "IMAGE_SAFETY",
        /// A generated image had prohibited content.
        ImageProhibitedContent = "IMAGE_PROHIBITED_CONTENT",
        /// A generated image was flagged for recitation.
        ImageRecitation = "IMAGE_RECITATION",
        /// A generated image was flagged for another reason.
        ImageOther = "IMAGE_OTHER",
        /// A tool call the model made was not expected.
        UnexpectedToolCall = "UNEXPECTED_TOOL_CALL",
        /// Too many tool calls.
        TooManyToolCalls = "TOO_MANY_TOOL_CALLS",
    }
}

wire_enum! {
    /// Why a prompt was blocked (`BlockReason`); unknown values are kept.
    /// <https://ai.google.dev/api/generate-content#BlockReason>
    pub enum BlockReason<'a> {
        /// Not set.
        Unspecified = "BLOCK_REASON_UNSPECIFIED",
        /// Safety.
        Safety = "SAFETY",
        /// Another reason.
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Unsafe generated image content.
        ImageSafety = "IMAGE_SAFETY",
    }
}

wire_struct! {
    /// Feedback on the prompt (`PromptFeedback`).
    /// <https://ai.google.dev/api/generate-content#PromptFeedback>
    pub struct PromptFeedback<'a> {
        /// Set when the prompt was blocked.
        "blockReason" => block_reason: Option<BlockReason<'a>>,
    }
}

wire_struct! {
    /// Token counts (`UsageMetadata`).
    /// <https://ai.google.dev/api/generate-content#UsageMetadata>
    pub struct UsageMetadata<'a> {
        /// Prompt tokens (including cached content).
        "promptTokenCount" => prompt_token_count: Option<u64>,
        /// Tokens of the cached content.
        "cachedContentTokenCount" => cached_content_token_count: Option<u64>,
        /// Tokens of all candidates.
        "candidatesTokenCount" => candidates_token_count: Option<u64>,
        /// Tokens of tool-use prompts.
        "toolUsePromptTokenCount" => tool_use_prompt_token_count: Option<u64>,
        /// Thinking tokens.
        "thoughtsTokenCount" => thoughts_token_count: Option<u64>,
        /// Everything.
        "totalTokenCount" => total_token_count: Option<u64>,
    }
}

wire_struct! {
    /// Sources of a grounded answer (`GroundingMetadata`).
    /// <https://ai.google.dev/api/generate-content#GroundingMetadata>
    pub struct GroundingMetadata<'a> {
        /// The sources.
        "groundingChunks" => grounding_chunks: Vec<GroundingChunk<'a>>,
        /// Which text each source supports.
        "groundingSupports" => grounding_supports: Vec<GroundingSupport<'a>>,
    }
}

wire_struct! {
    /// One source (`GroundingChunk`); non-web sources stay in `extra`.
    /// <https://ai.google.dev/api/generate-content#GroundingChunk>
    pub struct GroundingChunk<'a> {
        /// A web page.
        "web" => web: Option<WebSource<'a>>,
    }
}

wire_struct! {
    /// A web source (`GroundingChunk.Web`).
    /// <https://ai.google.dev/api/generate-content#Web>
    pub struct WebSource<'a> {
        /// Its title.
        "title" => title: Option<Cow<'a, str>>,
        /// Its URI.
        "uri" => uri: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Text supported by sources (`GroundingSupport`).
    /// <https://ai.google.dev/api/generate-content#GroundingSupport>
    pub struct GroundingSupport<'a> {
        /// Indices into `groundingChunks` (non-integers read as `None`).
        "groundingChunkIndices" => grounding_chunk_indices: Vec<Option<u64>>,
        /// The supported text.
        "segment" => segment: Option<Segment<'a>>,
    }
}

wire_struct! {
    /// A span of the answer (`Segment`): UTF-8 byte offsets into a part.
    /// <https://ai.google.dev/api/generate-content#Segment>
    pub struct Segment<'a> {
        /// The part the offsets refer to.
        "partIndex" => part_index: Option<u64>,
        /// Start byte (inclusive).
        "startIndex" => start_index: Option<u64>,
        /// End byte (exclusive).
        "endIndex" => end_index: Option<u64>,
        /// The text of the span.
        "text" => text: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Token log probabilities (`LogprobsResult`).
    /// <https://ai.google.dev/api/generate-content#LogprobsResult>
    pub struct LogprobsResult<'a> {
        /// The chosen token at each step (`None`: not an array).
        "chosenCandidates" => chosen_candidates: Option<Vec<LogprobsCandidate<'a>>>,
        /// The most likely tokens at each step.
        "topCandidates" => top_candidates: Vec<TopCandidates<'a>>,
    }
}

wire_struct! {
    /// The most likely tokens of one step (`TopCandidates`).
    /// <https://ai.google.dev/api/generate-content#TopCandidates>
    pub struct TopCandidates<'a> {
        /// Sorted by log probability, descending.
        "candidates" => candidates: Vec<LogprobsCandidate<'a>>,
    }
}

wire_struct! {
    /// One token and its log probability (`LogprobsResult.Candidate`).
    /// <https://ai.google.dev/api/generate-content#Candidate_1>
    pub struct LogprobsCandidate<'a> {
        /// The token.
        "token" => token: Option<Cow<'a, str>>,
        /// Its log probability.
        "logProbability" => log_probability: Option<f64>,
    }
}

wire_struct! {
    /// Google's error object (`{"error": Status}` bodies and in-stream
    /// errors). <https://ai.google.dev/api/rest/v1beta/Status>
    pub struct Status<'a> {
        /// HTTP-style code.
        "code" => code: Option<i64>,
        /// Explanation.
        "message" => message: Option<Cow<'a, str>>,
        /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ….
        "status" => status: Option<Cow<'a, str>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn parse(s: &str) -> GenerateContentResponse<'_> {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn unknown_part_kind_is_kept_and_written_back() {
        let s = r#"{"videoMetadata":{"startOffset":"1s"},"thoughtSignature":"c2ln","partMetadata":[1, 2]}"#;
        let p: Part = serde_json::from_str(s).unwrap();
        assert!(matches!(p.kind(), PartKind::Unknown));
        assert_eq!(p.signature(), Some("c2ln"));
        assert_eq!(
            p.extra.get("videoMetadata").map(RawValue::get),
            Some(r#"{"startOffset":"1s"}"#)
        );
        // Named members first (in name order), then the unknown ones as sent.
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"thoughtSignature":"c2ln","videoMetadata":{"startOffset":"1s"},"partMetadata":[1, 2]}"#
        );
    }

    #[test]
    fn unknown_members_of_response_candidate_and_usage_are_kept() {
        let r = parse(
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP",
                "safetyRatings":[{"category":"HARM_CATEGORY_HATE_SPEECH","probability":"NEGLIGIBLE"}],"index":0,"futureMember":{"a":[1]}}],
                "usageMetadata":{"promptTokenCount":3,"totalTokenCount":5,"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}],"futureCount":7},
                "createTime":"2025-01-01T00:00:00Z","responseId":"r"}"#,
        );
        let c = &r.candidates[0];
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
        assert!(c.extra.get("safetyRatings").is_some());
        assert_eq!(
            c.extra.get("futureMember").map(RawValue::get),
            Some(r#"{"a":[1]}"#)
        );
        let u = r.usage_metadata.as_ref().unwrap();
        assert_eq!(
            (u.prompt_token_count, u.total_token_count),
            (Some(3), Some(5))
        );
        assert_eq!(
            u.extra.get("promptTokensDetails").map(RawValue::get),
            Some(r#"[{"modality":"TEXT","tokenCount":3}]"#)
        );
        assert_eq!(u.extra.get("futureCount").map(RawValue::get), Some("7"));
        assert_eq!(
            r.extra.get("createTime").map(RawValue::get),
            Some(r#""2025-01-01T00:00:00Z""#)
        );
        assert_eq!(r.response_id.as_deref(), Some("r"));
        // Borrowed: no escapes, no copies.
        assert!(matches!(r.response_id, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let r = parse(
            r#"{"candidates":[{"finishReason":"SOMETHING_NEW"}],"promptFeedback":{"blockReason":"NEW_REASON"}}"#,
        );
        let reason = r.candidates[0].finish_reason.as_ref().unwrap();
        assert_eq!(
            reason,
            &FinishReason::Unknown(Cow::Borrowed("SOMETHING_NEW"))
        );
        assert_eq!(reason.as_str(), "SOMETHING_NEW");
        let block = r.prompt_feedback.unwrap().block_reason.unwrap();
        assert_eq!(block.as_str(), "NEW_REASON");
        assert_eq!(serde_json::to_string(&block).unwrap(), r#""NEW_REASON""#);
    }

    #[test]
    fn odd_types_read_as_absent() {
        let r = parse(
            r#"{"candidates":[null, 1, "x", [], {"index": -1, "content": {"parts": {"text": "x"}}},
                {"index": 1e30, "finishReason": 7, "content": {"parts": [null, {"text": 5, "thought": "yes"},
                 {"functionCall": [1]}, {"inlineData": {"data": 5}}]}}],
                "usageMetadata": [1], "responseId": 5, "promptFeedback": {"blockReason": {"x": 1}}}"#,
        );
        assert_eq!(r.candidates.len(), 6);
        assert!(r.candidates[..4].iter().all(|c| *c == Candidate::default()));
        assert_eq!(r.candidates[4].index, None);
        assert!(r.candidates[4].parts().is_empty());
        let c = &r.candidates[5];
        assert_eq!((c.index, &c.finish_reason), (None, &None));
        assert_eq!(c.parts().len(), 4);
        assert!(
            c.parts()[..3]
                .iter()
                .all(|p| matches!(p.kind(), PartKind::Unknown))
        );
        assert_eq!(c.parts()[3].inline_data.as_ref().unwrap().data, None);
        assert!(r.usage_metadata.is_none());
        assert!(r.response_id.is_none());
        assert!(r.prompt_feedback.unwrap().block_reason.is_none());
        // Malformed JSON and a non-object top level are errors.
        assert!(serde_json::from_str::<GenerateContentResponse>("{\"candidates\": [").is_err());
        assert!(serde_json::from_str::<GenerateContentResponse>("[]").is_err());
    }

    #[test]
    fn request_serializes_named_members_in_order_and_skips_absent() {
        let mut req = GenerateContentRequest {
            contents: vec![Content {
                parts: vec![Part::text("hi")],
                role: Some("user".into()),
                ..Content::default()
            }],
            generation_config: Some(Box::new(GenerationConfig {
                temperature: Some(0.into()),
                thinking_config: Some(ThinkingConfig {
                    include_thoughts: Some(true),
                    ..ThinkingConfig::default()
                }),
                ..GenerationConfig::default()
            })),
            ..GenerateContentRequest::default()
        };
        req.extra.insert("labels", &serde_json::json!({"a": "b"}));
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"contents":[{"parts":[{"text":"hi"}],"role":"user"}],"generationConfig":{"temperature":0,"thinkingConfig":{"includeThoughts":true}},"labels":{"a":"b"}}"#
        );
        // And back.
        let s = serde_json::to_string(&req).unwrap();
        let back: GenerateContentRequest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, req);
    }
}
