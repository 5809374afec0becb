//! The service every connection runs: a request gets its id, is routed (`routes`), passes
//! the gate if it is for the API (`guard`), and reaches its endpoint's handler; the answer
//! carries the id back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use hyper::body::Incoming;

use super::guard::{self, Admitted};
use super::routes::{ApiRoute, Route, Routing, route};
use super::{AppState, admin, chat, error_format, messages, metrics_endpoint, models, status};
use crate::error::{ApiError, truncate_for_message};
use crate::request_id;

/// keyrelay's HTTP service, cloned into every connection.
#[derive(Clone)]
pub struct Dispatch {
    state: Arc<AppState>,
}

impl Dispatch {
    pub fn new(state: Arc<AppState>) -> Dispatch {
        Dispatch { state }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(serve(state, req.map(Body::new)).await) })
    }
}

/// Serves one request, whatever its path.
pub async fn serve(state: Arc<AppState>, req: Request) -> Response {
    let id = request_id::of(req.headers());
    let mut response = match route(req.method(), req.uri().path()) {
        Routing::Found(to) => endpoint(to, state, req, id.clone()).await,
        Routing::NotFound => ApiError::NotFound {
            path: truncate_for_message(req.uri().path()),
        }
        .into_response_for(error_format(&req)),
        Routing::MethodNotAllowed { allow } => {
            let mut refused = ApiError::MethodNotAllowed {
                method: truncate_for_message(req.method().as_str()),
            }
            .into_response_for(error_format(&req));
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            refused
        }
    };
    response
        .headers_mut()
        .insert(request_id::HEADER.clone(), id);
    response
}

async fn endpoint(to: Route, state: Arc<AppState>, req: Request, id: HeaderValue) -> Response {
    match to {
        Route::Api(api) => match guard::admit(&state, req.headers()) {
            Ok(admitted) => api_endpoint(api, state, req, admitted, id).await,
            Err(refused) => refused.into_response_for(api.error_format()),
        },
        Route::Health => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Route::AdminKeys => admin::keys(State(state), req).await,
        Route::AdminReset(label) => {
            let headers = req.into_parts().0.headers;
            admin::reset(State(state), Path(label), headers).await
        }
        Route::Metrics => metrics_endpoint::render(State(state), req.into_parts().0.headers).await,
        Route::Status => status::page(State(state), req.into_parts().0.headers).await,
    }
}

async fn api_endpoint(
    api: ApiRoute,
    state: Arc<AppState>,
    req: Request,
    admitted: Admitted,
    id: HeaderValue,
) -> Response {
    match api {
        ApiRoute::ChatCompletions => chat::chat_completions(state, req, admitted, id).await,
        ApiRoute::Messages => messages::messages(state, req, admitted, id).await,
        ApiRoute::CountTokens => messages::count_tokens(state, req, admitted, id).await,
        // Its slot is given back with the answer, which is ready at once.
        ApiRoute::Models => models::list(&state),
    }
}
