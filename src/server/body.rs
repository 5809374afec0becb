//! Reading a request body for the JSON endpoints: content type, size limit, and the
//! inspection that finds `model` and `stream`. Shared by every POST endpoint, so each
//! rejects bad input the same way before any key is chosen.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::trace::RequestTrace;
use crate::auth::Caller;
use crate::error::{ApiError, truncate_for_message};
use crate::inspect::ChatRequest;
use crate::pool::ModelPool;

/// What every model endpoint does before a key is chosen: read and inspect the body, check
/// the caller may use the model (403), and find the model's pool (404).
pub async fn accept<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    body: Body,
    caller: &Caller,
    trace: &mut RequestTrace,
) -> Result<(Bytes, ChatRequest, &'s ModelPool), ApiError> {
    let (bytes, request) = read_request(headers, body, state.max_body_bytes).await?;
    let pool = state.keys.model(&request.model);
    trace.model(truncate_for_message(&request.model), pool.map(|p| p.name));
    caller.check_model(&request.model)?;
    let pool = pool.ok_or_else(|| ApiError::ModelNotFound {
        model: truncate_for_message(&request.model),
    })?;
    Ok((bytes, request, pool))
}

/// Reads and inspects a JSON request body.
async fn read_request(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Bytes, ChatRequest), ApiError> {
    check_content_type(headers)?;
    let bytes = read_body(headers, body, limit).await?;
    let chat = ChatRequest::parse(&bytes).map_err(|e| ApiError::InvalidRequest {
        message: e.message,
        param: e.param.map(str::to_owned),
    })?;
    Ok((bytes, chat))
}

/// The body as a JSON tree, for the paths that translate it.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidRequest {
        message: format!("We could not parse the JSON body of your request: {e}"),
        param: None,
    })
}

/// JSON, or no content type at all (some clients omit it); anything else is a client mistake
/// worth naming, such as curl's default form encoding.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest {
            message: format!(
                "Unsupported Content-Type {:?}: send the body as JSON with 'Content-Type: application/json'.",
                truncate_for_message(essence)
            ),
            param: None,
        })
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::BodyTooLarge { limit }),
        Err(e) => Err(ApiError::InvalidRequest {
            message: format!("Could not read the request body: {e}"),
            param: None,
        }),
    }
}
