//! Acting calls that are never done twice: a client (the stdio relay, for one) that names an
//! acting `tools/call` with a request key in `_meta` may send it again after a broken
//! connection; the store's ledger then answers with the first call's outcome instead of acting
//! again. The key is claimed in one statement before the tool runs, so two calls with one key
//! cannot both act, on one instance or on several sharing a PostgreSQL archive.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorData, RequestMetaObject};
use serde_json::Value;

use crate::store::Store;
use crate::store::model::Claim;

/// The `_meta` entry of a `tools/call` that names it for the ledger.
pub const REQUEST_KEY: &str = "whatsapp-mcp/request-key";

/// Longest request key accepted.
const MAX_KEY_LEN: usize = 128;

/// The request key a call's `_meta` carries, if any; a key that is not 1–128 printable ASCII
/// characters is refused before anything runs.
pub fn request_key(meta: &RequestMetaObject) -> Result<Option<String>, ErrorData> {
    match meta.get(REQUEST_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key))
            if (1..=MAX_KEY_LEN).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.clone()))
        }
        Some(other) => Err(ErrorData::invalid_params(
            format!(
                "_meta[\"{REQUEST_KEY}\"] must be a string of 1 to {MAX_KEY_LEN} printable ASCII \
                 characters, not {other}"
            ),
            None,
        )),
    }
}

/// How long after the first call started one sent again waits for its answer, and how often it
/// looks.
const RUNNING_WAIT: Duration = Duration::from_secs(15);
const RUNNING_POLL: Duration = Duration::from_millis(100);

async fn claim(store: &dyn Store, key: &str, tool: &str) -> Result<Claim, ErrorData> {
    let now = chrono::Utc::now().timestamp();
    store
        .claim_request(key.to_owned(), tool.to_owned(), now)
        .await
        .map_err(|err| {
            ErrorData::internal_error(
                format!("the request ledger could not be read ({err}); nothing was done"),
                None,
            )
        })
}

/// Runs `call`, the acting tool `tool`, once for `key`: a key seen before gets its first
/// call's answer, or an error saying that call's outcome is unknown, and nothing runs.
pub async fn once(
    store: &dyn Store,
    key: String,
    tool: &str,
    call: impl Future<Output = Result<CallToolResponse, ErrorData>>,
) -> Result<CallToolResponse, ErrorData> {
    let mut claim = claim(store, &key, tool).await?;
    // A call sent again at once may find the first still running: wait for its answer while
    // that call is young (bounded by this one's own clock too, should the wall clock jump).
    let waiting = std::time::Instant::now();
    while let Claim::Taken {
        tool: first,
        started_at,
        outcome: None,
    } = &claim
        && first == tool
        && chrono::Utc::now().timestamp() - started_at < RUNNING_WAIT.as_secs() as i64
        && waiting.elapsed() < RUNNING_WAIT
    {
        tokio::time::sleep(RUNNING_POLL).await;
        claim = self::claim(store, &key, tool).await?;
    }
    match claim {
        Claim::New => {}
        Claim::Taken { tool: first, .. } if first != tool => {
            return Err(ErrorData::invalid_params(
                format!(
                    "request key {key:?} was already used for a call of {first}; nothing was \
                     done: give each call a key of its own"
                ),
                None,
            ));
        }
        Claim::Taken {
            outcome: Some(outcome),
            ..
        } => {
            tracing::info!(
                tool,
                "a call was sent again; answered from the request ledger"
            );
            let result: CallToolResult = serde_json::from_str(&outcome).map_err(|err| {
                ErrorData::internal_error(
                    format!("the recorded answer of this call cannot be read ({err}); it was done once already"),
                    None,
                )
            })?;
            return Ok(result.into());
        }
        Claim::Taken { started_at, .. } => {
            let started = chrono::DateTime::from_timestamp(started_at, 0)
                .map_or_else(|| started_at.to_string(), |at| at.to_rfc3339());
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "a call of {tool} with this request key started at {started} and has no recorded \
                 outcome: it is still running, or the service stopped while it ran. It may have \
                 gone out: check with list_messages before trying again"
            ))])
            .into());
        }
    }
    let answer = call.await;
    let recorded = match &answer {
        Ok(CallToolResponse::Complete(result)) => match serde_json::to_string(result) {
            Ok(json) => store.finish_request(key, json).await,
            Err(err) => {
                tracing::warn!(tool, error = %err, "the answer of an acting call could not be recorded");
                Ok(())
            }
        },
        // Refused before acting (bad arguments) or not an answer the ledger can hold: the key
        // is free again.
        _ => store.release_request(key).await,
    };
    if let Err(err) = recorded {
        // The call is done; only a retry with this key would miss its answer and be told the
        // outcome is unknown.
        tracing::warn!(tool, error = %err, "the request ledger could not record an acting call");
    }
    answer
}
